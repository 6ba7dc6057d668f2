"""What each Spark stage costs per million playlists: ingest, rules, ALS and batch recommend on ``local[N]``.

    python -m benchmarks.spark_cost --sizes 10000,30000,100000 --stages ingest,rules,als --data /work/bench
    python -m benchmarks.spark_cost --stages recommend --bundle BUNDLE --challenge CHALLENGE.json --repeat 1,4
    python -m benchmarks.spark_cost --table          # the table of every recorded run, measured and projected

Each stage runs as a child process of its own (``python -m benchmarks.spark_cost _stage …``) that starts its own
Spark session (``modules.spark.session.spark_session``: the JVM is the child's child, the executors live in it in
local mode, the Python workers are the JVM's children) and runs the stage as the commands do:

ingest     ``ingest_spark`` of the world's slices (``WORLD/mpd``) into a temporary store (deleted after);
rules      ``mine_spark`` on the world's store (``WORLD/store``) at ``--min-support`` / ``--min-confidence`` /
           ``--max-len`` (fixed *relative* support, so the frequent tracks keep their share as the world grows);
als        ``SparkALSRecommender.fit`` on the world's store (the local matrix it folds playlists in with, then
           MLlib's implicit ALS at ``--factors`` / ``--iterations``);
recommend  ``recommend_spark`` of a challenge file's playlists (``--repeat R``: the playlists R times, pids made
           unique) with a trained bundle: each Python worker imports TensorFlow and loads the bundle once.

The parent samples the child's whole process tree every half second (psutil): the peak of the tree's summed
resident memory (driver Python + JVM with its executors + Python workers) and each process's CPU time (user +
system, its reaped children included); CPU is the larger of that sum and the child's ``os.wait4`` rusage. The
child reports the stage's own wall time (without the session's start) and what it produced. The load average is
recorded before and after each stage: the machine is shared, so wall times are upper bounds; CPU seconds change
less with the load.

The cost per million playlists is measured at each size (the stage's cost times 1e6 / N) and projected past the
largest size from the least-squares line ``cost = a + b N`` through the measured sizes (``--table``): the table
says which is which. Results are appended to benchmarks/results/spark-cost.json (one entry per stage run).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.results_file import append_run

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "spark-cost.json"
FORMAT = "spark-cost/1"
STAGES = ("ingest", "rules", "als", "recommend")
MIB = 1024 * 1024
PROJECT_TO = (1_000_000, 10_000_000)


# -- the child: one stage on its own session ---------------------------------------------------------------
def run_stage(args) -> dict:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from modules.spark.session import spark_session

    t0 = time.perf_counter()
    spark = spark_session(args.master, driver_memory=args.driver_memory)
    session_s = time.perf_counter() - t0
    t = time.perf_counter()
    try:
        out = STAGE_FUNCS[args.stage](spark, args)
    finally:
        stage_s = time.perf_counter() - t
        spark.stop()
    return {"session_seconds": round(session_s, 1), "stage_seconds": round(stage_s, 1), **out}


def _ingest(spark, args) -> dict:
    from modules.spark.ingest import ingest_spark

    tmp = Path(tempfile.mkdtemp(prefix="spark-cost-ingest-", dir=args.scratch))
    try:
        s = ingest_spark(Path(args.world) / "mpd", tmp / "store", spark=spark)
        return {"playlists": int(s["playlists"]), "entries": int(s["tracks"])}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rules(spark, args) -> dict:
    from modules.spark.rules import mine_spark
    from modules.store import PlaylistStore

    rs = mine_spark(PlaylistStore(Path(args.world) / "store"), args.min_support, args.min_confidence, args.max_len,
                    spark=spark)
    return {"playlists": int(rs.n_playlists), "rules": len(rs)}


def _als(spark, args) -> dict:
    from modules.spark.als import SparkALSRecommender
    from modules.store import PlaylistStore

    store = PlaylistStore(Path(args.world) / "store")
    rec = SparkALSRecommender(factors=args.factors, iterations=args.iterations, seed=0, spark=spark).fit(store)
    m = rec.matrix_
    return {"playlists": int(m.X.shape[0]), "tracks": int(m.X.shape[1]), "entries": int(m.X.nnz)}


def _recommend(spark, args) -> dict:
    from modules.mpd import read_challenge
    from modules.spark.recommend import recommend_spark

    base = read_challenge(args.challenge)["playlists"]
    step = max(int(p["pid"]) for p in base) + 1
    playlists = [{**p, "pid": int(p["pid"]) + r * step} for r in range(int(args.repeat)) for p in base]
    rows, done = recommend_spark(spark, args.bundle, playlists, 500)
    assert len(rows) == len(playlists)
    return {"playlists": len(playlists), "workers": done["workers"], "loads": done["loads"],
            "job_seconds": round(done["seconds"], 1)}


STAGE_FUNCS = {"ingest": _ingest, "rules": _rules, "als": _als, "recommend": _recommend}


# -- the parent: a child per stage, its process tree sampled -----------------------------------------------
def tree_usage(child_pid: int, stop: threading.Event, into: dict, every: float = 0.5) -> None:
    """Sample the process tree of ``child_pid`` until ``stop``: the peak summed RSS and each process's CPU."""
    import psutil

    try:
        root = psutil.Process(child_pid)
    except psutil.NoSuchProcess:
        return
    cpu: dict[int, float] = {}
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        rss = 0
        for p in procs:
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                continue
        into["peak_tree_rss_mib"] = max(into.get("peak_tree_rss_mib", 0), round(rss / MIB))
        into["processes"] = max(into.get("processes", 0), len(procs))
        into["tree_cpu_seconds"] = round(sum(cpu.values()), 1)
        stop.wait(every)


