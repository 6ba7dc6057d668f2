"""Association-rule benchmarks: miner speed and memory, sparse vs mlxtend, scoring latency, aggregation choice.

    # miner time and peak memory (one `python -m modules rules` run, measured from outside)
    python -m benchmarks.rules_bench mine --store data/bench/world-1000000-s0/store --engine sparse \
        --min-support 0.001 --min-confidence 0.1 --label sparse-1m
    # both engines on the same data: identical rules? time ratio
    python -m benchmarks.rules_bench compare --store data/bench/world-20000-s0/store --min-support 0.001
    # RuleModel.score latency for playlists of 100 seeds
    python -m benchmarks.rules_bench latency --rules data/bench/rules-1m.parquet --store STORE --seeds 100
    # choose the aggregation and thresholds on a validation split carved from the TRAINING playlists
    python -m benchmarks.rules_bench tune --playlists 3000 --per-category 30
    # the train command's rule counting (evidence grid, then mining at its min count), pairs in memory vs in
    # chunks on disk: peak memory, time, and whether the rules are identical
    python -m benchmarks.rules_bench pairs --stores /work/bench/mpd-10000-s0/split-pc30/store --label mpd-10k
    # the train command's evidence tuning (validation split carved as the hybrid does, rule counts with the min
    # count ladder, mining, every setting scored), without the ladder ("before"), with it ("after"), and with it
    # searching one rung past the first within reach ("above")
    python -m benchmarks.rules_bench tuning --stores /work/bench/mpd-100000-s0/split-pc30/train --label mpd-100k

Results land in benchmarks/results/rules/<kind>-<label>.json (committed: they are the evidence for the numbers
in docs/rules.md). Timings are wall-clock on a shared 2-core machine: other jobs make them noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RESULTS = ROOT / "benchmarks" / "results" / "rules"
PY = sys.executable


def save(kind: str, label: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = dict(result, kind=kind, label=label, command=" ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                  machine={"cpus": os.cpu_count(), "python": platform.python_version()},
                  date=time.strftime("%Y-%m-%d %H:%M:%S"))
    path = RESULTS / f"{kind}-{label}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"-> {path.relative_to(ROOT)}")
    return path


def run_measured(args: list[str], timeout: float | None = None) -> dict:
    """Run a command; wall seconds and the peak RSS of that process alone (``os.wait4``); killed after
    ``timeout`` seconds (``timed_out``; the peak is then the one reached so far)."""
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=err, text=True)
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer:
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        if timer:
            timer.cancel()
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    log = [line.split("\r")[-1] for line in stderr.splitlines() if "INFO" in line or "WARNING" in line
           or "error" in line or line.startswith('{"step"')]
    return {"returncode": proc.returncode, "seconds": round(seconds, 2),
            "timed_out": bool(timeout and proc.returncode < 0 and seconds >= timeout),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_gb": round(usage.ru_maxrss / 1e6, 3),
            "load_average_before": list(load_before),
            "stdout": stdout.strip(), "log": log}


def run_child(cmd: list[str], out: Path, timeout: float | None, log_lines: int) -> dict:
    """``run_measured`` on a bench child that writes its steps to ``out``: the measure, the last ``log_lines`` of
    its log, and its steps (those it printed before being killed, if it was)."""
    r = run_measured(cmd, timeout=timeout)
    r.pop("stdout", None)
    r["log"] = r["log"][-log_lines:]
    if out.exists():
        r.update(json.loads(out.read_text()))
    else:  # killed: the steps it finished
        r["steps"] = [json.loads(line) for line in r["log"] if line.startswith('{"step"')]
    return r


def rules_cmd(store: str, out: Path, engine: str, min_support: float, min_confidence: float, max_len: int,
              extra=()) -> list[str]:
    return [PY, "-m", "modules", "rules", "--mpd", str(store), "--out", str(out), "--engine", engine,
            "--min-support", str(min_support), "--min-confidence", str(min_confidence), "--max-len", str(max_len),
            *extra]


def cmd_mine(args) -> int:
    out = Path(args.out) if args.out else ROOT / "data" / "bench" / f"rules-{args.label}.parquet"
    r = run_measured(rules_cmd(args.store, out, args.engine, args.min_support, args.min_confidence, args.max_len,
                               ["--jobs", str(args.jobs)]))
    print(r["stdout"] or "\n".join(r["log"][-3:]))
    print(f"{args.engine}: {r['seconds']} s wall, {r['cpu_seconds']} s CPU, peak RSS {r['peak_rss_gb']} GB "
          f"(exit {r['returncode']})")
    save("mine", args.label, {"store": args.store, "engine": args.engine, "jobs": args.jobs,
                              "min_support": args.min_support,
                              "min_confidence": args.min_confidence, "max_len": args.max_len, **r})
    return r["returncode"]


def cmd_compare(args) -> int:
    import numpy as np
    import pandas as pd

    label = args.label or f"{Path(args.store).parent.name}-s{args.min_support:g}"
    runs, frames = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ("sparse", "mlxtend"):
            out = Path(tmp) / f"{engine}.parquet"
            runs[engine] = run_measured(rules_cmd(args.store, out, engine, args.min_support, args.min_confidence,
                                                  args.max_len))
            print(f"{engine}: {runs[engine]['seconds']} s, peak {runs[engine]['peak_rss_gb']} GB: "
                  f"{runs[engine]['stdout'] or runs[engine]['log'][-1:]}")
            if runs[engine]["returncode"] == 0:
                frames[engine] = pd.read_parquet(out)
    same = None
    if len(frames) == 2:
        s, m = frames["sparse"], frames["mlxtend"]
        keys = [list(zip(f["antecedents"].map(tuple), f["consequents"].map(tuple), strict=True)) for f in (s, m)]
        diffs = {c: float(np.nanmax(np.abs(np.where(np.isinf(s[c]), 0, s[c]) - np.where(np.isinf(m[c]), 0, m[c]))))
                 if len(s) and keys[0] == keys[1] else None
                 for c in ("support", "confidence", "lift", "leverage", "conviction")}
        same = {"rules": [len(s), len(m)], "same_rules_same_order": keys[0] == keys[1], "max_abs_diff": diffs,
                "same_inf": bool(len(s) == len(m) and (np.isinf(s["conviction"]) == np.isinf(m["conviction"])).all())}
        print(same)
    ratio = (runs["mlxtend"]["seconds"] / runs["sparse"]["seconds"]) if len(frames) == 2 else None
    cpu_ratio = (runs["mlxtend"]["cpu_seconds"] / runs["sparse"]["cpu_seconds"]) if len(frames) == 2 else None
    if ratio:
        print(f"mlxtend / sparse time: {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU")
    save("compare", label, {"store": args.store, "min_support": args.min_support, "min_confidence":
                            args.min_confidence, "max_len": args.max_len, "runs": runs, "equality": same,
                            "time_ratio_mlxtend_over_sparse": ratio, "cpu_ratio_mlxtend_over_sparse": cpu_ratio})
    return 0


def cmd_latency(args) -> int:
    import numpy as np

    from modules.rules import RuleModel
    from modules.store import PlaylistStore

    t0 = time.perf_counter()
    model = RuleModel.load(args.rules, args.aggregation)
    load_s = time.perf_counter() - t0
    import resource

    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # peak so far: mostly the model
    store = PlaylistStore(args.store)
    pl = store.playlists
    rng = np.random.default_rng(args.seed)
    long = np.sort(pl.loc[pl["num_tracks"] >= args.seeds, "pid"].to_numpy())
    pids = np.sort(rng.choice(long, size=min(args.playlists, len(long)), replace=False))
    entries = store.playlist_tracks
    entries = entries.loc[entries["pid"].isin(pids)].sort_values(["pid", "pos"], kind="stable")
    seed_lists = [g["track_uri"].tolist()[: args.seeds] for _, g in entries.groupby("pid", sort=True)]
    for s in seed_lists[:5]:  # warm-up
        model.score(s, k=500)
    times, fired, cands = [], [], []
    for s in seed_lists:
        t = time.perf_counter()
        res = model.score(s, k=500)
        times.append(time.perf_counter() - t)
        fired.append(len(res.firing))
        cands.append(len(res))
    ms = np.array(times) * 1000
    result = {"rules_file": args.rules, "rules": len(model.rules), "indexed_rules": model.n_rules,
              "aggregation": args.aggregation, "load_seconds": round(load_s, 2),
              "peak_rss_gb_after_load": round(rss_gb, 2), "playlists": len(seed_lists),
              "seeds": args.seeds, "ms_median": round(float(np.median(ms)), 3),
              "ms_p95": round(float(np.percentile(ms, 95)), 3), "ms_max": round(float(ms.max()), 3),
              "firing_rules_median": float(np.median(fired)), "candidates_median": float(np.median(cands))}
    print(json.dumps(result, indent=2))
    save("latency", args.label, result)
    return 0


def cmd_estimate(args) -> int:
    """The mlxtend engine's go / no-go (``check_mlxtend_budget``) for the first N playlists of a store."""
    import numpy as np

    from modules.rules import MemoryBudgetError, available_memory, check_mlxtend_budget, load_transactions
    from modules.store import PlaylistStore

    store = PlaylistStore(args.store)
    pids = np.sort(store.playlists["pid"].to_numpy())[: args.playlists] if args.playlists else None
    tx = load_transactions(store, pids)
    budget = 0.8 * available_memory()
    result = {"store": args.store, "playlists": tx.n_playlists, "min_support": args.min_support,
              "min_confidence": args.min_confidence, "max_len": args.max_len, "budget_gb": round(budget / 1e9, 2)}
    try:
        est, _ = check_mlxtend_budget(tx, args.min_support, args.min_confidence, args.max_len, budget)
        result.update(refused=False, estimate_gb=round(est["bytes"] / 1e9, 2),
                      parts_gb={k: round(v / 1e9, 2) for k, v in est["parts"].items()},
                      frequent_tracks=est["frequent_tracks"], frequent_pairs=est["frequent_pairs"])
    except MemoryBudgetError as err:
        result.update(refused=True, message=str(err))
    print(json.dumps(result, indent=2))
    save("estimate", args.label, result)
    return 0


