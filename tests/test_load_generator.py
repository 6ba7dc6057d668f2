"""The load test's wrk client against a real loopback HTTP server: bodies cycled, statuses counted."""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (make wrk)")


def test_wrk_client_cycles_bodies_and_counts_errors():
    from benchmarks.serve_load import run_wrk

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body["i"]))
            status = 500 if body["i"] == 3 else 200  # one body in four fails
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = run_wrk(f"http://127.0.0.1:{server.server_address[1]}", "/recommend",
                    [{"i": i, "title": "it's ]] fine"} for i in range(4)], clients=2, seconds=1)
    finally:
        server.shutdown()
    assert r["load_generator"] == "wrk" and r["requests"] >= 20
    assert {p for p, _ in seen} == {"/recommend"} and {i for _, i in seen} == {0, 1, 2, 3}
    failed = sum(i == 3 for _, i in seen)  # the server may have answered up to one per client after wrk stopped
    assert failed - 2 <= r["error_kinds"]["status"] <= failed and r["ok"] == r["requests"] - r["error_kinds"]["status"]
    assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