def shown_command(cmd: list[str]) -> str:
    """The child's command as a reader would type it: ``python -m ...``, without the ``nice -n N`` prefix (which
    used to leave ``python -n 10 ...`` in the results) or the interpreter's full path."""
    if cmd[:1] == ["nice"]:
        cmd = cmd[3:]
    return shlex.join(["python", *cmd[1:]])


def run_child(cmd: list[str], timeout: float | None) -> dict:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONUNBUFFERED": "1"}
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, errors="replace")
    seen: dict = {}
    stop = threading.Event()
    sampler = threading.Thread(target=tree_usage, args=(child.pid, stop, seen), daemon=True)
    sampler.start()
    try:
        stdout, stderr = child.communicate(timeout=timeout)
        partial = False
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, 9)
        stdout, stderr = child.communicate()
        partial = True
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every child reaped so far (cumulative: see below)
    return {"command": shown_command(cmd), "wall_seconds": round(wall, 1), "partial": partial,
            "exit_code": child.returncode, "stdout": stdout, "stderr_tail": stderr.splitlines()[-15:],
            "rusage_children_cpu": usage.ru_utime + usage.ru_stime, **seen,
            "load_average": {"before": [round(x, 2) for x in load0],
                             "after": [round(x, 2) for x in os.getloadavg()]}}


def measure(stage: str, args, world: Path | None, extra: list[str]) -> dict:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "benchmarks.spark_cost", "_stage", stage, "--master", args.master,
           "--driver-memory", args.driver_memory, "--scratch", str(args.scratch), *extra]
    if world is not None:
        cmd += ["--world", str(world)]
    if args.nice:
        cmd = ["nice", "-n", str(args.nice), *cmd]
    r = run_child(cmd, args.timeout)
    reaped = r.pop("rusage_children_cpu") - (before.ru_utime + before.ru_stime)
    r["cpu_seconds"] = round(max(reaped, r.get("tree_cpu_seconds", 0.0)), 1)
    r["rusage_cpu_seconds"] = round(reaped, 1)
    out = r.pop("stdout")
    if r["exit_code"] == 0 and out.strip():
        r["stage"] = json.loads(out.strip().splitlines()[-1])
    else:
        r.pop("stage", None)
    return r


