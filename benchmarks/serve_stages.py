"""CPU per `/recommend` request, stage by stage, in one process (no HTTP): where the server's time goes.

    python -m benchmarks.serve_stages --model models/world
    python -m benchmarks.serve_stages --model models/world --code . /tmp/base --rounds 3   # two versions, one run
    python -m benchmarks.serve_stages --model models/world --cprofile 30                  # the hottest functions
    python -m benchmarks.serve_stages --model models/world --http                         # and the FastAPI app

The load test's request mix (``serve_load.make_requests``: 0-100 seeds, titles, k = 50, every returned row
explained, as ``POST /recommend`` asks by default) answered by ``Recommender.recommend_columns_batch`` in batches
of ``--batch`` (16: the share of a 32-client queue each of the two recommendation processes takes), one native
thread, the loaded heap frozen (``gc.freeze``), as a recommendation process runs. Each stage is timed with
``time.process_time`` by wrapping the method that does it (nothing in ``modules`` knows it is timed); a stage
includes the ones indented under it:

* ``retrieve``: every source's candidates for the batch (``Recommender._retrieve_each``), per source;
* ``features``: each playlist's candidate set (``HybridRecommender.candidate_set``): pooling, the context columns
  and each source's columns;
* ``fusion``: ``HybridRecommender.score_candidates``;
* ``explain``: the explanations of the returned rows (``Recommender._explain``), its content and rule parts;
* ``other``: the rest of ``recommend_columns_batch`` (the order, names, building the columns).

``--http`` also times the HTTP layer without the model: the same requests through the FastAPI app of
``modules.service`` (middleware, routing, request validation, the response rows, orjson) driven as ASGI calls in
this process, each answered from the recommender's columns computed beforehand (``app_ms``), and again as HTTP/1.1
bytes through the service's uvicorn protocol on an in-memory connection (``protocol_ms``: parsing and writing
the request and response too). The sockets, the event loop's polling and the hand-off to the recommendation
processes are in neither (``serve_load`` measures the whole, and the HTTP process's share).

``--code DIR ...`` measures the ``modules`` of each checkout in its own child process, the versions alternating
round by round, so a comparison shares the machine's load: e.g. the commit before a change extracted with
``git archive BASE | tar -x -C /tmp/base``. Results are appended to benchmarks/results/serve-stages.json.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.results_file import append_run

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class StageClock:
    """CPU seconds per stage, summed over calls of the wrapped callables (nested stages count in both)."""

    def __init__(self):
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner, attr: str, stage: str) -> bool:
        """Time ``owner.attr`` (an instance's method or a module's function) as ``stage``; False when absent."""
        fn = getattr(owner, attr, None)
        if fn is None:
            return False

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            c0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[stage] += time.process_time() - c0
                self.calls[stage] += 1

        setattr(owner, attr, timed)
        return True


def instrument(rec, clock: StageClock) -> list[str]:
    """Wrap the stages of ``rec`` (a loaded ``Recommender`` that has answered once); returns the stages found."""
    import modules.hybrid.features as features
    from modules.hybrid.lab import source_set

    h = rec.hybrid
    found = []
    for owner, attr, stage in ((rec, "_retrieve_each", "retrieve"), (h, "candidate_set", "features"),
                               (h, "score_candidates", "fusion"), (rec, "_explain", "explain"),
                               (features, "pool_candidates", "features.pool"),
                               (features, "context_features", "features.context")):
        if clock.wrap(owner, attr, stage):
            found.append(stage)
    sources = source_set(h)
    for s in sources.pooling:
        if clock.wrap(s, "retrieve", f"retrieve.{s.name}"):
            found.append(f"retrieve.{s.name}")
    for s in sources.featuring:
        if clock.wrap(s, "features", f"features.{s.name}"):
            found.append(f"features.{s.name}")
    if h.content_ is not None and clock.wrap(h.content_, "explanations", "explain.content"):
        found.append("explain.content")
    if h.rules_ is not None and clock.wrap(h.rules_, "explain_many", "explain.rules"):
        found.append("explain.rules")
    return found


def measure(model: Path, n_requests: int, batch: int, repeats: int, cprofile: int) -> dict:
    """One version's stage profile (this process's ``modules``)."""
    import modules
    from benchmarks.serve_load import make_requests
    from modules.recommender import Recommender
    from modules.service import freeze_loaded_heap, limit_native_threads

    limit_native_threads(1)
    rec = Recommender.load(model)
    kw = [{"seed_track_uris": r["seed_track_uris"], "title": r["title"], "k": r["k"], "explain": r["k"]}
          for r in make_requests(model, n_requests, 50, 0)]
    for a in range(0, min(len(kw), 4 * batch), batch):  # warm-up: tf.function tracing, lazily built tables
        rec.recommend_columns_batch(kw[a:a + batch])
    freeze_loaded_heap()  # as a recommendation process does once loaded: the bundle is never walked by the gc
    clock = StageClock()
    stages = instrument(rec, clock)
    profiler = None
    if cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    c0 = time.process_time()
    for _ in range(repeats):
        for a in range(0, len(kw), batch):
            rec.recommend_columns_batch(kw[a:a + batch])
    total = time.process_time() - c0
    if profiler is not None:
        import io
        import pstats

        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(cprofile)
        print(text.getvalue(), file=sys.stderr)
    done = repeats * len(kw)
    ms = {s: round(1000 * clock.cpu[s] / done, 3) for s in stages}
    top = [s for s in ("retrieve", "features", "fusion", "explain") if s in ms]
    ms["other"] = round(1000 * total / done - sum(ms[s] for s in top), 3)
    return {"modules": str(Path(modules.__file__).resolve().parent.parent), "requests": done,
            "total_ms": round(1000 * total / done, 3), "stage_ms": ms}


def measure_http(model: Path, n_requests: int, repeats: int) -> dict:
    """CPU per ``POST /recommend`` in the FastAPI app alone (no uvicorn, no model: canned answers), and through the
    service's uvicorn protocol."""
    from types import SimpleNamespace

    from benchmarks.serve_load import make_requests
    from modules.recommender import Recommender
    from modules.service import limit_native_threads
    from modules.service.app import app_for_state

    limit_native_threads(1)
    rec = Recommender.load(model)
    bodies = make_requests(model, n_requests, 50, 0)
    kw = [{"seed_track_uris": b["seed_track_uris"], "title": b["title"], "k": b["k"], "weights": None,
           "mode": "hybrid", "explain": b["k"]} for b in bodies]
    answers = [a for i in range(0, len(kw), 16) for a in rec.recommend_columns_batch(kw[i:i + 16])]
    raw = [json.dumps(b).encode() for b in bodies]
    by_body = dict(zip(raw, answers, strict=True))
    current = {}

    async def canned(rows):
        return [by_body[current["body"]]]

    state = SimpleNamespace(recommend_batched=canned, max_k=500, max_seeds=500, rec=None, predictor=None,
                            workers=None)
    app = app_for_state(state, max_body_bytes=1_000_000, api_key=None)

    async def call(body: bytes) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/recommend", "raw_path": b"/recommend", "query_string": b"",
                 "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000), "state": {},
                 "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())]}
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = []

        async def receive():
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])

        current["body"] = body
        await app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"POST /recommend answered {status}")

    async def run() -> float:
        for body in raw[:32]:  # warm-up
            await call(body)
        c0 = time.process_time()
        for _ in range(repeats):
            for body in raw:
                await call(body)
        return time.process_time() - c0

    total = asyncio.run(run())
    n = repeats * len(raw)
    return {"requests": n, "app_ms": round(1000 * total / n, 3),
            "protocol_ms": round(1000 * asyncio.run(through_protocol(app, raw, repeats, current)) / n, 3)}


