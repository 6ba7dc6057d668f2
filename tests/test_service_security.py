"""Who may call the service, and what it gives away (issue #18, item 7): the optional bearer key, the deadline for
sending a request, what /health and /metadata reveal. Real uvicorn servers on loopback ports, raw sockets."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from loopback_server import serving

from modules.recommender import Recommender
from modules.service import (
    API_KEY_ENV,
    ServiceError,
    create_app,
    is_loopback,
    make_server,
    read_api_key,
    serve,
)

# fastapi's TestClient warns that starlette prefers httpx2; httpx is what the project pins
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

KEY = "k3y-" + "x7Qz" * 8  # what a user would put in --api-key-file


@contextmanager
def running(app, **options):
    """``make_server(app, **options)`` on a free loopback port, in a thread; yields (base URL, port)."""
    opts = {"log_level": "warning", **options}
    with serving(lambda port: make_server(app, host="127.0.0.1", port=port, **opts)) as (url, port):
        yield url, port


@pytest.fixture(scope="module")
def rec(tiny_bundle):
    return Recommender.load(tiny_bundle)


@pytest.fixture(scope="module")
def keyed_app(rec):
    return create_app(rec, model_name="tt", api_key=KEY)


# -- the bearer key ---------------------------------------------------------------------------------------
class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text or ''}")


def test_api_key_guards_every_route_but_health_and_docs(keyed_app, rec):
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "modules")]
    with running(keyed_app, log_level="debug") as (url, _port):
        capture = Capture()  # after the server configured logging (uvicorn replaces its loggers' handlers)
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.addHandler(capture)
            lg.setLevel(logging.DEBUG)
        try:
            with httpx.Client(base_url=url, timeout=30) as c:
                good = {"Authorization": f"Bearer {KEY}"}
                calls = [("POST", "/recommend", {"title": "rock", "k": 3}), ("GET", "/metadata", None),
                         ("POST", "/v1/models/tt:predict", {"instances": [{"title": "rock"}]}),
                         ("GET", "/v1/models/tt", None)]
                for method, path, body in calls:
                    for headers in ({}, {"Authorization": f"Bearer {KEY[:-1]}"},
                                    {"Authorization": f"Bearer {KEY}x"}, {"Authorization": f"Basic {KEY}"},
                                    {"Authorization": "Bearer"}, {"Authorization": KEY}):
                        r = c.request(method, path, json=body, headers=headers)
                        assert r.status_code == 401, (path, headers, r.text)
                        assert r.headers["www-authenticate"] == "Bearer" and "API key" in r.json()["error"]
                        assert KEY not in r.text
                    r = c.request(method, path, json=body, headers=good)
                    assert r.status_code == 200, (path, r.text)
                r = c.post("/recommend", json={"title": "rock", "k": 3}, headers={"authorization": f"bearer {KEY}"})
                assert r.status_code == 200  # the scheme is case-insensitive (RFC 7235)
                # without the key the body is not even read: bad JSON is a 401, not a 400
                r = c.post("/recommend", content=b"{not json", headers={"content-type": "application/json"})
                assert r.status_code == 401
                for path in ("/health", "/docs", "/openapi.json"):
                    assert c.get(path).status_code == 200, path
                schema = c.get("/openapi.json").json()  # /docs offers "Authorize" and sends the key
                assert schema["components"]["securitySchemes"]["apiKey"] == {"type": "http", "scheme": "bearer"}
                assert schema["paths"]["/recommend"]["post"]["security"] == [{"apiKey": []}]
                assert "security" not in schema["paths"]["/health"]["get"]
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.removeHandler(capture)
                lg.setLevel(level)
    text = "\n".join(capture.lines)
    assert '"POST /recommend HTTP/1.1" 401' in text or "/recommend" in text, text[:2000]  # the capture worked
    assert KEY not in text and KEY[:-1] not in text


def test_read_api_key(tmp_path, caplog):
    path = tmp_path / "key"
    path.write_text(f"  {KEY}\n")
    path.chmod(0o600)
    assert read_api_key(path, environ={}) == KEY
    assert read_api_key(None, environ={API_KEY_ENV: KEY}) == KEY
    assert read_api_key(None, environ={}) is None  # off unless asked for
    assert read_api_key(path, environ={API_KEY_ENV: "other" * 4}) == KEY  # the file wins
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="modules.service"):
        read_api_key(path, environ={})
    assert "can be read by other users" in caplog.text and KEY not in caplog.text
    for bad in ("short", "has a space in the middle", "non-ascii-\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9", ""):
        path.write_text(bad)
        with pytest.raises(ServiceError, match="at least 16 printable ASCII characters") as err:
            read_api_key(path, environ={})
        assert bad not in str(err.value) or not bad  # the key is never echoed
    with pytest.raises(ServiceError, match="does not exist"):
        read_api_key(tmp_path / "missing", environ={})
    with pytest.raises(ServiceError, match="cannot be read"):
        read_api_key(tmp_path, environ={})


def test_other_addresses_need_a_key_or_an_explicit_opt_out(tmp_path, caplog):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.4")
    assert not is_loopback("example.org")
    missing = tmp_path / "no-bundle"
    with pytest.raises(ServiceError, match="--host 0.0.0.0 lets other machines call the service"):
        serve(missing, host="0.0.0.0")  # refused before anything loads
    with caplog.at_level(logging.WARNING, logger="modules.service"), pytest.raises(ValueError, match="not a model"):
        serve(missing, host="0.0.0.0", allow_unauthenticated=True)
    assert "SERVING WITHOUT AN API KEY ON 0.0.0.0" in caplog.text
    with pytest.raises(ValueError, match="not a model"):  # a key, or loopback: no objection
        serve(missing, host="0.0.0.0", api_key=KEY)
    with pytest.raises(ValueError, match="not a model"):
        serve(missing, host="127.0.0.1")
    r = subprocess.run([sys.executable, "-m", "modules", "serve", "--model", str(missing), "--host", "0.0.0.0"],
                       capture_output=True, text=True, timeout=120, env={**os.environ, API_KEY_ENV: ""})
    assert r.returncode == 2 and "--api-key-file" in r.stderr and "--allow-unauthenticated" in r.stderr, r.stderr


# -- the request deadline ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slow_app():
    """A small app: /echo reads the whole body, /slow answers after 1.5 s (longer than the deadline)."""
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request):
        return {"bytes": len(await request.body())}

    @app.get("/slow")
    async def slow():
        import asyncio

        await asyncio.sleep(1.5)
        return {"ok": True}

    return app


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (reads until EOF), or None if it was still open after ``seconds``."""
    t0 = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


