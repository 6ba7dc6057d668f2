"""Fusion models compared on the validation playlists only (never the test split).

    python benchmarks/fusion_kinds.py --store data/bench/world-20000-s0/train-store-100 \
        --two-tower-bundle data/bench/world-20000-s0/tt --kinds hgb logistic logistic_by_length

Does what ``HybridRecommender.fit`` does up to the fusion (validation split carved from the store, the two-tower
reused, rules/content/ALS fitted on the playlists outside the split, every validation cut's candidates and
features), then scores each fusion kind by the same two-fold cross-fitting ``fit`` uses to choose, overall and per
category, alone and blended with the ALS and two-tower z-scores (``HybridRecommender.choose_blend``: weights per
playlist length chosen on one fold, scored on the other). The features are cached next to the store, so further
kinds cost seconds. Results:
benchmarks/results/fusion-kinds/<label>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="training store (python -m modules ingest)")
    ap.add_argument("--two-tower-bundle", type=Path, required=True, help="a two-tower trained on the same store")
    ap.add_argument("--params", default="{}", help="HybridRecommender parameters as a JSON object")
    ap.add_argument("--kinds", nargs="+", default=["hgb", "logistic", "logistic_by_length"],
                    help='fusion kinds, each optionally with parameters: logistic_by_length:{"buckets": [1]}')
    ap.add_argument("--blend-objective", nargs="+", default=None, metavar="METRIC",
                    help="metrics whose sum the blend weights maximize (default: the hybrid's BLEND_OBJECTIVE)")
    ap.add_argument("--blend-by-title", action="store_true",
                    help="blend weights per playlist length *and* title / no title (an experiment; the hybrid uses "
                    "length only)")
    ap.add_argument("--label", default="default")
    args = ap.parse_args()

    import joblib
    import numpy as np

    from modules.cli.options import json_object
    from modules.hybrid import PER_CUT, HybridRecommender, _length_bucket
    from modules.store import PlaylistStore

    params = {**json_object(args.params), "two_tower_bundle": str(args.two_tower_bundle)}
    store = PlaylistStore(args.store)
    h = HybridRecommender(**params)
    t0 = time.perf_counter()
    split = h.fit_validation_stage(store, store.playlists["pid"].to_numpy())
    key = hashlib.sha1(json.dumps({**params, "format": 2}, sort_keys=True).encode()).hexdigest()[:10]
    cache = args.store.parent / f"fusion-data-{key}.joblib"  # the features depend on the parameters only
    if cache.exists():
        data = joblib.load(cache)
    else:
        data = h.fusion_data(split, store)
        joblib.dump(data, cache)
    prep = time.perf_counter() - t0
    bucket = None
    if args.blend_by_title:  # 2 x length bucket + 1 when the cut has a title
        bucket = np.array([2 * int(_length_bucket(len(e[2]))) + (e[3] is not None) for e in data["examples"]])
    results = {}
    for spec in args.kinds:
        kind, _, extra = spec.partition(":")
        scores = h.cross_fitted_scores(data, kind, json_object(extra) if extra else None)
        weights, blended = h.choose_blend(data, scores, tuple(args.blend_objective or ()) or None, bucket)
        for label, sc in ((spec, scores), (f"{spec} + blend", blended)):
            summary = results[label] = h.score_cuts(data, split, sc)
            summary.pop(PER_CUT)
            a, c = summary["ALL"], summary["ALL_CUTS"]
            print(f"{label:40s} official cuts NDCG {a['ndcg']:.4f} R-prec {a['r_precision']:.4f} | all {c['count']} "
                  f"cuts NDCG {c['ndcg']:.4f} R-prec {c['r_precision']:.4f}", flush=True)
        results[f"{spec} + blend"]["weights"] = {str(b): list(w) for b, w in weights.items()}
    cats = [c for c in next(iter(results.values())) if c not in ("ALL_CUTS", "weights")]
    print("per category NDCG:")
    print(" " * 20 + "".join(f"{k[:20]:>22s}" for k in results))
    for c in cats:
        print(f"{c:20s}" + "".join(f"{results[k][c]['ndcg']:22.4f}" for k in results))
    out = ROOT / "benchmarks" / "results" / "fusion-kinds" / f"{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python benchmarks/fusion_kinds.py " + " ".join(sys.argv[1:]),
                               "playlists": len(split.challenge["playlists"]), "cuts": len(data["examples"]),
                               "positives": int(np.sum(data["y"])), "prepare_seconds": round(prep),
                               "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