def cmd_tune(args) -> int:
    import numpy as np

    from benchmarks.quality import prepare
    from modules.base import recommend_challenge
    from modules.challenge import split_store
    from modules.metrics import evaluate
    from modules.rules import AGGREGATIONS, RuleRecommender
    from modules.store import PlaylistStore

    base = prepare(args.playlists, args.per_category, args.seed)
    store = PlaylistStore(base / f"train-store-{args.per_category}")
    # validation playlists come out of the TRAINING store; the test split is never read here
    split = split_store(store, per_category=args.val_per_category, seed=args.seed + 1)
    artist_of = dict(zip(store.tracks["track_uri"], store.tracks["artist_name"], strict=True))
    rows = []
    grid = [(mc, ml, conf) for mc in args.min_counts for ml in args.max_lens for conf in args.min_confidences]
    pop = RuleRecommender(min_support=1.0).fit(store, split.train_pids)  # no rules: popularity only
    pop_eval = evaluate(recommend_challenge(pop, split.challenge, show_progress=False), split.truth,
                        artist_of=artist_of).summary()
    rows.append({"config": "popularity (no rules)", "metrics": pop_eval})
    print(f"{'popularity':40s} NDCG {pop_eval['ALL']['ndcg']:.4f}  R-prec {pop_eval['ALL']['r_precision']:.4f}")
    for mc, ml, conf in grid:
        t0 = time.perf_counter()
        rec = RuleRecommender(min_count=mc, max_len=ml, min_confidence=conf).fit(store, split.train_pids)
        fit_s = time.perf_counter() - t0
        for agg in AGGREGATIONS:
            rec.model_.aggregation = agg
            t0 = time.perf_counter()
            summary = evaluate(recommend_challenge(rec, split.challenge, show_progress=False), split.truth,
                               artist_of=artist_of).summary()
            a = summary["ALL"]
            cfg = {"min_count": mc, "max_len": ml, "min_confidence": conf, "aggregation": agg}
            rows.append({"config": cfg, "rules": len(rec.model_.rules), "fit_seconds": round(fit_s, 2),
                         "recommend_seconds": round(time.perf_counter() - t0, 2), "metrics": summary})
            print(f"min_count={mc} max_len={ml} conf={conf:<5} {agg:15s} NDCG {a['ndcg']:.4f}  "
                  f"R-prec {a['r_precision']:.4f}  clicks {a['clicks']:.2f}  ({len(rec.model_.rules):,} rules)",
                  flush=True)
    tuned = [r for r in rows if isinstance(r["config"], dict)]
    best = max(tuned, key=lambda r: (r["metrics"]["ALL"]["ndcg"], r["metrics"]["ALL"]["r_precision"]))
    by_agg = {agg: float(np.mean([r["metrics"]["ALL"]["ndcg"] for r in tuned if r["config"]["aggregation"] == agg]))
              for agg in AGGREGATIONS}
    print("best:", best["config"], "NDCG", round(best["metrics"]["ALL"]["ndcg"], 4))
    print("mean NDCG over the grid per aggregation:", {k: round(v, 4) for k, v in by_agg.items()})
    save("tune", args.label or f"{args.playlists}-s{args.seed}-pc{args.per_category}",
         {"world_playlists": args.playlists, "test_per_category": args.per_category,
          "validation_per_category": args.val_per_category, "train_playlists_for_fit": int(len(split.train_pids)),
          "validation_playlists": len(split.truth), "best": best["config"], "mean_ndcg_by_aggregation": by_agg,
          "rows": rows})
    return 0


