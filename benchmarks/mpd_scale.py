"""Train time, memory, bundle size and recommend latency on MPD-shaped worlds, with ALS as the speed reference.

    python -m benchmarks.mpd_scale --sizes 10000,30000 --epochs 3 --per-category 30 --timeout 3600 --label HEAD

For each size N (playlists) it runs, each stage as a child process of its own:

world   ``python -m modules world --shape mpd --playlists N --seed S`` into data/bench/mpd-N-sS/mpd (reused when
        its slices exist, not needed once the split and the stores exist; generation streams),
        ``challenge --per-category P`` (the test playlists in the ten
        categories) and ``ingest`` of the world (only when the world stage is asked for) and of the training
        split (for the world's statistics: entries, distinct tracks, share of tracks in one playlist; and for
        ALS, and for ``train`` with ``--train-from store``).
train   ``python -m modules train --mpd SPLIT/train --out BUNDLE --seed S --epochs E [--params JSON]``: wall
        time and peak resident memory, exactly (``os.wait4``'s ``ru_maxrss``), plus a timeline: the child's
        memory sampled every second (``/proc/PID/status``) and each of its log lines stamped with the time and
        the memory at that moment, so the peak is put on a stage (ingest, two-tower epochs, rules, content,
        ALS, fusion).
bundle  the bundle's size per part (the parts ``modules.bundle.Bundle`` names; ``other`` is what is left, so
        the parts sum to the folder) and the number of rules.
serve   a child loads the bundle (``Recommender.load``) and answers every challenge playlist alone at k=500
        (no explanations, as for a submission): load time, resident memory after loading, peak resident memory
        and the latency p50/p99 per playlist (wall, and the process's CPU time, which a busy machine
        changes less), BLAS on one thread per call as the product runs a query.
als     ``implicit``'s ALS (``modules.baselines.als``, its defaults) fitted on the same training playlists in
        the same run: fit time, peak resident memory, recommend p50/p99 at k=500 (timed as above). Our
        numbers are also given as ratios to these.

``--timeout SECONDS`` kills a stage that runs longer and records it as partial, with the peak seen so far; a
train that fails is recorded as partial too (``failed``), then the run stops. Keep the checkout unchanged while
a run lasts: the children import parts of ``modules`` late, and code that changed under them (a merge) can fail
them.
Each point (keyed by ``--label`` and size; other points are kept) is written atomically to
benchmarks/results/mpd-scale.json with the issue's goals and whether it meets them (6k-10k playlists: train
peak <= 4 GiB, serving <= 2 GiB, bundle <= 300 MiB; 1M: train <= 20 GiB, serving <= 6 GiB, p50 <= 50 ms,
p99 <= 150 ms; sizes in between are held to the 1M limits, which bound them from above). A table of all
points is printed at the end (``--table`` prints it without running anything). docs/scale.md has the results.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import logging
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "mpd-scale.json"
FORMAT = "mpd-scale/1"
STAGES = ("world", "train", "bundle", "serve", "als")
MIB = 1024 * 1024
LOG_LINE = re.compile(r"INFO ([\w.]+): (.*)")
EPOCH = re.compile(r"^epoch (\d+): loss")
K = 500

log = logging.getLogger("benchmarks.mpd_scale")

# the goals (#19 item 3) on 2 cores / 24 GB, as (metric, limit, unit)
SMALL_GOALS = {"train_peak_mib": 4 * 1024, "serve_peak_mib": 2 * 1024, "bundle_mib": 300}
LARGE_GOALS = {"train_peak_mib": 20 * 1024, "serve_peak_mib": 6 * 1024, "p50_ms": 50, "p99_ms": 150}


# -- pure parts: goals, merging, the table ---------------------------------------------------------------
def goals_for(playlists: int) -> tuple[str, dict[str, float]]:
    """The goal set that applies to a world of ``playlists`` playlists: its name and its limits."""
    if playlists <= 10_000:
        return "6k-10k playlists", dict(SMALL_GOALS)
    if playlists >= 1_000_000:
        return "1M playlists", dict(LARGE_GOALS)
    return "1M limits (an upper bound below 1M)", dict(LARGE_GOALS)


def measured(point: dict) -> dict[str, float | None]:
    """The numbers the goals are checked against, from a point (``None`` where a stage did not run)."""
    train = point.get("train") or {}
    serve = point.get("serve") or {}
    bundle = point.get("bundle") or {}
    return {"train_peak_mib": train.get("peak_rss_mib"), "serve_peak_mib": serve.get("peak_rss_mib"),
            "bundle_mib": bundle.get("total_mib"), "p50_ms": serve.get("p50_ms"), "p99_ms": serve.get("p99_ms")}


def evaluate(point: dict) -> dict:
    """Each goal of the point's size with its measured value and ``pass``: ``True``/``False``, or ``None`` when
    it was not measured. A partial stage (killed by ``--timeout``) that already exceeds a limit fails it; one
    that has not reached it yet is ``None`` (unknown)."""
    name, limits = goals_for(point["playlists"])
    values = measured(point)
    partial = {"train_peak_mib": (point.get("train") or {}).get("partial"),
               "serve_peak_mib": (point.get("serve") or {}).get("partial"),
               "p50_ms": (point.get("serve") or {}).get("partial"),
               "p99_ms": (point.get("serve") or {}).get("partial")}
    out = {}
    for metric, limit in limits.items():
        v = values.get(metric)
        if v is None:
            ok = None
        elif v > limit:
            ok = False
        else:
            ok = None if partial.get(metric) else True
        out[metric] = {"limit": limit, "value": v, "pass": ok}
    return {"set": name, "goals": out,
            "pass": (all(g["pass"] for g in out.values()) if all(g["pass"] is not None for g in out.values())
                     else False if any(g["pass"] is False for g in out.values()) else None)}


def ratios(point: dict) -> dict[str, float | None]:
    """Our numbers as multiples of ALS's (train time / ALS fit time, and so on)."""
    train, serve, als = point.get("train") or {}, point.get("serve") or {}, point.get("als") or {}

    def r(a, b):
        return round(a / b, 2) if a is not None and b else None

    return {"train_seconds": r(train.get("wall_seconds"), als.get("fit_seconds")),
            "train_peak": r(train.get("peak_rss_mib"), als.get("peak_rss_mib")),
            "p50": r(serve.get("p50_ms"), als.get("p50_ms")),
            "p99": r(serve.get("p99_ms"), als.get("p99_ms"))}


