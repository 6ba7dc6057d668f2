"""Load test of the REST service: N concurrent clients for S seconds against `python -m modules serve`.

    .venv/bin/python -m benchmarks.serve_load --model models/world --clients 32 --seconds 60 --client wrk \
        --out benchmarks/results/serve-load.json --append

Starts the service on a free loopback port (a subprocess, so the server gets its own interpreter), waits for
/health, then runs closed-loop clients (each sends its next request when the previous one is answered) with
requests built from the bundle: seed counts as in the challenge categories (0, 1, 5, 10, 25, 100), seeds drawn by
popularity, titles from the bundle's track names. Reports throughput, latency percentiles and errors per
endpoint, and the CPU the clients and the server used. The clients are asyncio + httpx in this process
(``--client python``) or wrk (``--client wrk``, Debian's package), which takes far less of the cores the clients
share with the server. Loopback only, bounded by --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from modules.bundle import Bundle
from modules.service import DEFAULT_CONCURRENCY, DEFAULT_WORKERS

log = logging.getLogger("serve_load")
ROOT = Path(__file__).resolve().parents[1]

SEED_COUNTS = (0, 1, 5, 10, 25, 100)
TITLES = ("chill", "workout", "summer vibes", "rock", "party", "sad songs", "road trip", "jazz", "throwbacks", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_requests(bundle: Path, n: int, k: int, seed: int) -> list[dict]:
    """``n`` request bodies over the bundle's tracks (reproducible with ``seed``)."""
    tracks = pd.read_parquet(Bundle(bundle).tracks_file, columns=["track_uri", "count"])
    uris = tracks["track_uri"].to_numpy()
    p = tracks["count"].to_numpy(np.float64) + 1.0
    p /= p.sum()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        m = min(SEED_COUNTS[i % len(SEED_COUNTS)], len(uris))
        seeds = rng.choice(uris, size=m, replace=False, p=p).tolist() if m else []
        title = TITLES[rng.integers(len(TITLES))]
        out.append({"seed_track_uris": seeds, "title": title, "k": k})
    return out


def start_server(bundle: Path, port: int, extra: list[str], server_log) -> subprocess.Popen:
    """The service as a subprocess; its stderr goes to ``server_log`` (a pipe nobody reads could fill up)."""
    cmd = [sys.executable, "-m", "modules", "-q", "serve", "--model", str(bundle), "--port", str(port),
           "--log-level", "warning", *extra]
    log.info("starting: %s", " ".join(cmd))
    # on loopback the service needs no API key: one set in this shell ($PLAYLIST_API_KEY) would turn every request
    # of the load into a 401
    env = {k: v for k, v in os.environ.items() if k != "PLAYLIST_API_KEY"}
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=server_log, env=env)


def log_tail(server_log, n: int = 3000) -> str:
    server_log.flush()
    server_log.seek(0)
    return server_log.read().decode(errors="replace")[-n:]


async def wait_ready(base: str, proc: subprocess.Popen, timeout: float, server_log) -> float:
    import httpx

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=2) as c:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log_tail(server_log)}")
            try:
                if (await c.get("/health")).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.TransportError:
                pass
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"server not ready after {timeout:.0f} s")
            await asyncio.sleep(0.5)


async def run_load(base: str, path: str, bodies: list[dict], clients: int, seconds: float) -> dict:
    """Closed-loop clients for ``seconds``; returns latencies (ms) of successes and error counts."""
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
        async def client(i: int):
            j = i
            while time.perf_counter() < stop:
                body = bodies[j % len(bodies)]
                j += clients
                t0 = time.perf_counter()
                try:
                    r = await c.post(path, json=body)
                    ok = r.status_code == 200
                    key = f"HTTP {r.status_code}"
                except httpx.HTTPError as err:
                    ok, key = False, type(err).__name__
                if ok:
                    latencies.append(1000 * (time.perf_counter() - t0))
                else:
                    errors[key] = errors.get(key, 0) + 1

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(i) for i in range(clients)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    lat = np.array(latencies)
    n_err = sum(errors.values())
    return {
        "endpoint": path, "clients": clients, "load_generator": "python-httpx", "seconds": round(wall, 2),
        "requests": int(len(lat) + n_err),
        "ok": int(len(lat)), "errors": n_err, "error_kinds": errors,
        "throughput_rps": round(len(lat) / wall, 2),
        "latency_ms": {q: round(float(np.percentile(lat, p)), 1) if len(lat) else None
                       for q, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}
        | {"mean": round(float(lat.mean()), 1) if len(lat) else None},
        "client_cpu_seconds": round(cpu, 1),
    }