def _stepper():
    """A list of steps and the function that adds one (seconds since ``t0``, this process's peak RSS so far) and
    prints it as a JSON line on stderr (what the parent keeps if the child is killed)."""
    import resource

    steps = []

    def step(name, t0, **kw):
        steps.append({"step": name, "seconds": round(time.perf_counter() - t0, 2),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), **kw})
        print(json.dumps(steps[-1]), file=sys.stderr, flush=True)

    return steps, step


PAIR_MODES = {"memory": 0, "chunked": None, "auto": None}  # chunked: --chunk-pairs (default: the package's)


def cmd_pairs_child(args) -> int:
    """One mode of ``pairs`` in this process: the evidence grid's rule counts (with the ladder's), then the rules
    mined at the min count the tuning would mine at (``tuning.count_and_plan``), as ``train`` does; a JSON line of
    steps."""
    import logging

    import numpy as np

    from modules.rules import load_transactions, mine_rules
    from modules.rules.pair_chunks import DEFAULT_CHUNK_PAIRS, pair_occurrences
    from modules.rules.tuning import DEFAULT_MAX_RULES, count_and_plan
    from modules.store import PlaylistStore

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    chunk = {"memory": 0, "auto": None}.get(args.mode, args.chunk_pairs or DEFAULT_CHUNK_PAIRS)
    steps, step = _stepper()

    t0 = time.perf_counter()
    tx = load_transactions(PlaylistStore(args.store))
    step("load", t0, playlists=tx.n_playlists, entries=int(tx.matrix.nnz), tracks=int(tx.matrix.shape[1]),
         pair_occurrences=pair_occurrences(np.diff(tx.matrix.indptr)))
    t0 = time.perf_counter()
    counts, searched, _, base = count_and_plan(tx, args.min_confidence, args.max_rules or DEFAULT_MAX_RULES,
                                               chunk_pairs=chunk, spill_dir=args.spill_dir)
    step("grid_counts", t0, grid={f"{mc}/{cap}": v for (mc, cap), v in counts.items()},
         searched_min_counts=list(searched), mined_min_count=base)
    t0 = time.perf_counter()
    rules = mine_rules(tx, min_support=min(1.0, (base - 0.5) / tx.n_playlists), min_confidence=args.min_confidence,
                       max_len=2, chunk_pairs=chunk, spill_dir=args.spill_dir)
    step("mine", t0, rules=len(rules))
    rules.write(args.rules_out)
    Path(args.out).write_text(json.dumps({"mode": args.mode, "chunk_pairs": chunk, "steps": steps}))
    return 0