@pytest.mark.parametrize("sent", [
    b"",  # connects and says nothing
    b"POST /echo HTT",  # half a request line
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",  # headers never finished
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\": 1",  # 7 of 100 body bytes
], ids=["nothing", "half request line", "half headers", "half body"])
def test_incomplete_requests_are_closed_after_the_deadline(slow_app, sent):
    with running(slow_app, request_timeout=1.0, keep_alive=30) as (url, port):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(sent)
            took = closed_within(sock, 10)
        assert took is not None and took < 5, f"still open after 10 s ({sent!r})"
        assert httpx.post(f"{url}/echo", content=b"{}").json() == {"bytes": 2}  # the server is fine


def test_trickling_does_not_extend_the_deadline(slow_app):
    with running(slow_app, request_timeout=1.0) as (_url, port):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            t0 = time.monotonic()
            request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
            closed = False
            for byte in request:  # one byte every 0.2 s: 4 s for the whole request
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                time.sleep(0.2)
                if time.monotonic() - t0 > 1.5:
                    break
            assert closed or closed_within(sock, 5) is not None
        assert time.monotonic() - t0 < 5


def test_deadline_spares_slow_answers_and_idle_keep_alive(slow_app):
    """The deadline is for sending the request: an answer may take longer, and between requests the keep-alive
    timeout governs."""
    with running(slow_app, request_timeout=1.0, keep_alive=4) as (_url, port):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(10)
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")  # answered after 1.5 s
            reply = b""
            while b'{"ok":true}' not in reply:
                chunk = sock.recv(4096)
                assert chunk, f"closed before the answer: {reply!r}"
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200")
            time.sleep(1.5)  # idle longer than the request deadline, shorter than keep-alive
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            took = closed_within(sock, 10)  # then the keep-alive timeout closes it
            assert took is not None and 2 < took < 8, took


