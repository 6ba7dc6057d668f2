"""Does keeping the two-tower's and ALS's tables as float16 move the ranking? One fit each, scored twice.

    python -m benchmarks.float16_tables --train SPLIT/store --challenge SPLIT --epochs 3

A bundle keeps the two-tower's embedding tables and candidate table (``modules.two_tower.towers.TABLE_DTYPE``)
and ALS's item factors (``modules.baselines.als.FACTORS_DTYPE``) as float16. This fits each model once with
float32 tables (as before), scores the challenge playlists of ``SPLIT`` (``challenge_set.json`` and
``truth.json``) at k=500, rounds the same model's tables to float16 (ALS: saved and loaded back; the two-tower:
``round_tables``, as ``fit`` does), and scores again: recall@500,
NDCG and R-precision overall, both ways, and how many of the 500 answers changed. Written to
benchmarks/results/float16-tables.json (``--out``) and printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "float16-tables.json"
log = logging.getLogger("benchmarks.float16_tables")


def score(rec, playlists: list[dict], truth: dict) -> tuple[dict, dict[int, list[str]]]:
    from modules.metrics import evaluate

    rows = {int(p["pid"]): list(uris) for p, (uris, _) in zip(playlists, rec.recommend_batch(playlists, k=500),
                                                                   strict=True)}
    s = evaluate(rows, truth).summary()["ALL"]
    return {k: round(float(s[k]), 5) for k in ("recall", "ndcg", "r_precision")}, rows


def changed(a: dict[int, list[str]], b: dict[int, list[str]]) -> dict:
    """How far the rounded model's answers are from the float32 ones: the share of playlists whose 500
    differ at all, and the mean share of the 500 that are not in the other answer."""
    diff = [len(set(a[p]) - set(b[p])) / max(len(a[p]), 1) for p in a]
    return {"playlists_changed": round(float(np.mean([a[p] != b[p] for p in a])), 4),
            "mean_share_of_500_replaced": round(float(np.mean(diff)), 5)}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ap = argparse.ArgumentParser(prog="python -m benchmarks.float16_tables", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, required=True, help="the training split's store (ingested)")
    ap.add_argument("--challenge", type=Path, required=True, help="folder with challenge_set.json and truth.json")
    ap.add_argument("--epochs", type=int, default=3, help="two-tower epochs (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="als,two_tower", help="comma-separated: als, two_tower")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    from modules.challenge import read_truth
    from modules.store import PlaylistStore

    store = PlaylistStore(args.train)
    playlists = json.loads((args.challenge / "challenge_set.json").read_text())["playlists"]
    truth = read_truth(args.challenge / "truth.json")
    result = {"command": " ".join(["python", "-m", "benchmarks.float16_tables", *(argv or sys.argv[1:])]),
              "playlists": len(playlists), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    models = set(args.models.split(","))
    if "als" in models:
        from modules.baselines import als as als_module

        keep = als_module.FACTORS_DTYPE
        als_module.FACTORS_DTYPE = np.float32  # fit as before: float32 factors
        try:
            rec = als_module.ALSRecommender(seed=args.seed).fit(store)
        finally:
            als_module.FACTORS_DTYPE = keep
        before, a = score(rec, playlists, truth)
        with tempfile.TemporaryDirectory() as tmp:  # the bundle's round trip: written as float16, read back
            rec = als_module.ALSRecommender.load(rec.save(Path(tmp) / "als"))
        after, b = score(rec, playlists, truth)
        result["als"] = {"float32": before, "float16": after, **changed(a, b)}
        log.info("ALS: %s", result["als"])
    if "two_tower" in models:
        from modules.two_tower import towers
        from modules.two_tower.recommender import TwoTowerRecommender

        keep = towers.TABLE_DTYPE
        towers.TABLE_DTYPE = "float32"  # fit as before: the fitted model keeps float32 tables
        try:
            rec = TwoTowerRecommender(seed=args.seed, epochs=args.epochs).fit(store)
        finally:
            towers.TABLE_DTYPE = keep
        before, a = score(rec, playlists, truth)
        rec.round_tables()  # round the same model's tables, as fit does
        after, b = score(rec, playlists, truth)
        result["two_tower"] = {"epochs": args.epochs, "float32": before, "float16": after, **changed(a, b)}
        log.info("two-tower: %s", result["two_tower"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
