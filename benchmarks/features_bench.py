"""Feature-store benchmark: import time, get_many latency, readers beside a writer; and the Parquet alternative.

    python -m benchmarks.features_bench                 # everything, results -> benchmarks/results/features-bench.json
    python -m benchmarks.features_bench --skip-parquet --readers 3 --seconds 10

Goals (issue 5): import of the 114k-row catalog <= 10 s; get_many of 10,000 URIs <= 50 ms warm; several
processes reading while one writes without "database is locked". Timings are wall-clock on whatever machine
runs this (the load average is recorded next to them: on a shared machine they are noisy).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from modules.features import FeatureStore
from modules.paths import DEFAULT_CATALOG

ROOT = Path(__file__).resolve().parent.parent


def stats_ms(times: list[float], cpu: list[float] | None = None) -> dict:
    """Wall-clock median/p90/min in ms, and the median CPU time of this process (steadier on a shared machine:
    other jobs stretch wall time, not the CPU time the work needs)."""
    ms = sorted(1000 * t for t in times)
    out = {"median_ms": round(statistics.median(ms), 2), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
           "min_ms": round(ms[0], 2), "runs": len(ms)}
    if cpu:
        out["cpu_median_ms"] = round(statistics.median(1000 * t for t in cpu), 2)
    return out


class Timer:
    """Collects wall-clock and CPU time of repeated ``with timer:`` blocks."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.wall.append(time.perf_counter() - self._w)
        self.cpu.append(time.process_time() - self._c)

    def stats(self) -> dict:
        return stats_ms(self.wall, self.cpu)


def bench_import(workdir: Path, runs: int) -> dict:
    raw_rows = len(pd.read_parquet(DEFAULT_CATALOG, columns=["track_id"]))
    fresh = Timer()
    for i in range(runs):
        path = workdir / f"import-{i}.sqlite"
        with fresh:
            summary = FeatureStore(path, create=True).import_catalog()  # read_catalog + upsert, all included
    rerun = Timer()
    with rerun:
        again = FeatureStore(workdir / "import-0.sqlite").import_catalog()
    return {"catalog_rows": raw_rows, "tracks": summary["total"], "fresh_import_s": [round(t, 2) for t in fresh.wall],
            "fresh_import_cpu_s": [round(t, 2) for t in fresh.cpu], "rerun_s": round(rerun.wall[0], 2),
            "rerun_changed_rows": again["inserted"] + again["updated"],
            "file_mb": round((workdir / "import-0.sqlite").stat().st_size / 1e6, 1)}


def bench_get_many(path: Path, n: int, runs: int, seed: int) -> dict:
    fs = FeatureStore(path)
    uris = fs.read_all(["popularity"])["track_uri"].to_numpy()
    rng = np.random.default_rng(seed)
    ask = [str(u) for u in rng.choice(uris, n - 100, replace=False)] + [f"spotify:track:{i:022d}" for i in range(100)]
    out = {}
    # uncached: a new FeatureStore each call (no row cache), the file already in the OS page cache
    FeatureStore(path, cache_rows=0).get_many(ask)
    timer = Timer()
    for _ in range(runs):
        cold = FeatureStore(path, cache_rows=0)
        with timer:
            frame = cold.get_many(ask)
        cold.close()
    out["sql_no_row_cache"] = timer.stats()
    # warm: the same store object asked again (row cache filled by the first call)
    fs.get_many(ask)
    timer = Timer()
    for _ in range(runs):
        with timer:
            frame = fs.get_many(ask)
    out["warm"] = timer.stats()
    out["uris"] = n
    out["found"] = int(frame["found"].sum())
    out["columns"] = frame.shape[1]
    return out


def bench_small_writes(path: Path, runs: int) -> dict:
    """What the Spotify cache does: upsert 50 rows of metadata in one committed transaction (WAL with
    synchronous=NORMAL: safe against a killed process; an OS crash may lose the latest commits)."""
    fs = FeatureStore(path)
    uris = fs.read_all(["popularity"])["track_uri"].tolist()
    timer = Timer()
    for i in range(runs):
        rows = [{"track_uri": u, "album_art_url": f"https://i.scdn.co/image/{i}"} for u in uris[50 * i:50 * i + 50]]
        with timer:
            fs.upsert_metadata(rows)
    return timer.stats()


def _reader(path: str, seconds: float, seed: int, queue) -> None:
    fs = FeatureStore(path)
    uris = fs.read_all(["popularity"])["track_uri"].to_numpy()
    rng = np.random.default_rng(seed)
    ops = errors = 0
    messages: list[str] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            got = fs.get_many([str(u) for u in rng.choice(uris, 1000)])
            assert got["found"].all()
            ops += 1
        except sqlite3.OperationalError as err:
            errors += 1
            messages.append(str(err))
    queue.put({"ops": ops, "errors": errors, "messages": messages[:3]})