# -- the deadline on httptools' edges: partial reads, keep-alive, pipelining ------------------------------------
def test_the_server_parses_with_httptools_on_asyncio(slow_app):
    """What the timings in docs/serving.md were measured with: uvicorn's httptools protocol (C parser) carrying the
    deadline, on asyncio's loop even where uvloop is installed."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    config = make_server(slow_app, request_timeout=1.0).config
    assert issubclass(config.http, HttpToolsProtocol) and config.http.__name__ == "RequestDeadlineProtocol"
    assert config.loop == "asyncio"


def read_responses(sock: socket.socket, n: int, timeout: float = 10) -> list[tuple[bytes, bytes]]:
    """The next ``n`` responses on ``sock`` as (status line, body); each must have a Content-Length."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < n:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if sep:
            length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            if len(rest) >= length:
                out.append((head.split(b"\r\n", 1)[0], rest[:length]))
                buf = rest[length:]
                continue
        chunk = sock.recv(4096)
        assert chunk, f"closed after {len(out)} of {n} responses: {buf!r}"
        buf += chunk
    return out


def trickle(sock: socket.socket, data: bytes, pause: float) -> None:
    for byte in data:
        sock.sendall(bytes([byte]))
        time.sleep(pause)


def keeps_sending(sock: socket.socket, byte: bytes, seconds: float) -> float | None:
    """Sends ``byte`` every 0.2 s until the server closes ``sock``: the seconds that took, or None if it was still
    open after ``seconds``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            sock.sendall(byte)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0
        time.sleep(0.2)
    took = closed_within(sock, 0.1)  # a close not yet seen by a send
    return None if took is None else time.monotonic() - t0


ECHO_10 = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"


@pytest.mark.parametrize("split", ["whole request", "request line and headers", "body"])
def test_a_request_trickled_within_the_deadline_is_answered(slow_app, split):
    """The parser gets the request a byte per read (each a separate ``data_received``) and answers it whole."""
    head, body = ECHO_10.split(b"\r\n\r\n")
    with running(slow_app, request_timeout=3.0) as (_url, port):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if split == "body":
                sock.sendall(head + b"\r\n\r\n")
                trickle(sock, body, 0.05)
            elif split == "request line and headers":
                trickle(sock, head + b"\r\n\r\n", 0.01)
                sock.sendall(body)
            else:
                trickle(sock, ECHO_10, 0.01)
            assert read_responses(sock, 1) == [(b"HTTP/1.1 200 OK", b'{"bytes":10}')]


def test_each_keep_alive_request_gets_its_own_deadline(slow_app):
    """On a reused connection the deadline runs from the next request's first byte, not from connecting."""
    with running(slow_app, request_timeout=1.0, keep_alive=30) as (_url, port):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for _ in range(3):  # more than the deadline in all, each request well within it
                sock.sendall(ECHO_10)
                assert read_responses(sock, 1) == [(b"HTTP/1.1 200 OK", b'{"bytes":10}')]
                time.sleep(0.6)
            t0 = time.monotonic()
            sock.sendall(ECHO_10[:30])  # then half a request
            took = closed_within(sock, 10)
            assert took is not None and 0.7 < time.monotonic() - t0 < 5, took