def point_key(label: str, playlists: int) -> str:
    return f"{label}/{playlists}"


def merge_point(doc: dict | None, point: dict) -> dict:
    """``doc`` (the results file's content, or ``None``) with ``point`` put under its key (label/size),
    replacing an earlier point of the same key and keeping every other one."""
    doc = dict(doc or {})
    if doc.get("format", FORMAT) != FORMAT:
        raise SystemExit(f"{RESULTS} has format {doc.get('format')!r}, not {FORMAT!r}; move it away first")
    points = dict(doc.get("points") or {})
    points[point_key(point["label"], point["playlists"])] = point
    return {"format": FORMAT, "points": dict(sorted(points.items(), key=lambda kv: (kv[1]["label"],
                                                                                      kv[1]["playlists"])))}


def write_atomic(path: Path, doc: dict) -> None:
    """Write ``doc`` as JSON to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


def save_point(path: Path, point: dict) -> dict:
    """Merge ``point`` into the results file, under a lock (two runs may share the file)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"mpd-scale-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(path.read_text()) if path.exists() else None
        doc = merge_point(doc, point)
        write_atomic(path, doc)
    return doc


def _fmt(v, spec: str = ",.0f", partial: bool = False) -> str:
    if v is None:
        return "-"
    return ("≥" if partial else "") + format(v, spec)