def _writer(path: str, seconds: float, queue) -> None:
    fs = FeatureStore(path)
    uris = fs.read_all(["popularity"])["track_uri"].tolist()
    txns = errors = imports = 0
    longest = 0.0
    messages: list[str] = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        try:
            t0 = time.perf_counter()
            if i % 100 == 10:  # a full re-import now and then: one long write transaction
                fs.import_catalog(source=f"catalog:rerun-{i}")  # another source label: every row is rewritten
                imports += 1
            else:  # what the Spotify cache does: 50 rows of metadata
                fs.upsert_metadata([{"track_uri": u, "album_art_url": f"https://i.scdn.co/image/{i}"}
                                    for u in uris[(50 * i) % len(uris):][:50]])
            longest = max(longest, time.perf_counter() - t0)
            txns += 1
        except sqlite3.OperationalError as err:
            errors += 1
            messages.append(str(err))
        i += 1
    queue.put({"txns": txns, "full_imports": imports, "errors": errors, "longest_write_s": round(longest, 2),
               "messages": messages[:3]})


def bench_concurrency(path: Path, readers: int, seconds: float) -> dict:
    ctx = mp.get_context("spawn")
    rq, wq = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_reader, args=(str(path), seconds, i, rq)) for i in range(readers)]
    procs.append(ctx.Process(target=_writer, args=(str(path), seconds, wq)))
    for p in procs:
        p.start()
    reads = [rq.get(timeout=seconds + 120) for _ in range(readers)]
    write = wq.get(timeout=seconds + 300)
    for p in procs:
        p.join()
    return {"readers": readers, "seconds": seconds, "reader_ops": [r["ops"] for r in reads],
            "reader_errors": sum(r["errors"] for r in reads), "writer": write,
            "error_messages": [m for r in reads for m in r["messages"]] + write["messages"]}


def bench_parquet(workdir: Path, n: int, runs: int, seed: int) -> dict:
    """The alternative: one Parquet file, read whole and indexed in memory; updates rewrite the file."""
    frame = FeatureStore(workdir / "import-0.sqlite").read_all()
    frame["genres"] = frame["genres"].map(";".join)
    path = workdir / "features.parquet"
    write = Timer()
    with write:
        frame.to_parquet(path, index=False)
    rng = np.random.default_rng(seed)
    ask = [str(u) for u in rng.choice(frame["track_uri"].to_numpy(), n, replace=False)]
    cold = Timer()
    for _ in range(runs):  # a reader that wants the current content re-reads the file
        with cold:
            table = pd.read_parquet(path).set_index("track_uri")
            table.reindex(ask)
    warm = Timer()
    for _ in range(runs):
        with warm:
            table.reindex(ask)
    update = Timer()
    for i in range(max(3, runs // 4)):  # 50 rows of Spotify metadata: the whole file is rewritten
        with update:
            table.iloc[(50 * i):(50 * i) + 50, table.columns.get_loc("album_art_url")] = "https://i.scdn.co/image/x"
            tmp = path.with_suffix(".tmp")
            table.reset_index().to_parquet(tmp, index=False)
            tmp.replace(path)
    return {"write_s": round(write.wall[0], 2), "file_mb": round(path.stat().st_size / 1e6, 1),
            "read_whole_file_and_lookup": cold.stats(), "warm_in_memory_lookup": warm.stats(),
            "update_50_rows_rewrite": update.stats()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="repetitions per latency measurement (default 20)")
    ap.add_argument("--import-runs", type=int, default=3)
    ap.add_argument("--uris", type=int, default=10_000)
    ap.add_argument("--readers", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the concurrency run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-parquet", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "features-bench.json")
    args = ap.parse_args()
    result = {"command": "python -m benchmarks.features_bench " + " ".join(sys.argv[1:]),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "sqlite": sqlite3.sqlite_version, "load_average_start": os.getloadavg()}}
    with tempfile.TemporaryDirectory(prefix="features-bench-") as tmp:
        work = Path(tmp)
        result["import"] = bench_import(work, args.import_runs)
        print("import:", json.dumps(result["import"]), flush=True)
        result["get_many"] = bench_get_many(work / "import-0.sqlite", args.uris, args.runs, args.seed)
        print("get_many:", json.dumps(result["get_many"]), flush=True)
        result["upsert_50_rows"] = bench_small_writes(work / "import-0.sqlite", args.runs)
        print("upsert_50_rows:", json.dumps(result["upsert_50_rows"]), flush=True)
        result["concurrency"] = bench_concurrency(work / "import-0.sqlite", args.readers, args.seconds)
        print("concurrency:", json.dumps(result["concurrency"]), flush=True)
        if not args.skip_parquet:
            result["parquet_alternative"] = bench_parquet(work, args.uris, args.runs, args.seed)
            print("parquet:", json.dumps(result["parquet_alternative"]), flush=True)
    result["machine"]["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