def cmd_pairs_compare(args) -> int:
    import pandas as pd

    frames = [pd.read_parquet(f) for f in args.files]
    print(json.dumps({"rules_file_equal": all(f.equals(frames[0]) for f in frames[1:]), "rules": len(frames[0])}))
    return 0


def cmd_pairs(args) -> int:
    """In-memory vs chunked pair counting on each store, each mode in a child process of its own (a child's
    ``ru_maxrss`` starts from its parent's peak, which stays small here: the rule files are compared in a child
    too)."""
    points = []
    for store in args.stores:
        point = {"store": store}
        with tempfile.TemporaryDirectory(dir=args.spill_dir) as tmp:
            for mode in args.modes:
                out, rules = Path(tmp) / f"{mode}.json", Path(tmp) / f"{mode}.parquet"
                cmd = ["nice", "-n", str(args.nice), PY, "-m", "benchmarks.rules_bench", "_pairs_child", store, mode,
                       str(out), str(rules), "--min-confidence", str(args.min_confidence)]
                cmd += ["--max-rules", str(args.max_rules)] if args.max_rules else []
                cmd += ["--chunk-pairs", str(args.chunk_pairs)] if args.chunk_pairs else []
                cmd += ["--spill-dir", tmp]
                point[mode] = r = run_child(cmd, out, args.memory_timeout if mode == "memory" and args.memory_timeout
                                            else args.timeout, 20)
                print(f"{Path(store).parent.parent.name} {mode}: {r['seconds']} s, peak {r['peak_rss_gb']} GB, "
                      f"exit {r['returncode']}{' (timed out)' if r['timed_out'] else ''}", flush=True)
            done = [m for m in args.modes if point[m]["returncode"] == 0]
            if len(done) > 1:  # in a child: a large read here would count in the next children's peak
                res = subprocess.run([PY, "-m", "benchmarks.rules_bench", "_pairs_compare",
                                      *[str(Path(tmp) / f"{m}.parquet") for m in done]],
                                     cwd=ROOT, capture_output=True, text=True, check=True)
                grids = [point[m]["steps"][1]["grid"] for m in done]
                point["identical"] = {**json.loads(res.stdout), "grid_counts_equal": all(g == grids[0] for g in grids),
                                      "modes": done}
                print(point["identical"], flush=True)
        points.append(point)
    save("pairs", args.label, {"min_confidence": args.min_confidence, "modes": args.modes, "points": points})
    return 0