class _Transport:
    """An in-memory transport for one uvicorn protocol: keeps what the server writes."""

    def __init__(self):
        self.statuses = []

    def write(self, data: bytes) -> None:
        if data.startswith(b"HTTP/1.1 "):
            self.statuses.append(data[9:12])

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 1)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    pause_reading = resume_reading = close


async def through_protocol(app, raw: list[bytes], repeats: int, current: dict) -> float:
    """CPU seconds for ``repeats`` rounds of ``raw`` as HTTP/1.1 requests on one keep-alive connection of the
    service's uvicorn protocol (``request_deadline_protocol``: parsing, the ASGI hand-off, writing the response)
    around ``app``, bytes in and out of memory: the HTTP process's cost without the sockets and the event loop's
    polling. ``current["body"]`` tells the canned app which answer to give."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from modules.service import request_deadline_protocol

    protocol_class = request_deadline_protocol(10.0)
    config = Config(app, http=protocol_class, log_level="warning", lifespan="off")
    config.load()
    state = ServerState()
    state.default_headers = [(b"server", b"uvicorn")]
    protocol = protocol_class(config=config, server_state=state, app_state={}, _loop=asyncio.get_running_loop())
    transport = _Transport()
    protocol.connection_made(transport)
    requests = [b"POST /recommend HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body for body in raw]

    async def one(request: bytes, body: bytes) -> None:
        before = state.total_requests
        current["body"] = body
        protocol.data_received(request)
        while state.total_requests == before:
            await asyncio.sleep(0)

    for request, body in zip(requests[:32], raw, strict=False):  # warm-up
        await one(request, body)
    c0 = time.process_time()
    for _ in range(repeats):
        for request, body in zip(requests, raw, strict=True):
            await one(request, body)
    cpu = time.process_time() - c0
    protocol.connection_lost(None)
    if set(transport.statuses) != {b"200"}:
        raise RuntimeError(f"POST /recommend through {protocol_class.__mro__[1].__name__} answered "
                           f"{sorted(set(transport.statuses))}")
    return cpu


def child(code: Path, args) -> dict:
    """``measure`` in a child process whose ``modules`` is the one in ``code``."""
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{ROOT}", "TF_USE_LEGACY_KERAS": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "_measure", "--model", str(args.model.resolve()),
           "--requests", str(args.requests), "--batch", str(args.batch), "--repeats", str(args.repeats)]
    done = subprocess.run(cmd, cwd=code, env=env, stdout=subprocess.PIPE, check=True)
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.serve_stages", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="run", choices=["run", "_measure"], help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, default=Path("models/world"))
    ap.add_argument("--requests", type=int, default=480, help="requests of the load test's mix (default 480)")
    ap.add_argument("--batch", type=int, default=16, help="requests per recommend_columns_batch call")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--code", type=Path, nargs="+", default=None,
                    help="checkouts whose modules to measure, each in its own process (default: this one, here)")
    ap.add_argument("--rounds", type=int, default=1, help="with --code: measurements per checkout, alternating")
    ap.add_argument("--cprofile", type=int, default=0, metavar="N",
                    help="also print the N functions with the most own time (cProfile; slows the run)")
    ap.add_argument("--http", action="store_true",
                    help="also time the FastAPI app alone on the same requests (answers canned)")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "serve-stages.json")
    args = ap.parse_args(argv)
    if args.mode == "_measure":
        print(json.dumps(measure(args.model, args.requests, args.batch, args.repeats, 0)))
        return 0
    result = {"label": args.label, "command": "python -m benchmarks.serve_stages " + " ".join(sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "load_average_start": round(os.getloadavg()[0], 1), "batch": args.batch}
    if args.code is None:
        result["runs"] = [measure(args.model, args.requests, args.batch, args.repeats, args.cprofile)]
    else:
        result["runs"] = [child(code.resolve(), args) for _ in range(args.rounds) for code in args.code]
    if args.http:
        result["http"] = measure_http(args.model, args.requests, args.repeats)
    result["load_average_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result, indent=1))
    append_run(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