WRK_SCRIPT = """
local bodies = {%s}
local path = "%s"
local headers = {["Content-Type"] = "application/json"}
local n = 0
local threads = {}
function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end
function request()
  n = n + 1
  return wrk.format("POST", path, headers, bodies[((n * 2 + (offset or 0)) %% #bodies) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50": %%d, "p90": %%d, "p99": %%d, "max": %%d, "mean": %%f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def run_wrk(base: str, path: str, bodies: list[dict], clients: int, seconds: float) -> dict:
    """The same closed-loop load from wrk (C, two event-loop threads): ``clients`` connections, each sending its
    next request when the previous one is answered, bodies cycled as with the Python clients. Latency percentiles
    are wrk's (all requests); errors are connection errors, timeouts (60 s) and non-2xx answers."""
    import resource
    import shutil

    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk; or `make serve-load`, which does)")
    lua_bodies = ",".join("[==[" + json.dumps(b) + "]==]" for b in bodies)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % (lua_bodies, path))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run([wrk, "-t", "2", "-c", str(clients), "-d", f"{seconds:.0f}s", "--timeout", "60s",
                              "--latency", "-s", f.name, base + path], capture_output=True, text=True, check=True)
    finally:
        os.unlink(f.name)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    w = json.loads(line[len("WRK_JSON "):])
    kinds = {k: w[k] for k in ("connect", "read", "write", "status", "timeout") if w[k]}
    n_err = sum(kinds.values())
    wall = w["duration_us"] / 1e6
    ok = w["requests"] - w["status"]
    return {
        "endpoint": path, "clients": clients, "load_generator": "wrk", "seconds": round(wall, 2),
        "requests": w["requests"], "ok": ok, "errors": n_err, "error_kinds": kinds,
        "throughput_rps": round(ok / wall, 2),
        "latency_ms": {q: round(w[q] / 1000, 1) for q in ("p50", "p90", "p99", "max", "mean")},
        "client_cpu_seconds": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 1),
    }