def _ms(stage: dict) -> str:
    """Wall p50/p99, and CPU p50/p99 in parentheses when recorded."""
    out = f"{_fmt(stage.get('p50_ms'))}/{_fmt(stage.get('p99_ms'))}"
    if stage.get("cpu_p50_ms") is not None:
        out += f" ({_fmt(stage['cpu_p50_ms'])}/{_fmt(stage['cpu_p99_ms'])})"
    return out


def _mark(ok) -> str:
    return {True: " ok", False: " FAIL", None: ""}[ok]


def table(doc: dict) -> str:
    """The results as a Markdown table (one row per point)."""
    head = ("| label | playlists | entries | tracks | once | train s | train peak MiB | bundle MiB | "
            "serve peak MiB | p50/p99 ms (CPU) | ALS fit s | ALS peak MiB | ALS p50/p99 ms (CPU) | goals |")
    rows = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    for p in (doc.get("points") or {}).values():
        w, t, b, s, a = (p.get(x) or {} for x in STAGES)
        g = p.get("evaluation") or evaluate(p)
        gg = g["goals"]
        tpart, spart = bool(t.get("partial")), bool(s.get("partial"))
        rows.append("| " + " | ".join([
            p["label"], f"{p['playlists']:,}", _fmt(w.get("entries")), _fmt(w.get("distinct_tracks")),
            _fmt(w.get("share_tracks_once"), ".0%"),
            _fmt(t.get("wall_seconds"), ",.0f", tpart) + (" (partial)" if tpart else ""),
            _fmt(t.get("peak_rss_mib"), ",.0f", tpart) + _mark(gg.get("train_peak_mib", {}).get("pass")),
            _fmt(b.get("total_mib")) + _mark(gg.get("bundle_mib", {}).get("pass")),
            _fmt(s.get("peak_rss_mib"), ",.0f", spart) + _mark(gg.get("serve_peak_mib", {}).get("pass")),
            _ms(s) + _mark(None if "p50_ms" not in gg else (gg["p50_ms"]["pass"] and gg["p99_ms"]["pass"])),
            _fmt(a.get("fit_seconds")), _fmt(a.get("peak_rss_mib"), ",.0f", bool(a.get("partial"))),
            _ms(a),
            {True: "pass", False: "fail", None: "incomplete"}[g["pass"]]]) + " |")
    return "\n".join(rows)


def stage_peaks(events: list[dict], samples: list[tuple[float, float]]) -> dict[str, float]:
    """The peak resident memory (MiB) of each stage of a run: a stage starts at a log line of a ``modules``
    logger (``modules.two_tower.training`` → ``two_tower``) and lasts until a line of another stage (lines of
    other loggers, e.g. TensorFlow's, belong to the stage they come in). The memory is taken from the samples
    and from the log lines' stamps."""
    starts: list[float] = []
    names: list[str] = []
    for e in events:
        logger = e.get("logger") or ""
        if not logger.startswith("modules."):
            continue
        name = stage_name(logger)
        if not names or names[-1] != name:
            starts.append(e["s"])
            names.append(name)
    out: dict[str, float] = {}
    for s, rss in [*samples, *((e["s"], e["rss_mib"]) for e in events)]:
        i = bisect.bisect_right(starts, s) - 1
        name = names[i] if i >= 0 else "start"
        out[name] = max(out.get(name, 0.0), rss)
    return out