# the ladder of min counts: none, the package's, or the package's searched one rung past the first within reach
TUNING_MODES = {"before": (), "after": None, "above": None}


def plan_one_rung_above(tx, min_confidence: float, max_rules: int, spill_dir=None) -> tuple:
    """``tuning.count_and_plan``, searching one more rung of the ladder past the first within reach where the ladder
    is used (a policy measured against the package's and not taken: docs/rules.md, the ladder section)."""
    from modules.rules.tuning import GRID_MIN_COUNTS, LADDER_MIN_COUNTS, count_and_plan, plan_grid

    counts, searched, rows, base = count_and_plan(tx, min_confidence, max_rules, spill_dir=spill_dir)
    higher = [r for r in LADDER_MIN_COUNTS if r > searched[-1] and (r, None) in counts]
    if len(searched) > len(GRID_MIN_COUNTS) and higher:
        searched = (*searched, higher[0])
        rows, base = plan_grid(counts, max_rules, searched)
    return counts, searched, rows, base


def cmd_tuning_child(args) -> int:
    """One mode of ``tuning`` in this process: carve the validation split as the hybrid does, count the grid
    (and the ladder's rungs), then ``tune_evidence`` (mining and scoring every setting); a JSON line a step."""
    import logging

    from modules.rules import load_transactions
    from modules.rules.tuning import DEFAULT_MAX_RULES, LADDER_MIN_COUNTS, count_and_plan, tune_evidence
    from modules.store import PlaylistStore
    from modules.validation import carve_validation

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ladder = LADDER_MIN_COUNTS if TUNING_MODES[args.mode] is None else TUNING_MODES[args.mode]
    max_rules = args.max_rules or DEFAULT_MAX_RULES
    steps, step = _stepper()

    t0 = time.perf_counter()
    store = PlaylistStore(args.store)
    split = carve_validation(store, store.playlists["pid"].to_numpy(), per_category="auto", seed=0).split
    tx = load_transactions(store, split.train_pids)
    step("load", t0, playlists=tx.n_playlists, entries=int(tx.matrix.nnz), tracks=int(tx.matrix.shape[1]))
    t0 = time.perf_counter()
    planned = (plan_one_rung_above(tx, args.min_confidence, max_rules, spill_dir=args.spill_dir) if args.mode == "above"
               else count_and_plan(tx, args.min_confidence, max_rules, ladder=ladder, spill_dir=args.spill_dir))
    counts, searched, _, base = planned
    step("count", t0, counts={f"{mc}/{cap}": v for (mc, cap), v in sorted(counts.items(), key=str)},
         searched_min_counts=list(searched), mined_min_count=base)
    if args.count_only:
        Path(args.out).write_text(json.dumps({"mode": args.mode, "ladder": list(ladder), "max_rules": max_rules,
                                              "steps": steps}))
        return 0
    t0 = time.perf_counter()
    _, model, report = tune_evidence(tx, split, min_confidence=args.min_confidence, max_rules=max_rules,
                                     ladder=ladder, planned=planned)
    step("tune", t0, rules=len(model.rules), chosen=report["chosen"], best=report["best"],
         best_ndcg=report["best_ndcg"], best_se=report["best_se"], mined_min_count=report["mined_min_count"],
         validation_playlists=report["validation_playlists"],
         grid=[{k: r.get(k) for k in ("min_count", "max_consequents", "smoothing", "rules", "ndcg", "skipped")}
               for r in report["grid"]])
    Path(args.out).write_text(json.dumps({"mode": args.mode, "ladder": list(ladder), "max_rules": max_rules,
                                          "steps": steps}))
    return 0


