"""Quality benchmark: every method side by side on one world split, every number from `modules evaluate`.

    python -m benchmarks.quality --playlists 3000 --per-category 30 --methods popularity,itemknn,als
    python -m benchmarks.quality --playlists 3000 --per-category 30 --report   # table from saved results
    python -m benchmarks.quality --playlists 3000 --per-category 30 --suite    # every row of docs/benchmarks.md
    python -m benchmarks.quality --shape mpd --playlists 20000 --per-category 100 --suite   # an MPD-shaped world

Steps (each cached under data/bench/, rebuilt when missing): world → challenge split → train store; then for
each method ``python -m modules submit`` (fit on train only) and ``python -m modules evaluate --json``. One
result file per method lands in benchmarks/results/quality-<playlists>-s<seed>-pc<per-category>/<method>.json
(``quality-mpd-…`` for ``--shape mpd``, the world with the MPD's long tail: docs/world.md), so methods can be run
separately and the table assembled afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from modules.bundle import Bundle
from modules.challenge import CATEGORIES

ROOT = Path(__file__).resolve().parent.parent

PY = sys.executable


def run(*args: str) -> subprocess.CompletedProcess:
    print("$", " ".join(args), flush=True)
    return subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True)


SHAPES = ("catalog", "mpd")


def shape_prefix(shape: str) -> str:
    """Directory-name prefix of a world shape: none for the catalog world (the paths predate shapes)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown world shape {shape!r}: use one of {', '.join(SHAPES)}")
    return "" if shape == "catalog" else f"{shape}-"


def prepare(playlists: int, per_category: int, seed: int, shape: str = "catalog") -> Path:
    base = ROOT / "data" / "bench" / f"world-{shape_prefix(shape)}{playlists}-s{seed}"
    world, split, store = base / "mpd", base / f"split-{per_category}", base / f"train-store-{per_category}"
    if not any(world.glob("mpd.slice.*.json")):
        run(PY, "-m", "modules", "-q", "world", "--playlists", str(playlists), "--seed", str(seed), "--out", str(world),
            "--jobs", "2", "--shape", shape)
    if not (split / "truth.json").exists():
        run(PY, "-m", "modules", "-q", "challenge", str(world), "--out", str(split), "--per-category",
            str(per_category), "--seed", str(seed))
    if not (store / "store.json").exists():
        run(PY, "-m", "modules", "-q", "ingest", str(split / "train"), "--out", str(store))
    return base


def results_dir(playlists: int, seed: int, per_category: int, shape: str = "catalog") -> Path:
    return ROOT / "benchmarks" / "results" / f"quality-{shape_prefix(shape)}{playlists}-s{seed}-pc{per_category}"


def submit(method: str, base: Path, per_category: int, seed: int, params: str, label: str) -> tuple:
    """``python -m modules submit`` on the split's training store: ``(submission path, its output, seconds)``."""
    split, store = base / f"split-{per_category}", base / f"train-store-{per_category}"
    sub = base / f"submission-{label}.csv"
    t0 = time.perf_counter()
    fit = run(PY, "-m", "modules", "-q", "submit", method, "--train", str(store), "--challenge",
              str(split / "challenge_set.json"), "--out", str(sub), "--seed", str(seed), "--params", params)
    return sub, fit, time.perf_counter() - t0


def suite_params(label: str, base: Path) -> tuple[str, str]:
    """``(method, params JSON)`` of a suite row, the two-tower bundle's path filled in."""
    method, params = SUITE[label]
    return method, json.dumps(params).replace("{tt}", str((base / "tt").relative_to(ROOT)))