def stage_name(logger: str) -> str:
    parts = logger.split(".")
    if parts[0] == "modules" and len(parts) > 1:
        return parts[1] if parts[1] not in ("hybrid", "cli") or len(parts) < 3 else f"{parts[1]}.{parts[2]}"
    return logger or "start"


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear between the closest ranks (numpy's default)."""
    v = sorted(values)
    if not v:
        raise ValueError("no values")
    pos = (len(v) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bundle_sizes(path: Path) -> dict:
    """The bundle folder's size per part (MiB), ``other`` being the rest, so the parts sum to the total."""
    from modules.bundle import PART_ENTRIES, Bundle

    bundle = Bundle(path)
    parts = {name: folder_bytes(bundle.part(name)) for name in PART_ENTRIES if bundle.part(name).exists()}
    parts["tracks"] = folder_bytes(bundle.tracks_file) if bundle.tracks_file.exists() else 0
    total = folder_bytes(path)
    parts["other"] = total - sum(parts.values())
    out = {"total_bytes": total, "total_mib": round(total / MIB, 1),
           "parts_mib": {k: round(v / MIB, 1) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])},
           "parts_bytes": parts}
    if bundle.rules_file.exists():
        import pyarrow.parquet as pq

        out["rules"] = pq.ParquetFile(bundle.rules_file).metadata.num_rows
    return out


# -- running a stage as a child process ------------------------------------------------------------------
def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def run_child(cmd: list[str], *, timeout: float | None, log_file: Path,
              echo: bool | Callable[[dict], None] = True) -> dict:
    """Run ``cmd`` (its own process group), sampling its memory each second and stamping its log lines.

    Returns wall time, the exact peak resident memory (``ru_maxrss`` from ``os.wait4``, also after a kill),
    ``partial`` (killed by ``timeout``), the exit code, the timeline (``events``) and the samples. ``echo``
    prints each event as it comes (a callable prints it its own way: ``benchmarks.train_scale``).
    """
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONUNBUFFERED": "1"}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True,
                             errors="replace", start_new_session=True)
    samples: list[tuple[float, float]] = []
    done = threading.Event()
    killed = threading.Event()

    def sample() -> None:
        while not done.is_set():
            r = rss_mib(child.pid)
            if r is not None:
                samples.append((round(time.perf_counter() - t0, 1), round(r)))
            if timeout and time.perf_counter() - t0 > timeout and not killed.is_set():
                killed.set()
                log.warning("timeout: killing %s after %.0f s", shlex.join(cmd[:4]), timeout)
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            done.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    events: list[dict] = []
    tail: list[str] = []
    with open(log_file, "w") as out:
        for raw in child.stderr:
            out.write(raw)
            for line in raw.split("\r"):
                line = line.strip()
                m = LOG_LINE.search(line)
                logger, text = (m.group(1), m.group(2)) if m else ("", line if EPOCH.search(line) else None)
                if text:
                    e = {"s": round(time.perf_counter() - t0, 1), "rss_mib": round(rss_mib(child.pid) or 0),
                         "logger": logger, "log": text[:160]}
                    events.append(e)
                    if callable(echo):
                        echo(e)
                    elif echo:
                        print(f"{e['s']:8.1f} s {e['rss_mib']:7d} MiB  {text[:110]}", flush=True)
            tail = (tail + [raw.rstrip()])[-20:]
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    return {"command": shlex.join(["python", *cmd[1:]]), "wall_seconds": round(wall, 1),
            "peak_rss_mib": round(max(peak, max((r for _, r in samples), default=0))),
            "partial": killed.is_set(), "exit_code": child.returncode, "events": events, "samples": samples,
            "tail": tail if child.returncode != 0 else []}


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def _check(result: dict, what: str) -> None:
    if result["exit_code"] != 0 and not result["partial"]:
        print("\n".join(result["tail"]), file=sys.stderr)
        raise SystemExit(f"{what} failed with exit code {result['exit_code']}: {result['command']}")


# -- the child processes for serving and ALS -------------------------------------------------------------
def _latencies(answer, playlists: list[dict]) -> tuple[float, list[float], list[float]]:
    """The first call's time (imports, caches: not counted), then each playlist's wall and CPU time (ms), the
    first again. Each call runs with BLAS and OpenMP on one thread, as the product answers a query
    (``modules.base.single_thread_native``): on a busy 2-core machine, threads only wait for each other."""
    from tqdm import tqdm

    from modules.base import single_thread_native

    with single_thread_native():
        t = time.perf_counter()
        answer(playlists[0])
        first = (time.perf_counter() - t) * 1000
        wall, cpu = [], []
        for p in tqdm(playlists, desc="recommend", unit="playlist", mininterval=5):
            t, c = time.perf_counter(), time.process_time()
            answer(p)
            wall.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
    return first, wall, cpu