def cmd_tuning(args) -> int:
    """The evidence tuning on each store, each mode in a child process of its own (its peak RSS its own)."""
    points = []
    for store in args.stores:
        point = {"store": store}
        with tempfile.TemporaryDirectory(dir=args.spill_dir) as tmp:
            for mode in args.modes:
                out = Path(tmp) / f"{mode}.json"
                cmd = ["nice", "-n", str(args.nice), PY, "-m", "benchmarks.rules_bench", "_tuning_child", store, mode,
                       str(out), "--min-confidence", str(args.min_confidence), "--spill-dir", tmp]
                cmd += ["--max-rules", str(args.max_rules)] if args.max_rules else []
                cmd += ["--count-only"] if args.count_only else []
                point[mode] = r = run_child(cmd, out, args.timeout, 30)
                print(f"{store} {mode}: {r['seconds']} s, {r['cpu_seconds']} s CPU, peak {r['peak_rss_gb']} GB, "
                      f"exit {r['returncode']}{' (timed out)' if r['timed_out'] else ''}", flush=True)
        points.append(point)
    save("tuning", args.label, {"min_confidence": args.min_confidence, "max_rules": args.max_rules,
                                "count_only": args.count_only, "modes": args.modes, "points": points})
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def budget_options(p):
        p.add_argument("--min-confidence", type=float, default=0.02, help="the tuning's (default 0.02)")
        p.add_argument("--max-rules", type=int, help="the tuning's budget (default the package's, 5,000,000)")
        p.add_argument("--spill-dir", help="where the temporary files go (default the system's)")

    def pairs_options(p):
        budget_options(p)
        p.add_argument("--chunk-pairs", type=int, help="chunked mode's pair occurrences per chunk")

    def tuning_options(p):
        budget_options(p)
        p.add_argument("--count-only", action="store_true", help="stop after the rule counts (grid and ladder)")

    def stores_options(p, modes: dict, default: list[str]):
        p.add_argument("--stores", required=True, type=lambda s: s.split(","), help="comma-separated store folders")
        p.add_argument("--modes", type=lambda s: s.split(","), default=default,
                       help=f"of {', '.join(modes)} (default {','.join(default)})")
        p.add_argument("--label", required=True)
        p.add_argument("--timeout", type=float, default=3600, help="seconds before a mode is killed (partial)")
        p.add_argument("--nice", type=int, default=10)

    def thresholds(p, support=0.001, confidence=0.1):
        p.add_argument("--min-support", type=float, default=support)
        p.add_argument("--min-confidence", type=float, default=confidence)
        p.add_argument("--max-len", type=int, default=3)

    p = sub.add_parser("mine", help="time and peak memory of one rules run")
    p.add_argument("--store", required=True)
    p.add_argument("--engine", default="sparse", choices=("sparse", "mlxtend"))
    p.add_argument("--out", help="rules file (default data/bench/rules-<label>.parquet)")
    p.add_argument("--label", required=True)
    p.add_argument("--jobs", type=int, default=1)
    thresholds(p)
    p.set_defaults(func=cmd_mine)

    p = sub.add_parser("compare", help="sparse vs mlxtend on the same data: equality and time ratio")
    p.add_argument("--store", required=True)
    p.add_argument("--label")
    thresholds(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("latency", help="RuleModel.score time for playlists of N seeds")
    p.add_argument("--rules", required=True)
    p.add_argument("--store", required=True, help="where the seed playlists come from")
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--playlists", type=int, default=200)
    p.add_argument("--aggregation", default="sum_confidence")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", required=True)
    p.set_defaults(func=cmd_latency)

    p = sub.add_parser("estimate", help="mlxtend memory estimate for the first N playlists of a store")
    p.add_argument("--store", required=True)
    p.add_argument("--playlists", type=int, help="first N playlists by pid (default all)")
    p.add_argument("--label", required=True)
    thresholds(p)
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("tune", help="aggregation and thresholds on a validation split of the training playlists")
    p.add_argument("--playlists", type=int, default=3000)
    p.add_argument("--per-category", type=int, default=30, help="test split size (as in quality.py)")
    p.add_argument("--val-per-category", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-counts", type=lambda s: [int(x) for x in s.split(",")], default=[2, 3, 5])
    p.add_argument("--max-lens", type=lambda s: [int(x) for x in s.split(",")], default=[2, 3])
    p.add_argument("--min-confidences", type=lambda s: [float(x) for x in s.split(",")], default=[0.02, 0.05, 0.1])
    p.add_argument("--label")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("pairs", help="the train command's rule counting, pairs in memory vs in chunks on disk")
    stores_options(p, PAIR_MODES, ["memory", "chunked"])
    p.add_argument("--memory-timeout", type=float, help="the in-memory mode's timeout (default --timeout)")
    pairs_options(p)
    p.set_defaults(func=cmd_pairs)

    def child_parser(name: str, modes: dict, options, func, *extra: str):
        """One mode of a bench in its own process: the store, the mode, where its steps go."""
        p = sub.add_parser(name)
        for arg in ("store", "mode", "out", *extra):
            p.add_argument(arg, **({"choices": tuple(modes)} if arg == "mode" else {}))
        options(p)
        p.set_defaults(func=func)

    child_parser("_pairs_child", PAIR_MODES, pairs_options, cmd_pairs_child, "rules_out")

    p = sub.add_parser("tuning", help="the train command's evidence tuning, without and with the min count ladder")
    stores_options(p, TUNING_MODES, list(TUNING_MODES))
    tuning_options(p)
    p.set_defaults(func=cmd_tuning)

    child_parser("_tuning_child", TUNING_MODES, tuning_options, cmd_tuning_child)

    p = sub.add_parser("_pairs_compare")  # are these rule files equal (in its own process)
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_pairs_compare)

    args = ap.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
