"""How sure are the quality table's margins? Paired bootstrap of the full hybrid against every baseline.

    python -m benchmarks.significance --playlists 20000 --per-category 100
    python -m benchmarks.significance --playlists 3000 --per-category 30
    python -m benchmarks.significance --shape mpd --playlists 20000 --per-category 100

For one world split of ``benchmarks/quality.py``: every suite row's submission is scored per playlist (a missing
submission is made again with the row's own ``python -m modules submit`` command; its means are checked against
the row's saved result), then, for each scope of the comparison (overall and every category with >= 5 seeds) and
each metric (NDCG, R-precision), the per-playlist difference hybrid - baseline is resampled by playlist
(``--resamples`` times, seeded) for a 95 % interval of the mean difference. The test playlists of one category
are few (30 or 100), so a margin is only a finding when its interval excludes 0. The table names, per cell, the
baseline closest to the hybrid (the one ``quality.py --report`` compares with). Results go to
benchmarks/results/quality-<playlists>-s<seed>-pc<per-category>/significance/summary.json (not a suite row).

``--seed 0 1`` pools the test playlists of several worlds (each its own world, split, training and rows): every
cell compares the pooled means, and each resample draws playlists within each world (stratified), so the
interval narrows with the pooled count. Results go to
benchmarks/results/significance-<playlists>-s<seed>+<seed>…-pc<per-category>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.quality import BASELINES, ROOT, SHAPES, prepare, results_dir, shape_prefix, submit, suite_params
from modules.challenge import CATEGORIES
from modules.metrics import evaluate
from modules.mpd import read_submission

METRICS = ("ndcg", "r_precision")


def per_playlist(label: str, base: Path, per_category: int, seed: int, out_dir: Path):
    """One row per test playlist (``pid``, ``category``, metrics) of a suite row's submission."""
    sub = base / f"submission-{label}.csv"
    if not sub.exists():
        method, params = suite_params(label, base)
        submit(method, base, per_category, seed, params, label)
    truth = json.loads((base / f"split-{per_category}" / "truth.json").read_text())
    df = evaluate(read_submission(sub).rows, truth).per_playlist.sort_values("pid").reset_index(drop=True)
    saved = json.loads((out_dir / f"{label}.json").read_text())["metrics"]["ALL"]
    drift = max(abs(float(df[m].mean()) - saved[m]) for m in METRICS)
    return df, drift


def interval(diff: np.ndarray, resamples: int, rng: np.random.Generator,
             strata: np.ndarray | None = None) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``diff``, resampling its entries (playlists) with replacement
    (within each stratum, e.g. world, when ``strata`` is given)."""
    if strata is None:
        idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    else:
        groups = [np.flatnonzero(strata == g) for g in np.unique(strata)]
        idx = np.hstack([g[rng.integers(0, len(g), size=(resamples, len(g)))] for g in groups])
    means = diff[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--playlists", type=int, default=3000)
    ap.add_argument("--per-category", type=int, default=30)
    ap.add_argument("--seed", type=int, nargs="+", default=[0],
                    help="the world's seed; several seeds pool their worlds' test playlists")
    ap.add_argument("--shape", choices=SHAPES, default="catalog", help="the worlds' shape, as in benchmarks.quality")
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--candidate", default="hybrid")
    ap.add_argument("--baselines", default="",
                    help="comma-separated result labels to compare with (default: the suite's baselines that have "
                         "a result); a label outside the suite needs its submission-LABEL.csv beside the world")
    args = ap.parse_args()
    seeds = list(dict.fromkeys(args.seed))
    dirs = [results_dir(args.playlists, sd, args.per_category, args.shape) for sd in seeds]
    wanted = [b.strip() for b in args.baselines.split(",") if b.strip()] or list(BASELINES)
    labels = [args.candidate] + [b for b in wanted if all((d / f"{b}.json").exists() for d in dirs)]
    if args.baselines and len(labels) - 1 < len(wanted):
        raise SystemExit(f"no saved result for {', '.join(sorted(set(wanted) - set(labels)))} in "
                         f"{', '.join(str(d) for d in dirs)}")
    scores, drift = {label: [] for label in labels}, {}
    for sd, out_dir in zip(seeds, dirs, strict=True):
        base = prepare(args.playlists, args.per_category, sd, args.shape)
        for label in labels:
            key = f"{label} (seed {sd})" if len(seeds) > 1 else label
            df, drift[key] = per_playlist(label, base, args.per_category, sd, out_dir)
            scores[label].append(df.assign(world=sd))
            print(f"{key}: scored {len(df)} playlists (|mean - saved row| <= {drift[key]:.1e})", flush=True)
    scores = {label: pd.concat(frames, ignore_index=True) for label, frames in scores.items()}
    mine = scores[args.candidate]
    for label, df in scores.items():
        if not (df["pid"].equals(mine["pid"]) and df["world"].equals(mine["world"])):
            raise SystemExit(f"{label} scored other playlists than {args.candidate}")
    strata = mine["world"].to_numpy() if len(seeds) > 1 else None
    rng = np.random.default_rng(seeds[0] if len(seeds) == 1 else seeds)
    scopes = ["ALL"] + [c.name for c in CATEGORIES if c.seeds >= 5]
    cells = []
    for scope in scopes:
        sel = np.ones(len(mine), bool) if scope == "ALL" else (mine["category"] == scope).to_numpy()
        for metric in METRICS:
            means = {b: float(scores[b].loc[sel, metric].mean()) for b in labels[1:]}
            closest = max(means, key=means.get)
            diff = mine.loc[sel, metric].to_numpy() - scores[closest].loc[sel, metric].to_numpy()
            lo, hi = interval(diff, args.resamples, rng, None if strata is None else strata[sel])
            cells.append({"scope": scope, "metric": metric, "playlists": int(sel.sum()),
                          "candidate": float(mine.loc[sel, metric].mean()), "closest_baseline": closest,
                          "baseline": means[closest], "margin": float(diff.mean()), "ci95": [lo, hi],
                          "verdict": "better" if lo > 0 else "worse" if hi < 0 else "not distinguishable"})
    out = {"command": "python -m benchmarks.significance " + " ".join(sys.argv[1:]), "resamples": args.resamples,
           "seed": seeds[0] if len(seeds) == 1 else seeds, "rows_checked_against_saved_results": drift, "cells": cells}
    worlds = "+".join(map(str, seeds))
    pooled = f"significance-{shape_prefix(args.shape)}{args.playlists}-s{worlds}-pc{args.per_category}"
    path = (dirs[0] / "significance" / "summary.json" if len(seeds) == 1 else
            ROOT / "benchmarks" / "results" / f"{pooled}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"\n| scope | metric | {args.candidate} | closest baseline | margin | 95 % interval | verdict |")
    print("|---|---|---|---|---|---|---|")
    for c in cells:
        print(f"| {c['scope']} | {c['metric']} | {c['candidate']:.4f} | {c['closest_baseline']} {c['baseline']:.4f} "
              f"| {c['margin']:+.4f} | [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] | {c['verdict']} |")
    counts = {v: sum(c["verdict"] == v for c in cells) for v in ("better", "not distinguishable", "worse")}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    print(f"\n{len(cells)} comparisons: {summary}  ({path.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