def _self_rss() -> dict:
    status = Path("/proc/self/status").read_text().splitlines()
    get = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status if line.startswith(("VmRSS", "VmHWM"))}
    return {"rss_mib": round(get.get("VmRSS", 0)), "hwm_mib": round(get.get("VmHWM", 0))}


def serve_child(bundle: Path, challenge: Path, out: Path) -> None:
    """Load the bundle and answer each challenge playlist alone at k=500; write the numbers to ``out``."""
    from modules.mpd import read_challenge
    from modules.query import Query
    from modules.recommender import Recommender

    playlists = read_challenge(challenge)["playlists"]
    t = time.perf_counter()
    rec = Recommender.load(bundle)
    load_s = time.perf_counter() - t
    after_load = _self_rss()
    log.info("loaded %s in %.1f s, %d MiB resident", bundle, load_s, after_load["rss_mib"])
    features = rec.audio_features

    def answer(p):
        (a,) = rec.recommend_many([Query.from_playlist(p, index=0, k=K, explain=False, features=features)])
        if isinstance(a, Exception):
            raise a

    first, ms, cpu = _latencies(answer, playlists)
    write_atomic(out, {"load_seconds": round(load_s, 2), "rss_after_load_mib": after_load["rss_mib"],
                       "first_ms": round(first, 1), "ms": ms, "cpu_ms": cpu, "end": _self_rss(),
                       "tensorflow_imported": "tensorflow" in sys.modules})


def als_child(store: Path, challenge: Path, out: Path, threads: int) -> None:
    """Fit ``ALSRecommender`` (its defaults) on the store and answer each challenge playlist at k=500."""
    from modules.baselines.als import ALSRecommender
    from modules.mpd import read_challenge
    from modules.store import PlaylistStore

    playlists = read_challenge(challenge)["playlists"]
    st = PlaylistStore(store)
    t = time.perf_counter()
    model = ALSRecommender(num_threads=threads).fit(st)
    fit_s = time.perf_counter() - t
    log.info("ALS fitted in %.1f s, %d MiB resident", fit_s, _self_rss()["rss_mib"])
    after_fit = _self_rss()
    first, ms, cpu = _latencies(
        lambda p: model.recommend([x["track_uri"] for x in p.get("tracks", ())], p.get("name"), K), playlists)
    write_atomic(out, {"fit_seconds": round(fit_s, 2), "rss_after_fit_mib": after_fit["rss_mib"],
                       "first_ms": round(first, 1), "ms": ms, "cpu_ms": cpu, "end": _self_rss()})


def _latency_summary(s: dict) -> dict:
    """p50/p99/mean/max of the wall times (``ms``) and p50/p99 of the CPU times (``cpu_ms``) a child wrote."""
    ms, cpu = s.get("ms") or [], s.get("cpu_ms") or []
    if not ms:
        return {}
    out = {"playlists": len(ms), "p50_ms": round(percentile(ms, 50), 1), "p99_ms": round(percentile(ms, 99), 1),
           "mean_ms": round(sum(ms) / len(ms), 1), "max_ms": round(max(ms), 1)}
    if cpu:
        out |= {"cpu_p50_ms": round(percentile(cpu, 50), 1), "cpu_p99_ms": round(percentile(cpu, 99), 1)}
    return out