def run_method(method: str, base: Path, per_category: int, seed: int, params: str, out_dir: Path,
               label: str | None = None) -> dict:
    split = base / f"split-{per_category}"
    label = label or method
    sub, fit, seconds = submit(method, base, per_category, seed, params, label)
    ev = run(PY, "-m", "modules", "evaluate", str(sub), "--truth", str(split / "truth.json"), "--json")
    result = {"method": method, "label": label, "params": json.loads(params), "seed": seed,
              "submit_output": fit.stdout.strip(), "wall_seconds": round(seconds, 1),
              "evaluate_warnings": ev.stderr.strip(), "metrics": json.loads(ev.stdout)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{label}.json").write_text(json.dumps(result, indent=2))
    return result


# The rows of docs/benchmarks.md: label -> (method, params). "{tt}" is the two-tower trained once by
# `train-two-tower` on the training playlists; the two-tower row and every hybrid row reuse it (checked by the
# hybrid: same playlists, seed and validation split), so the ablations differ only in what they add.
CONTENT_TUNED = {"w_num": 0.0, "w_text": 1.0, "query_title_weight": 0.5, "popularity_weight": 0.4,
                 "artist_weight": 1.0, "title_weight": 0.25, "album_weight": 1.0}  # all fixed: no "auto" tuning
SUITE = {
    "popularity": ("popularity", {}),
    "itemknn": ("itemknn", {}),
    "als": ("als", {}),
    "poc": ("poc", {}),
    "two-tower": ("two-tower", {"load": "{tt}"}),
    "rules": ("rules", {}),
    "content": ("content", {}),
    "content-tuned": ("content", CONTENT_TUNED),
    "hybrid-tt-rules": ("hybrid", {"two_tower_bundle": "{tt}", "parts": ["two_tower", "rules"]}),
    "hybrid-tt-content": ("hybrid", {"two_tower_bundle": "{tt}", "parts": ["two_tower", "content"]}),
    "hybrid-tt-als": ("hybrid", {"two_tower_bundle": "{tt}", "parts": ["two_tower", "als"]}),
    "hybrid": ("hybrid", {"two_tower_bundle": "{tt}"}),
}
BASELINES = ("popularity", "itemknn", "als", "poc", "two-tower", "rules", "content", "content-tuned")


def run_suite(base: Path, per_category: int, seed: int, out_dir: Path, force: bool = False,
              rows: list[str] | None = None) -> None:
    """Every row of the suite (or of ``rows``) that has no result yet (all with ``force``), two-tower trained once
    first."""
    unknown = sorted(set(rows or ()) - set(SUITE))
    if unknown:
        raise SystemExit(f"unknown suite rows {', '.join(unknown)}: choose from {', '.join(SUITE)}")
    tt = base / "tt"
    store = base / f"train-store-{per_category}"
    for label, (method, params) in SUITE.items():
        if rows and label not in rows:
            continue
        if (out_dir / f"{label}.json").exists() and not force:
            print(f"{label}: kept {out_dir / f'{label}.json'}", flush=True)
            continue
        _, text = suite_params(label, base)
        if "{tt}" in json.dumps(params) and not (Bundle(tt).saved_model / "saved_model.pb").exists():
            run(PY, "-m", "modules", "-q", "train-two-tower", "--mpd", str(store), "--out", str(tt), "--seed",
                str(seed))
        r = run_method(method, base, per_category, seed, text, out_dir, label)
        a = r["metrics"]["ALL"]
        print(f"{label}: NDCG {a['ndcg']:.4f}  R-prec {a['r_precision']:.4f}  ({r['wall_seconds']} s)", flush=True)


def verdict(out_dir: Path, candidate: str = "hybrid") -> str:
    """Does ``candidate`` beat every baseline on NDCG and R-precision, overall and per category with >= 5 seeds?"""
    results = {p.stem: json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))}
    if candidate not in results:
        return f"(no {candidate} result yet)"
    rows = ["| scope | metric | " + candidate + " | best baseline | margin | beats all |", "|---|---|---|---|---|---|"]
    scopes = ["ALL"] + [c.name for c in CATEGORIES if c.seeds >= 5]
    wins = total = 0
    for scope in scopes:
        for metric in ("ndcg", "r_precision"):
            mine = results[candidate]["metrics"][scope][metric]
            peers = {b: results[b]["metrics"][scope][metric] for b in BASELINES if b in results}
            best = max(peers, key=peers.get)
            ok = mine > peers[best]
            wins += ok
            total += 1
            rows.append(f"| {scope} | {metric} | {mine:.4f} | {best} {peers[best]:.4f} | {mine - peers[best]:+.4f} "
                        f"| {'yes' if ok else 'no'} |")
    return "\n".join(rows + ["", f"{candidate} beats every baseline in {wins} of {total} comparisons."])