async def single_latency(base: str, path: str, bodies: list[dict], n: int) -> dict:
    """One client, one request at a time: the service time without queueing."""
    import httpx

    lat = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        for b in bodies[:n]:
            t0 = time.perf_counter()
            r = await c.post(path, json=b)
            r.raise_for_status()
            lat.append(1000 * (time.perf_counter() - t0))
    lat = np.array(lat)
    return {"endpoint": path, "requests": n, "p50": round(float(np.percentile(lat, 50)), 1),
            "p99": round(float(np.percentile(lat, 99)), 1), "mean": round(float(lat.mean()), 1)}


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU of a process (the HTTP process) and of its children (the recommendation processes),
    from /proc via psutil."""
    import psutil

    main = psutil.Process(pid)
    own, kids = 0.0, 0.0
    for p in [main, *main.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        if p.pid == pid:
            own = t.user + t.system
        else:
            kids += t.user + t.system
    return own, kids


def _resident_mb(pid: int) -> dict:
    """Resident memory of the server process and of each of its worker processes (MB), via psutil."""
    import psutil

    main = psutil.Process(pid)
    kids = [k for k in main.children(recursive=True) if "resource_tracker" not in " ".join(k.cmdline())]
    return {"server": round(main.memory_info().rss / 2**20), "workers": [round(k.memory_info().rss / 2**20)
                                                                         for k in kids]}


async def main_async(args) -> dict:
    bodies = make_requests(args.model, 600, args.k, args.seed)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    extra = ["--concurrency", str(args.concurrency), "--workers", str(args.workers), "--threads", str(args.threads)]
    server_log = tempfile.TemporaryFile()
    proc = start_server(args.model, port, extra, server_log)
    try:
        ready = await wait_ready(base, proc, args.startup_timeout, server_log)
        log.info("server ready in %.1f s", ready)
        warm = await single_latency(base, "/recommend", bodies, 20)  # also warms caches
        result = {"startup_seconds": round(ready, 1), "resident_mb_after_start": _resident_mb(proc.pid),
                  "single_client": {"recommend": warm}, "load": {}}
        predict_bodies = [{"instances": [{"seed_track_uris": b["seed_track_uris"], "title": b["title"]}]}
                          for b in bodies]
        if "predict" in args.endpoints:
            result["single_client"]["predict"] = await single_latency(
                base, "/v1/models/two_tower:predict", predict_bodies, 20)
        for ep in args.endpoints:
            path, bs = ("/recommend", bodies) if ep == "recommend" else ("/v1/models/two_tower:predict",
                                                                         predict_bodies)
            log.info("load: %d clients (%s) on %s for %.0f s", args.clients, args.client, path, args.seconds)
            server_cpu = _cpu_seconds(proc.pid)
            if args.client == "wrk":
                r = await asyncio.to_thread(run_wrk, base, path, bs, args.clients, args.seconds)
            else:
                r = await run_load(base, path, bs, args.clients, args.seconds)
            http_cpu, workers_cpu = (after - before for after, before in zip(_cpu_seconds(proc.pid), server_cpu))
            r["server_cpu_seconds"] = round(http_cpu + workers_cpu, 1)
            r["server_cpu_ms_per_request"] = round(1000 * r["server_cpu_seconds"] / max(r["requests"], 1), 2)
            # the HTTP process's share: parsing, sockets, validation, the hand-off to the recommendation processes
            r["http_process_cpu_ms_per_request"] = round(1000 * http_cpu / max(r["requests"], 1), 2)
            result["load"][ep] = r
            log.info("%s", json.dumps(result["load"][ep]))
        if any(r["errors"] for r in result["load"].values()):
            result["server_log_tail"] = log_tail(server_log)
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        server_log.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, metavar="BUNDLE_DIR")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("-k", type=int, default=50, help="k per /recommend request (default 50)")
    ap.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                    help=f"the server's --concurrency (default {DEFAULT_CONCURRENCY}, as the server's)")
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                    help=f"the server's --workers (default {DEFAULT_WORKERS} here, as the server's)")
    ap.add_argument("--threads", type=int, default=1, help="the server's --threads (default 1)")
    ap.add_argument("--endpoints", nargs="+", default=["recommend", "predict"], choices=("recommend", "predict"))
    ap.add_argument("--client", choices=("python", "wrk"), default="python",
                    help="load generator: asyncio + httpx in this process (default), or wrk (C; must be installed), "
                         "which takes less of the cores the server shares")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--startup-timeout", type=float, default=300.0)
    ap.add_argument("--out", type=Path, help="write the results as JSON here ({\"runs\": [...]})")
    ap.add_argument("--append", action="store_true", help="add this run to the runs already in --out")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would load the client side
    if not Bundle(args.model).manifest_file.exists():
        ap.error(f"{args.model} is not a model bundle (no manifest.json)")
    if args.clients < 1 or args.seconds <= 0 or args.seconds > 3600:
        ap.error("--clients must be >= 1 and --seconds in (0, 3600]")
    result = asyncio.run(main_async(args))
    manifest = Bundle(args.model).read_manifest()
    out = {"command": "python -m benchmarks.serve_load " + " ".join(sys.argv[1:] if argv is None else argv),
           "bundle": str(args.model), "bundle_playlists": manifest["data"]["playlists"],
           "bundle_tracks": manifest["data"]["tracks"], "k": args.k, "server_concurrency": args.concurrency,
           "server_workers": args.workers, "server_threads": args.threads,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
           "goal": {"errors": 0, "p99_ms": 200}, **result}
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        runs = []
        if args.append and args.out.exists():
            runs = json.loads(args.out.read_text()).get("runs", [])
        args.out.write_text(json.dumps({"runs": [*runs, out]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
