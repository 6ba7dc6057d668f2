"""Hostile input to the REST service, the Python API and the CLI: any JSON a client can send gets 200 or a 4xx for
that request alone, never a 500, and never fails the good requests batched with it (issue #18, item 2)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from loopback_server import serving, uvicorn_server

from modules.recommender import Recommender
from modules.service import create_app

MAX_K = 60
MAX_SEEDS = 30
MAX_BODY = 20_000
LONE = ["\ud800", "\udfff", "\udc80", "\udbff", "\udc00\ud800"]  # valid JSON escapes, not Unicode scalar values


@pytest.fixture(scope="module")
def rec(tiny_bundle):
    return Recommender.load(tiny_bundle)


@pytest.fixture(scope="module")
def server(rec):
    """The app behind a real uvicorn server on a loopback port, in a thread; yields its base URL."""
    app = create_app(rec, max_k=MAX_K, max_seeds=MAX_SEEDS, max_body_bytes=MAX_BODY, model_name="tt")
    with serving(lambda port: uvicorn_server(app, port)) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=60, limits=httpx.Limits(max_connections=64)) as c:
        yield c


def post_raw(client, path: str, body) -> httpx.Response:
    """POST ``body`` as JSON text with non-ASCII escaped, as a client in any language may write it: a lone
    surrogate travels as the valid JSON escape ``\\ud800`` (httpx's own encoder would refuse to send it)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=data, headers={"content-type": "application/json"})


# -- a seeded generator of hostile JSON ----------------------------------------------------------------------
class HostileJSON:
    """JSON values a client may send, biased to what breaks servers: lone surrogates, NUL and control characters,
    right-to-left marks, astral characters, huge and negative numbers, wrong types, deep and wide nesting."""

    PIECES = ["rock", "chill", "", " ", "\x00", "\x1f", "\u202e", "\ufeff", "\uffff", "😀", "\U0010ffff", "é", "日本",
              "\\", "\"", "\n", "spotify:track:", "%s%n", "<script>", "' OR 1=1 --", *LONE]

    def __init__(self, seed: int, uris: list[str], features: list[str]):
        self.rng = random.Random(seed)
        self.uris, self.features = uris, features

    def text(self) -> str:
        r = self.rng
        if r.random() < 0.3:
            return r.choice(self.uris)
        n = r.choice([0, 1, 2, 3, 8, 40])
        return "".join(r.choice(self.PIECES) if r.random() < 0.7 else chr(r.randrange(0x110000)) for _ in range(n))

    def number(self):
        return self.rng.choice([0, 1, -1, 2, 5, 50, MAX_K, MAX_K + 1, 2**31, 2**63, 10**30, -(10**30), 0.0, -0.0,
                                0.5, 1e-300, 1e300, -1e300, 3.0])

    def value(self, depth: int = 0):
        r = self.rng
        kind = r.choice(["null", "bool", "number", "text", "text", "list", "dict"] if depth < 3 else
                        ["null", "bool", "number", "text"])
        if kind == "null":
            return None
        if kind == "bool":
            return r.random() < 0.5
        if kind == "number":
            return self.number()
        if kind == "text":
            return self.text()
        if kind == "list":
            return [self.value(depth + 1) for _ in range(r.choice([0, 1, 3]))]
        return {self.text(): self.value(depth + 1) for _ in range(r.choice([0, 1, 2]))}

    def maybe(self, good, p_good: float = 0.8):
        return good() if self.rng.random() < p_good else self.value()

    def recommend_body(self):
        r = self.rng
        if r.random() < 0.05:
            return self.value()
        body = {}
        fields = {
            "seed_track_uris": lambda: [self.text() for _ in range(r.choice([0, 1, 3, 10]))],
            "title": self.text,
            "k": lambda: r.choice([1, 5, 20, MAX_K]),
            "weights": lambda: {(r.choice(self.features) if r.random() < 0.6 else self.text()):
                                r.choice([0, 0.5, 1, 2, 3.5]) for _ in range(r.choice([0, 1, 2]))},
            "mode": lambda: r.choice(["hybrid", "collaborative"]),
            "explain": lambda: r.random() < 0.5,
        }
        for name, good in fields.items():
            if r.random() < 0.6:
                body[name] = self.maybe(good)
        if r.random() < 0.1:
            body[self.text()] = self.value()
        return body

    def predict_body(self):
        r = self.rng
        if r.random() < 0.05:
            return self.value()

        def instance():
            inst = {}
            if r.random() < 0.7:
                inst["seed_track_uris"] = self.maybe(lambda: [self.text() for _ in range(r.choice([0, 1, 4]))])
            if r.random() < 0.7:
                inst["title"] = self.maybe(self.text)
            if r.random() < 0.05:
                inst[self.text()] = self.value()
            return inst

        body = {"instances": self.maybe(lambda: [instance() for _ in range(r.choice([1, 1, 2, 3]))], 0.9)}
        if r.random() < 0.1:
            body["signature_name"] = self.maybe(lambda: "serving_default")
        return body


# raw bodies the generator cannot write through json.dumps: numbers beyond float, escapes, deep nesting
RAW_RECOMMEND = [b'{"k": 1e400}', b'{"k": -1e400}', b'{"weights": {"energy": 1e400}}', b'{"title": "\\ud800"}',
                 b'{"seed_track_uris": ["\\udfff"], "title": "x"}', b'{"weights": {"\\ud800": 2}}',
                 b'{"\\ud800": 1}', b'{"title": "a\\u0000b"}', b'{"k": 1' + b"0" * 400 + b"}",
                 b'{"title": ' + b"[" * 500 + b"]" * 500 + b"}", b'{"title": ' + b"[" * 3000 + b"]" * 3000 + b"}",
                 b"[" * 3000 + b"]" * 3000, b'"\\ud800"']
RAW_PREDICT = [b'{"instances": [{"title": "\\ud800"}]}', b'{"instances": [{"seed_track_uris": ["\\udc80"]}]}',
               b'{"instances": [{"title": "\\u0000"}]}', b'{"instances": ' + b"[" * 3000 + b"]" * 3000 + b"}",
               b'{"signature_name": "\\ud800", "instances": [{}]}', b'{"instances": [{"\\udfff": 1}]}']


def _check_response(r: httpx.Response, allowed: set[int], what) -> None:
    assert r.status_code in allowed, (r.status_code, what, r.text[:500])
    body = r.json()  # every answer is JSON, 4xx included
    if r.status_code != 200:
        assert isinstance(body.get("error"), str) and body["error"], (what, body)


def _too_deep(data: bytes) -> bool:
    try:
        json.loads(data)
    except RecursionError:
        return True
    return False


def _fuzz(client, path: str, bodies: list, allowed: set[int], seconds: float) -> Counter:
    """Send ``bodies`` 8 at a time (so hostile and good requests share batches) until done or ``seconds`` pass.
    Beside ``allowed``: a 413 for a body above the limit, a 400 for one nested deeper than Python parses."""
    deadline = time.monotonic() + seconds
    statuses: Counter = Counter()
    with ThreadPoolExecutor(8) as pool:
        for a in range(0, len(bodies), 16):
            chunk = bodies[a:a + 16]
            for body, r in zip(chunk, pool.map(lambda b: post_raw(client, path, b), chunk), strict=True):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                extra = {413} if len(data) > MAX_BODY else {400} if _too_deep(data) else set()
                _check_response(r, allowed | extra, body)
                if 400 in extra:
                    assert "nested too deeply" in r.json()["error"], r.text
                statuses[r.status_code] += 1
            if time.monotonic() > deadline:
                break
    return statuses


def test_fuzz_recommend(client, rec):
    gen = HostileJSON(0, rec.tracks["track_uri"].tolist()[:50], list(rec.hybrid.content_.features))
    bodies = RAW_RECOMMEND + [gen.recommend_body() for _ in range(1000)]
    statuses = _fuzz(client, "/recommend", bodies, {200, 422}, seconds=10)
    # bounded in time, not by a stalled server; both answers and refusals exercised (~1 s for all 1,000 here)
    assert statuses[200] >= 100 and statuses[422] >= 100, statuses


def test_fuzz_predict(client, rec):
    gen = HostileJSON(1, rec.tracks["track_uri"].tolist()[:50], list(rec.hybrid.content_.features))
    bodies = RAW_PREDICT + [gen.predict_body() for _ in range(1000)]
    statuses = _fuzz(client, "/v1/models/tt:predict", bodies, {200, 400}, seconds=10)
    assert statuses[200] >= 100 and statuses[400] >= 100, statuses


@pytest.mark.parametrize("body,message", [
    ({"title": "\ud800"}, "body.title: Value error, not valid Unicode: a lone surrogate U+D800 at position 0"),
    ({"seed_track_uris": ["spotify:track:a", "x\udfff"]}, "body.seed_track_uris.1: Value error, not valid Unicode"),
    ({"weights": {"\udc80nergy": 2.0}}, "nergy.[key]: Value error, not valid Unicode: a lone surrogate U+DC80"),
    ({"title": "ok", "k": 3, "\ud800": 1}, "body: Input should be a valid string, unable to parse raw data"),
])
def test_recommend_lone_surrogate_is_a_422_naming_the_field(client, body, message):
    r = post_raw(client, "/recommend", body)
    assert r.status_code == 422, r.text
    assert message in r.json()["error"], r.json()


def test_predict_lone_surrogate_is_a_400_naming_the_field(client):
    r = post_raw(client, "/v1/models/tt:predict", {"instances": [{"title": "ok"}, {"title": "\ud800"}]})
    assert r.status_code == 400 and "instances.1.title" in r.json()["error"], r.text


def _good_bodies(rec, n: int, seed: int) -> list[dict]:
    uris = rec.tracks["track_uri"].tolist()
    rng = np.random.default_rng(seed)
    titles = ["rock", "", "chill", "party", "summer 2017", "workout"]
    return [{"seed_track_uris": rng.choice(uris, size=int(rng.choice([0, 1, 3, 5, 10])), replace=False).tolist(),
             "title": titles[i % len(titles)], "k": 20} for i in range(n)]


POISON = [{"title": "\ud800"}, {"seed_track_uris": ["\udfff"], "k": 5}, {"title": "x\udc80y", "k": 10},
          {"seed_track_uris": ["spotify:track:a", "\udbff"]}]


def test_poisoned_requests_fail_alone(client, rec):
    """64 concurrent requests, 8 of them poisoned (a lone surrogate): the 8 get a 422, each of the 56 good ones
    its own answer, the same as when sent alone. Before the fix, 17-26 of the 56 good ones got a 200."""
    good = _good_bodies(rec, 56, seed=3)
    alone = [post_raw(client, "/recommend", b).json()["recommendations"] for b in good]
    bodies = list(good)
    for j in range(8):
        bodies.insert(j * 8 + 3, POISON[j % len(POISON)])
    start = threading.Barrier(len(bodies))

    def send(body):
        start.wait()
        return post_raw(client, "/recommend", body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        got = list(pool.map(send, bodies))
    answers = iter(alone)
    for body, r in zip(bodies, got, strict=True):
        if body in POISON:
            assert r.status_code == 422 and "Unicode" in r.json()["error"], r.text
            continue
        assert r.status_code == 200, (body, r.status_code, r.text[:300])
        assert r.json()["recommendations"] == next(answers)  # bit for bit: an answer does not depend on its batch


def test_poisoned_predict_requests_fail_alone(client, rec):
    uris = rec.tracks["track_uri"].tolist()
    good = [{"instances": [{"seed_track_uris": uris[i:i + 1 + i % 4], "title": ["rock", "", "chill"][i % 3]}]}
            for i in range(28)]
    alone = [post_raw(client, "/v1/models/tt:predict", b).json()["predictions"] for b in good]
    poison = [{"instances": [{"title": "\ud800"}]}, {"instances": [{"seed_track_uris": ["\udc80"], "title": "a"}]}]
    bodies = list(good)
    for j in range(4):
        bodies.insert(j * 8 + 2, poison[j % 2])
    start = threading.Barrier(len(bodies))

    def send(body):
        start.wait()
        return post_raw(client, "/v1/models/tt:predict", body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        got = list(pool.map(send, bodies))
    answers = iter(alone)
    for body, r in zip(bodies, got, strict=True):
        if body in poison:
            assert r.status_code == 400, r.text
            continue
        assert r.status_code == 200, (body, r.status_code, r.text[:300])
        assert r.json()["predictions"] == next(answers)  # scores too, bit for bit


# -- the Python API and the CLI ----------------------------------------------------------------------------
def test_python_api_rejects_lone_surrogates_naming_the_field(rec):
    seeds = rec.tracks["track_uri"].iloc[:3].tolist()
    with pytest.raises(ValueError, match=r"title is not valid Unicode: a lone surrogate U\+D800 at position 4"):
        rec.recommend(seeds, "rock\ud800", k=5)
    with pytest.raises(ValueError, match=r"seed_track_uris\[1\] is not valid Unicode: a lone surrogate U\+DCFF"):
        rec.recommend([seeds[0], "spotify:track:\udcff"], "rock", k=5)
    # in a batch the bad request is its own error and the others are answered as alone
    out = rec.recommend_columns_batch([{"seed_track_uris": seeds, "title": "rock", "k": 5},
                                       {"title": "\udfff", "k": 5},
                                       {"seed_track_uris": seeds[:1], "k": 5}])
    assert isinstance(out[1], ValueError) and "title is not valid Unicode" in str(out[1])
    assert list(out[0]["track_uri"]) == rec.recommend(seeds, "rock", k=5)["track_uri"].tolist()
    assert list(out[2]["track_uri"]) == rec.recommend(seeds[:1], k=5)["track_uri"].tolist()


@pytest.mark.parametrize("args,flag,byte", [
    (["--seeds", b"spotify:track:\xff"], "--seeds", "0xff"),
    (["--seeds", "spotify:track:a", "--title", b"caf\xe9"], "--title", "0xe9"),
])
def test_cli_recommend_rejects_undecodable_arguments(tiny_bundle, args, flag, byte):
    """Arguments that are not UTF-8 reach Python as surrogate escapes: the command names the argument and the byte,
    before loading the bundle."""
    cmd = [sys.executable.encode(), b"-m", b"modules", b"recommend", b"--model", str(tiny_bundle).encode()]
    cmd += [a if isinstance(a, bytes) else a.encode() for a in args]
    r = subprocess.run(cmd, capture_output=True, timeout=120, env={**os.environ, "LC_ALL": "C.UTF-8"})
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2, err
    assert flag in err and "not valid UTF-8" in err and byte in err, err


def test_micro_batcher_isolates_the_failing_request():
    """A batch whose call raises is answered again in halves: the failing request gets its error, the others
    their own answers, in about 2 log2(n) more calls, not n; ``whole_batch_errors`` still fail the whole batch."""
    from concurrent.futures.process import BrokenProcessPool

    from modules.service import MicroBatcher

    calls, gate = [], threading.Event()

    def fn(rows):
        gate.wait(10)  # the first call holds the worker until every request has queued
        calls.append(len(rows))
        if "bad" in rows:
            raise ValueError("bad row")
        if "broken" in rows:
            raise BrokenProcessPool("a process died")
        return [r.upper() for r in rows]

    def run(rows_per_call):
        batcher = MicroBatcher(fn, max_rows=64, whole_batch_errors=(BrokenProcessPool,))
        with ThreadPoolExecutor(len(rows_per_call) + 1) as pool:
            first = pool.submit(batcher.call, ["first"])
            time.sleep(0.2)
            rest = [pool.submit(batcher.call, rows) for rows in rows_per_call]
            time.sleep(0.3)  # all queued behind the first
            gate.set()
            assert first.result() == ["FIRST"]
            return [f.exception() or f.result() for f in rest]

    jobs = [[f"r{i}"] for i in range(16)]
    jobs[11] = ["bad"]
    got = run(jobs)
    for i, (rows, answer) in enumerate(zip(jobs, got, strict=True)):
        if i == 11:
            assert isinstance(answer, ValueError)
        else:
            assert answer == [r.upper() for r in rows]
    batch_calls = calls[1:]
    assert batch_calls[0] == 16 and len(batch_calls) <= 1 + 2 * 4, batch_calls  # 16 jobs: 4 halvings

    calls.clear()
    gate.clear()
    jobs = [["a"], ["broken"], ["c"]]
    got = run(jobs)
    assert all(isinstance(a, BrokenProcessPool) for a in got) and calls[1:] == [3]
