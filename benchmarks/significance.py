"""How sure are the quality table's margins? Paired bootstrap of the full hybrid against every baseline.

    python benchmarks/significance.py --playlists 20000 --per-category 100
    python benchmarks/significance.py --playlists 3000 --per-category 30

For one world split of ``benchmarks/quality.py``: every suite row's submission is scored per playlist (a missing
submission is made again with the row's own ``python -m modules submit`` command; its means are checked against
the row's saved result), then, for each scope of the comparison (overall and every category with >= 5 seeds) and
each metric (NDCG, R-precision), the per-playlist difference hybrid - baseline is resampled by playlist
(``--resamples`` times, seeded) for a 95 % interval of the mean difference. The test playlists of one category
are few (30 or 100), so a margin is only a finding when its interval excludes 0. The table names, per cell, the
baseline closest to the hybrid (the one ``quality.py --report`` compares with). Results go to
benchmarks/results/quality-<playlists>-s<seed>-pc<per-category>/significance/summary.json (not a suite row).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import BASELINES, ROOT, prepare, results_dir, submit, suite_params  # noqa: E402

from modules.challenge import CATEGORIES  # noqa: E402
from modules.metrics import evaluate  # noqa: E402
from modules.mpd import read_submission  # noqa: E402

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


def interval(diff: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``diff``, resampling its entries (playlists) with replacement."""
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--playlists", type=int, default=3000)
    ap.add_argument("--per-category", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--candidate", default="hybrid")
    args = ap.parse_args()
    base = prepare(args.playlists, args.per_category, args.seed)
    out_dir = results_dir(args.playlists, args.seed, args.per_category)
    labels = [args.candidate] + [b for b in BASELINES if (out_dir / f"{b}.json").exists()]
    scores, drift = {}, {}
    for label in labels:
        scores[label], drift[label] = per_playlist(label, base, args.per_category, args.seed, out_dir)
        print(f"{label}: scored {len(scores[label])} playlists (|mean - saved row| <= {drift[label]:.1e})",
              flush=True)
    mine = scores[args.candidate]
    for label, df in scores.items():
        if not df["pid"].equals(mine["pid"]):
            raise SystemExit(f"{label} scored other playlists than {args.candidate}")
    rng = np.random.default_rng(args.seed)
    scopes = ["ALL"] + [c.name for c in CATEGORIES if c.seeds >= 5]
    cells = []
    for scope in scopes:
        sel = np.ones(len(mine), bool) if scope == "ALL" else (mine["category"] == scope).to_numpy()
        for metric in METRICS:
            means = {b: float(scores[b].loc[sel, metric].mean()) for b in labels[1:]}
            closest = max(means, key=means.get)
            diff = mine.loc[sel, metric].to_numpy() - scores[closest].loc[sel, metric].to_numpy()
            lo, hi = interval(diff, args.resamples, rng)
            cells.append({"scope": scope, "metric": metric, "playlists": int(sel.sum()),
                          "candidate": float(mine.loc[sel, metric].mean()), "closest_baseline": closest,
                          "baseline": means[closest], "margin": float(diff.mean()), "ci95": [lo, hi],
                          "verdict": "better" if lo > 0 else "worse" if hi < 0 else "not distinguishable"})
    out = {"command": "python benchmarks/significance.py " + " ".join(sys.argv[1:]), "resamples": args.resamples,
           "seed": args.seed, "rows_checked_against_saved_results": drift, "cells": cells}
    path = out_dir / "significance" / "summary.json"
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
