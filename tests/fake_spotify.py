"""A real HTTP server on 127.0.0.1 that plays Spotify's endpoints, for testing the client without network.

It speaks what spotipy sends: the client-credentials token exchange (``POST /api/token`` with HTTP Basic
auth), ``GET /v1/tracks?ids=…`` (at most 50 ids, as Spotify enforces), ``GET /v1/search`` and
``GET /v1/audio-features`` (403, as for every app created after 2024-11-27). Failure modes are switched on by
attributes: ``rate_limit`` (answer 429 with ``Retry-After`` that many times), ``fail`` (answer 503 that many
times), ``delay`` (seconds to wait before answering: a timeout for a short client timeout).

    with FakeSpotify(tracks, client_id="id", client_secret="s3cret") as fake:
        config = SpotifyConfig(api_base=fake.url, token_url=fake.url + "/api/token")
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeSpotify:
    """Serve Spotify-shaped answers for ``tracks`` (``{track_id: {"name", "artists", "album", …}}``)."""

    def __init__(self, tracks: dict[str, dict], *, client_id: str, client_secret: str):
        self.tracks = tracks
        self.client_id, self.client_secret = client_id, client_secret
        self.rate_limit = 0
        self.retry_after = "1"
        self.fail = 0
        self.delay = 0.0
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, query)
        self.tokens_issued = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeSpotify:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for _, p, _ in self.requests if p == path)

    def ids_per_call(self, path: str = "/v1/tracks") -> list[int]:
        with self._lock:
            return [len(q.get("ids", [""])[0].split(",")) for _, p, q in self.requests if p == path]

    # -- answers --

    def _track_json(self, tid: str) -> dict | None:
        t = self.tracks.get(tid)
        if t is None:
            return None
        album_id = "al" + tid[2:]
        return {
            "id": tid, "uri": f"spotify:track:{tid}", "name": t["name"], "popularity": t.get("popularity", 50),
            "duration_ms": t.get("duration_ms", 200000), "explicit": False, "type": "track",
            "artists": [{"name": a, "uri": f"spotify:artist:ar{tid[2:]}"} for a in t["artists"]],
            "album": {"name": t.get("album", t["name"]), "uri": f"spotify:album:{album_id}",
                      "images": [{"url": f"{self.url}/image/{album_id}-{s}.jpg", "width": s, "height": s}
                                 for s in (640, 300, 64)]},
        }

    def _answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict, dict]:
        parsed = urlparse(handler.path)
        path = parsed.path.rstrip("/")  # spotipy asks for "tracks/?ids=…"
        query = parse_qs(parsed.query)
        with self._lock:
            self.requests.append((handler.command, path, query))
        if self.delay:
            time.sleep(self.delay)
        if path == "/api/token":
            return self._token(handler)
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("Bearer fake-token-"):
            return 401, {}, {"error": {"status": 401, "message": "No token provided"}}
        with self._lock:
            if self.rate_limit > 0:
                self.rate_limit -= 1
                return 429, {"Retry-After": self.retry_after}, {"error": {"status": 429, "message": "rate limit"}}
            if self.fail > 0:
                self.fail -= 1
                return 503, {}, {"error": {"status": 503, "message": "Service unavailable"}}
        if path == "/v1/audio-features":
            return 403, {}, {"error": {"status": 403, "message": "Forbidden"}}
        if path == "/v1/tracks":
            ids = [i for i in query.get("ids", [""])[0].split(",") if i]
            if not ids or len(ids) > 50:
                return 400, {}, {"error": {"status": 400, "message": "Invalid limit"}}
            return 200, {}, {"tracks": [self._track_json(i) for i in ids]}
        if path == "/v1/search":
            q = query.get("q", [""])[0].lower()
            limit = int(query.get("limit", ["10"])[0])
            hits = [self._track_json(tid) for tid, t in sorted(self.tracks.items())
                    if q in (t["name"] + " " + " ".join(t["artists"])).lower()][:limit]
            return 200, {}, {"tracks": {"items": hits, "total": len(hits), "limit": limit, "offset": 0}}
        return 404, {}, {"error": {"status": 404, "message": "Service not found"}}

    def _token(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict, dict]:
        length = int(handler.headers.get("Content-Length") or 0)
        body = parse_qs(handler.rfile.read(length).decode())
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if handler.headers.get("Authorization") != expected or body.get("grant_type") != ["client_credentials"]:
            return 400, {}, {"error": "invalid_client", "error_description": "Invalid client"}
        with self._lock:
            self.tokens_issued += 1
            n = self.tokens_issued
        return 200, {}, {"access_token": f"fake-token-{n}-abcdef", "token_type": "Bearer", "expires_in": 3600}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _respond(self):
                status, headers, body = fake._answer(self)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            do_GET = do_POST = _respond

            def log_message(self, *args):  # keep pytest output clean
                pass

        return Handler