# -- one point -------------------------------------------------------------------------------------------
def world_stats(store: Path) -> dict:
    from modules.store import PlaylistStore

    s = PlaylistStore(store).stats()
    return {"playlists": s["playlists"], "entries": s["tracks"], "distinct_tracks": s["unique_tracks"],
            "distinct_artists": s["unique_artists"], "distinct_albums": s["unique_albums"],
            "share_tracks_once": round(s["share_tracks_seen_once"], 4),
            "top_track_share": round(s["top_track_share"], 4)}


def run_point(n: int, args, stages: set[str]) -> dict:
    from modules.bundle import Bundle
    from modules.store import MANIFEST as STORE_MANIFEST

    base = args.data / f"mpd-{n}-s{args.seed}"
    mpd, split = base / "mpd", base / f"split-pc{args.per_category}"
    world_store, train_store = base / "store", split / "store"
    tag = "-" + hashlib.sha256(args.params.encode()).hexdigest()[:8] if args.params else ""
    bundle = base / f"bundle-e{args.epochs}-pc{args.per_category}{tag}"
    logs = base / "logs"
    point = {"label": args.label, "playlists": n, "seed": args.seed, "epochs": args.epochs,
             "per_category": args.per_category, "params": json.loads(args.params) if args.params else None,
             "command": shlex.join(["python", "-m", "benchmarks.mpd_scale", *sys.argv[1:]]),
             "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024 ** 3:.0f} GiB",
             "load_average_at_start": round(os.getloadavg()[0], 1),
             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    done = json.loads(args.out.read_text()).get("points", {}) if args.out.exists() else {}
    old = done.get(point_key(args.label, n))
    for stage in STAGES:  # a stage not run this time keeps its earlier numbers
        if stage not in stages and old and old.get(stage):
            point[stage] = old[stage]
    # every run that wrote this point, oldest first (which stages it ran, when, on how busy a machine)
    point["runs"] = [*((old or {}).get("runs") or []),
                     {k: point[k] for k in ("command", "started", "load_average_at_start")}
                     | {"stages": [s for s in STAGES if s in stages]}]

    def save():
        point["evaluation"] = evaluate(point)
        point["ratios_to_als"] = ratios(point)
        save_point(args.out, point)

    need_data = stages & {"world", "train", "serve", "als"}
    whole_world = args.train_from == "world"
    if whole_world and stages & {"serve", "als"}:
        raise SystemExit("--train-from world trains on every playlist, so nothing is held out to serve or to fit "
                         "ALS against: run the serve and als stages with --train-from store or slices")
    if need_data and whole_world and "world" not in stages:  # the slices and their store only (no split)
        w = {}
        if not (world_store / STORE_MANIFEST).exists():
            r = run_child(_python("modules", "ingest", str(mpd), "--out", str(world_store)), timeout=args.timeout,
                          log_file=logs / "ingest_world.log")
            _check(r, "ingest_world")
            w["ingest_world"] = {k: r[k] for k in ("command", "wall_seconds", "peak_rss_mib")}
        if not point.get("world"):
            point["world"] = {**world_stats(world_store), **w, "folder": str(base)}
            save()
    elif need_data:
        w: dict = {}
        # the slices only make the split and the world's store: once both exist they may be gone (18 GB at 1M)
        needs_slices = not (split / "challenge_set.json").exists() or (
            "world" in stages and not (world_store / STORE_MANIFEST).exists())
        if needs_slices and not (mpd.exists() and len(list(mpd.glob("mpd.slice.*.json"))) * 1000 >= n):
            r = run_child(_python("modules", "world", "--shape", "mpd", "--playlists", str(n), "--seed",
                                  str(args.seed), "--out", str(mpd), "--jobs", "2"),
                          timeout=args.timeout, log_file=logs / "world.log")
            _check(r, "world")
            w["generate"] = {k: r[k] for k in ("command", "wall_seconds", "peak_rss_mib")}
        if not (split / "challenge_set.json").exists():
            r = run_child(_python("modules", "challenge", str(mpd), "--out", str(split), "--per-category",
                                  str(args.per_category), "--seed", str(args.seed)),
                          timeout=args.timeout, log_file=logs / "challenge.log")
            _check(r, "challenge")
            w["challenge"] = {k: r[k] for k in ("command", "wall_seconds", "peak_rss_mib")}
        # the whole world's store only gives the world's statistics: ingested when they are asked for
        wanted = [(split / "train", train_store, "ingest_train")]
        if "world" in stages:
            wanted.insert(0, (mpd, world_store, "ingest_world"))
        for src, dst, name in wanted:
            if not (dst / STORE_MANIFEST).exists():
                r = run_child(_python("modules", "ingest", str(src), "--out", str(dst)), timeout=args.timeout,
                              log_file=logs / f"{name}.log")
                _check(r, name)
                w[name] = {k: r[k] for k in ("command", "wall_seconds", "peak_rss_mib")}
        if ("world" in stages or not point.get("world")) and (world_store / STORE_MANIFEST).exists():
            point["world"] = {**world_stats(world_store), "train_split": world_stats(train_store), **w,
                              "folder": str(base)}
            print(f"world {n:,}: {point['world']['entries']:,} entries, {point['world']['distinct_tracks']:,} "
                  f"tracks, {point['world']['share_tracks_once']:.0%} in one playlist", flush=True)
            save()
        elif not point.get("world"):  # no world store (the world stage not run): the training split's stats only
            point["world"] = {"train_split": world_stats(train_store), **w, "folder": str(base)}
            save()

    if "train" in stages:
        source = {"store": train_store, "world": world_store}.get(args.train_from, split / "train")
        cmd = _python("modules", "train", "--mpd", str(source), "--out", str(bundle), "--seed",
                      str(args.seed), "--epochs", str(args.epochs)) + (["--params", args.params] if args.params
                                                                       else [])
        if bundle.exists():  # train refuses nothing here: a finished bundle is replaced (atomic folder)
            log.info("retraining %s", bundle)
        r = run_child(cmd, timeout=args.timeout, log_file=logs / f"train-{bundle.name}.log")
        failed = r["exit_code"] != 0 and not r["partial"]
        peak_at = next((s for s, m in r["samples"] if m == max(m for _, m in r["samples"])), None) \
            if r["samples"] else None
        point["train"] = {**{k: r[k] for k in ("command", "wall_seconds", "peak_rss_mib", "partial", "exit_code")},
                          "peak_sampled_at_seconds": peak_at, "stage_peaks_mib": stage_peaks(r["events"], r["samples"]),
                          "events": r["events"], "rss_every_10s": r["samples"][::10]}
        if failed:  # keep what it measured until it failed (a partial point), then stop
            point["train"] |= {"partial": True, "failed": True, "tail": r["tail"]}
            save()
            _check(r, "train")
        if not r["partial"]:
            curve = json.loads(Bundle(bundle).training_curve.read_text())["epochs"]
            point["train"]["two_tower_epochs"] = [
                {k: e.get(k) for k in ("epoch", "examples", "train_seconds", "seconds")} for e in curve]
        save()
    train_ok = Bundle(bundle).manifest_file.exists() and not (point.get("train") or {}).get("partial")

    if "bundle" in stages and train_ok:
        point["bundle"] = {"path": str(bundle), **bundle_sizes(bundle)}
        save()

    if "serve" in stages and train_ok:
        out = base / "serve.json"
        out.unlink(missing_ok=True)
        r = run_child(_python("benchmarks.mpd_scale", "_serve", str(bundle), str(split / "challenge_set.json"),
                              str(out)), timeout=args.timeout, log_file=logs / "serve.log")
        _check(r, "serve")
        s = json.loads(out.read_text()) if out.exists() else {"ms": []}
        point["serve"] = {**{k: r[k] for k in ("command", "wall_seconds", "peak_rss_mib", "partial")},
                          "load_seconds": s.get("load_seconds"), "rss_after_load_mib": s.get("rss_after_load_mib"),
                          "first_ms": s.get("first_ms"), "tensorflow_imported": s.get("tensorflow_imported"),
                          "k": K, "explain": False, "load_average_after": round(os.getloadavg()[0], 1),
                          **_latency_summary(s)}
        save()

    if "als" in stages:
        out = base / "als.json"
        out.unlink(missing_ok=True)
        r = run_child(_python("benchmarks.mpd_scale", "_als", str(train_store), str(split / "challenge_set.json"),
                              str(out), "--threads", str(args.als_threads)),
                      timeout=args.timeout, log_file=logs / "als.log")
        _check(r, "als")
        s = json.loads(out.read_text()) if out.exists() else {"ms": []}
        point["als"] = {**{k: r[k] for k in ("command", "wall_seconds", "peak_rss_mib", "partial")},
                        "fit_seconds": s.get("fit_seconds"), "rss_after_fit_mib": s.get("rss_after_fit_mib"),
                        "first_ms": s.get("first_ms"),
                        "k": K, "load_average_after": round(os.getloadavg()[0], 1), **_latency_summary(s)}
        save()
    save()
    return point


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if argv[:1] == ["_serve"]:
        serve_child(Path(argv[1]), Path(argv[2]), Path(argv[3]))
        return 0
    if argv[:1] == ["_als"]:
        threads = int(argv[argv.index("--threads") + 1]) if "--threads" in argv else 0
        als_child(Path(argv[1]), Path(argv[2]), Path(argv[3]), threads)
        return 0
    ap = argparse.ArgumentParser(prog="python -m benchmarks.mpd_scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000", help="comma-separated numbers of playlists (default 10000)")
    ap.add_argument("--stages", default=",".join(STAGES),
                    help=f"comma-separated stages to run, of {', '.join(STAGES)} (default all); a stage not run "
                    "keeps the numbers an earlier run of the same label and size recorded")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=3, help="two-tower epochs (default 3)")
    ap.add_argument("--per-category", type=int, default=30,
                    help="challenge playlists per category (default 30: 300 test playlists)")
    ap.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                    help="kill a stage that runs longer and record it as partial (default: no limit)")
    ap.add_argument("--params", default=None, metavar="JSON", help="passed to `train --params`")
    ap.add_argument("--train-from", choices=("slices", "store", "world"), default="slices",
                    help="what `train --mpd` reads: the training split's slices (default; train's own ingest is "
                    "measured), its store, ingested by the world stage (skips that ingest: for 1M, where it "
                    "takes ~20 minutes), or the whole world's store (no challenge split made, so no serve or als "
                    "stage: a train's memory and time where the split is too slow to make)")
    ap.add_argument("--als-threads", type=int, default=0, help="threads for the ALS reference (0: all cores)")
    ap.add_argument("--label", default="HEAD", help="names the points (e.g. the commit measured)")
    ap.add_argument("--data", type=Path, default=Path("data/bench"), help="where worlds and bundles go")
    ap.add_argument("--out", type=Path, default=RESULTS,
                    help=f"results file (default {RESULTS.relative_to(HERE.parent)})")
    ap.add_argument("--table", action="store_true", help="print the results table and stop")
    args = ap.parse_args(argv)
    if args.table:
        print(table(json.loads(args.out.read_text()) if args.out.exists() else {}))
        return 0
    stages = {s.strip() for s in args.stages.split(",") if s.strip()}
    if stages - set(STAGES):
        ap.error(f"unknown stage(s) {', '.join(sorted(stages - set(STAGES)))}; the stages are {', '.join(STAGES)}")
    if args.params:
        try:
            json.loads(args.params)
        except json.JSONDecodeError as err:
            ap.error(f"--params is not JSON: {err}")
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        ap.error(f"--sizes takes numbers separated by commas, e.g. 10000,30000; got {args.sizes!r}")
    for n in sizes:
        run_point(n, args, stages)
    print(table(json.loads(args.out.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