def table(out_dir: Path, order: list[str] | None = None, only: bool = False) -> str:
    results = {p.stem: json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))}
    labels = [m for m in (order or []) if m in results]
    if not only:
        labels += sorted(set(results) - set(order or []))
    lines = ["| method | R-prec | R-prec (artist) | NDCG | clicks | recall@500 |", "|---|---|---|---|---|---|"]
    for m in labels:
        a = results[m]["metrics"]["ALL"]
        lines.append(f"| {m} | {a['r_precision']:.4f} | {a['r_precision_artist']:.4f} | {a['ndcg']:.4f} | "
                     f"{a['clicks']:.2f} | {a['recall']:.4f} |")
    for metric, heading in (("ndcg", "NDCG"), ("r_precision", "R-precision")):
        lines += ["", f"{heading} per category:", "",
                  "| method | " + " | ".join(c.name for c in CATEGORIES) + " |",
                  "|---|" + "---|" * len(CATEGORIES)]
        for m in labels:
            met = results[m]["metrics"]
            lines.append(f"| {m} | " + " | ".join(f"{met[c.name][metric]:.4f}" if c.name in met else "-"
                                                  for c in CATEGORIES) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--playlists", type=int, default=3000)
    ap.add_argument("--per-category", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", choices=SHAPES, default="catalog",
                    help="the world's shape (`modules world --shape`): catalog (default) or mpd (the MPD's long tail)")
    ap.add_argument("--methods", default="", help="comma-separated method names (see `python -m modules submit -h`)")
    ap.add_argument("--params", default="{}", help="JSON constructor parameters (applies to every method listed)")
    ap.add_argument("--label", help="name the result file (e.g. als-f128) instead of the method name")
    ap.add_argument("--report", action="store_true", help="print the markdown table of saved results")
    ap.add_argument("--suite", action="store_true",
                    help="run every row of docs/benchmarks.md that has no result yet, then print the report")
    ap.add_argument("--force", action="store_true", help="with --suite: rerun rows that already have a result")
    ap.add_argument("--rows", default="", help="with --suite: only these comma-separated rows (e.g. hybrid,als)")
    ap.add_argument("--all-rows", action="store_true",
                    help="report every saved result (tuning runs too), not only the suite's rows")
    args = ap.parse_args()
    # the world, split and store are needed to run a method, not to report saved results
    base = prepare(args.playlists, args.per_category, args.seed, args.shape) if args.methods or args.suite else None
    out_dir = results_dir(args.playlists, args.seed, args.per_category, args.shape)
    for m in [m for m in args.methods.split(",") if m]:
        r = run_method(m, base, args.per_category, args.seed, args.params, out_dir, args.label)
        a = r["metrics"]["ALL"]
        print(f"{r['label']}: NDCG {a['ndcg']:.4f}  R-prec {a['r_precision']:.4f}  clicks {a['clicks']:.2f}  "
              f"recall@500 {a['recall']:.4f}  ({r['wall_seconds']} s)", flush=True)
    if args.suite:
        run_suite(base, args.per_category, args.seed, out_dir, args.force, [r for r in args.rows.split(",") if r])
    if args.report or args.suite:
        print(table(out_dir, list(SUITE), only=not args.all_rows))
        print("\nThe full hybrid against every baseline (" + ", ".join(BASELINES) + "):\n")
        print(verdict(out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