# -- the table: measured per million, projected from the line ----------------------------------------------
def line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares ``a + b x`` through ``points`` (one point: through the origin)."""
    if len(points) == 1:
        x, y = points[0]
        return 0.0, y / x
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - b * mx, b


def table(runs: list[dict]) -> str:
    """Per stage: each measured size's cost per million playlists, then the line's projection."""
    latest: dict[tuple, dict] = {}
    for r in runs:
        if r.get("exit_code") == 0 and "stage" in r:
            latest[(r["stage_name"], r["settings_key"], r["size"])] = r  # the last run of each point counts
    groups: dict[tuple, list[dict]] = {}
    for (stage, key, _), r in sorted(latest.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        groups.setdefault((stage, key), []).append(r)
    rows = ["| stage (settings) | size | kind | wall s | CPU s | peak MiB | wall s / 1M | CPU s / 1M | load avg |",
            "|---|---|---|---|---|---|---|---|---|"]
    for (stage, key), rs in groups.items():
        for r in rs:
            n = r["size"]
            la = r["load_average"]
            rows.append(f"| {stage} ({key}) | {n:,} | measured | {r['wall_seconds']:.0f} | {r['cpu_seconds']:.0f} | "
                        f"{r.get('peak_tree_rss_mib', 0):,} | {r['wall_seconds'] * 1e6 / n:,.0f} | "
                        f"{r['cpu_seconds'] * 1e6 / n:,.0f} | {la['before'][0]:.1f}-{la['after'][0]:.1f} |")
        if len(rs) >= 2:
            aw, bw = line([(r["size"], r["wall_seconds"]) for r in rs])
            ac, bc = line([(r["size"], r["cpu_seconds"]) for r in rs])
            for n in PROJECT_TO:  # memory is not projected: the heap is bounded and Spark spills past it
                if n > max(r["size"] for r in rs):
                    w, c = aw + bw * n, ac + bc * n
                    rows.append(f"| {stage} ({key}) | {n:,} | projected | {w:,.0f} | {c:,.0f} | | "
                                f"{w * 1e6 / n:,.0f} | {c * 1e6 / n:,.0f} | |")
    return "\n".join(rows)


def settings_for(stage: str, args) -> tuple[list[str], str]:
    """The child's stage arguments and a short key naming them (runs with the same key form one line)."""
    if stage == "rules":
        return (["--min-support", str(args.min_support), "--min-confidence", str(args.min_confidence),
                 "--max-len", str(args.max_len)],
                f"support {args.min_support}, confidence {args.min_confidence}, max-len {args.max_len}")
    if stage == "als":
        return (["--factors", str(args.factors), "--iterations", str(args.iterations)],
                f"factors {args.factors}, iterations {args.iterations}")
    if stage == "recommend":
        return (["--bundle", str(args.bundle), "--challenge", str(args.challenge)], f"bundle {Path(args.bundle).name}")
    return [], "slices"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["_stage"]:
        ap.add_argument("_", choices=["_stage"])
        ap.add_argument("stage", choices=STAGES)
        ap.add_argument("--world")
    ap.add_argument("--sizes", default="10000,30000", help="world sizes (playlists), comma-separated")
    ap.add_argument("--data", type=Path, default=Path("/work/bench"), help="the worlds: DATA/mpd-N-sSEED")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stages", default="ingest,rules,als")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="3g")
    ap.add_argument("--min-support", type=float, default=0.001)
    ap.add_argument("--min-confidence", type=float, default=0.1)
    ap.add_argument("--max-len", type=int, default=3)
    ap.add_argument("--factors", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--bundle", type=Path, help="recommend: a trained bundle")
    ap.add_argument("--challenge", type=Path, help="recommend: a challenge file")
    ap.add_argument("--repeat", default="1", help="recommend: the challenge's playlists R times (comma-separated "
                    "list: one run each)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--scratch", type=Path, default=HERE.parent / "data" / "bench")
    ap.add_argument("--label", default="")
    ap.add_argument("--table", action="store_true", help="print the table of recorded runs and stop")
    args = ap.parse_args(argv)
    if argv[:1] == ["_stage"]:
        print(json.dumps(run_stage(args)), flush=True)
        return 0
    if args.table:
        print(table(json.loads(RESULTS.read_text())["runs"]) if RESULTS.exists() else "no runs recorded")
        return 0
    args.scratch.mkdir(parents=True, exist_ok=True)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    for stage in stages:
        if stage not in STAGES:
            raise SystemExit(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
        extra, key = settings_for(stage, args)
        if stage == "recommend":
            if args.bundle is None or args.challenge is None:
                raise SystemExit("the recommend stage needs --bundle and --challenge")
            points = [(int(r), None) for r in args.repeat.split(",")]
        else:
            points = [(None, args.data / f"mpd-{int(n)}-s{args.seed}") for n in args.sizes.split(",")]
        for repeat, world in points:
            more = extra + (["--repeat", str(repeat)] if repeat else [])
            print(f"{stage} {world or f'x{repeat}'} ({key}) …", flush=True)
            r = measure(stage, args, world, more)
            size = r.get("stage", {}).get("playlists", 0)
            result = {"format": FORMAT, "label": args.label, "stage_name": stage, "settings_key": key,
                      "size": size, "world": str(world) if world else None, "master": args.master,
                      "driver_memory": args.driver_memory, "cpus": os.cpu_count(),
                      "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **r}
            append_run(RESULTS, result)
            print(f"  {size:,} playlists: wall {r['wall_seconds']} s, CPU {r['cpu_seconds']} s, peak "
                  f"{r.get('peak_tree_rss_mib')} MiB, load {r['load_average']['before'][0]}->"
                  f"{r['load_average']['after'][0]}, exit {r['exit_code']}"
                  f"{'' if r['exit_code'] == 0 else ' ' + ' | '.join(r['stderr_tail'][-3:])}", flush=True)
    print(table(json.loads(RESULTS.read_text())["runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