def test_blank_lines_between_requests_do_not_hold_a_connection(slow_app):
    """Bytes that begin no request (the parser skips blank lines) cancel uvicorn's keep-alive timer: the deadline
    then bounds the wait for a request."""
    with running(slow_app, request_timeout=1.0, keep_alive=30) as (_url, port):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(ECHO_10)
            assert read_responses(sock, 1)[0][0] == b"HTTP/1.1 200 OK"
            took = keeps_sending(sock, b"\r\n", 5)
            assert took is not None and took < 5, took


def test_pipelined_requests_are_answered_in_order_and_the_deadline_waits_for_their_turn(slow_app):
    """Three requests in one write, the last one unfinished: /slow (1.5 s, longer than the deadline) and the echo
    are answered in order, not cut, and the deadline of the unfinished one starts when the echo is answered."""
    with running(slow_app, request_timeout=1.0, keep_alive=30) as (_url, port):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            t0 = time.monotonic()
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" + ECHO_10 + ECHO_10[:40])
            assert read_responses(sock, 2) == [(b"HTTP/1.1 200 OK", b'{"ok":true}'),
                                               (b"HTTP/1.1 200 OK", b'{"bytes":10}')]
            answered = time.monotonic() - t0
            assert answered > 1.4
            took = closed_within(sock, 10)
            assert took is not None and 0.5 < took < 5, took  # ~1 s after the answers, not at connect + 1 s
        with socket.create_connection(("127.0.0.1", port)) as sock:  # and whole pipelined requests stay whole
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" + ECHO_10 + ECHO_10.replace(b"0123", b"abcd"))
            assert [r[1] for r in read_responses(sock, 3)] == [b'{"ok":true}', b'{"bytes":10}', b'{"bytes":10}']


def test_a_body_still_trickling_after_an_early_answer_is_cut(slow_app):
    """An answer given before the body is in (here 405: /echo takes POST) leaves the request unfinished: its
    deadline still runs while the rest of the body trickles in."""
    with running(slow_app, request_timeout=1.0, keep_alive=30) as (_url, port):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123")
            assert read_responses(sock, 1)[0][0] == b"HTTP/1.1 405 Method Not Allowed"
            took = keeps_sending(sock, b"x", 5)
            assert took is not None and took < 5, took


# -- what /health and /metadata tell -----------------------------------------------------------------------
def _strings(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_health_and_metadata_reveal_no_paths(rec, tiny_bundle):
    from fastapi.testclient import TestClient

    app = create_app(rec, model_name="tt", warmup=False)
    assert os.path.isabs(rec.manifest["data"]["source"])  # the manifest itself has the training data's path
    with TestClient(app) as c:
        health, metadata = c.get("/health"), c.get("/metadata")
    assert health.status_code == 200 and metadata.status_code == 200
    h = health.json()
    assert h["status"] == "ok" and h["bundle_loaded"] is True and h["batchers_alive"] is True
    assert h["fingerprint"] == rec.manifest["data"]["fingerprint"]
    m = metadata.json()
    assert m["data"]["source"] == os.path.basename(rec.manifest["data"]["source"])
    assert m["validation"] == json.loads(json.dumps(rec.manifest["validation"]))
    for body in (h, m):
        text = json.dumps(body)
        assert str(tiny_bundle) not in text and str(tiny_bundle.parent) not in text
        assert not [s for s in _strings(body) if os.path.isabs(s) or s.startswith("~")]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_binds_loopback_unless_asked():
    """Streamlit listens on every interface by default (it prints a "Network URL"); the demo has no login."""
    root = Path(__file__).resolve().parents[1]

    def demo_command(*overrides: str) -> str:
        r = subprocess.run(["make", "-n", "demo", *overrides], cwd=root, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return next(line for line in r.stdout.replace("\\\n", " ").splitlines() if "streamlit run" in line)

    assert "--server.address 127.0.0.1 " in demo_command()
    assert "--server.address 0.0.0.0 " in demo_command("DEMO_ADDRESS=0.0.0.0")
