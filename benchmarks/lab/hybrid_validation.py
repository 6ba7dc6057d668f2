"""The hybrid's validation metrics for a configuration (validation playlists carved from train, never a test split).

    python -m benchmarks.lab.hybrid_validation --store data/bench/world-20000-s0/train-store-100 \
        --two-tower-bundle data/bench/world-20000-s0/tt --params '{"fusion_cuts": 8}' --label cuts8

Fits ``HybridRecommender(**params)`` on the store (reusing a two-tower trained by ``train-two-tower`` on it) and
prints its ``validation_`` block: the cross-fitted NDCG / R-precision of each fusion model and of the two-tower
alone on the same validation playlists. Results: benchmarks/results/hybrid-validation/<label>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="training store (python -m modules ingest)")
    ap.add_argument("--two-tower-bundle", type=Path, help="a two-tower trained on the same store")
    ap.add_argument("--params", default="{}", help="HybridRecommender parameters as a JSON object")
    ap.add_argument("--label", default="default")
    args = ap.parse_args()

    from modules.cli.options import json_object
    from modules.hybrid import HybridRecommender
    from modules.store import PlaylistStore

    params = json_object(args.params)
    if args.two_tower_bundle:
        params["two_tower_bundle"] = str(args.two_tower_bundle)
    t0 = time.perf_counter()
    h = HybridRecommender(**params).fit(PlaylistStore(args.store))
    v = h.validation_
    result = {"params": params, "seconds": round(time.perf_counter() - t0), "chosen": v["chosen"],
              "fusion": v["fusion"], "fusion_all_cuts": v.get("fusion_all_cuts"), "blend": v.get("blend"),
              "two_tower_alone": v["two_tower_alone"],
              "candidate_recall": v["candidate_recall"], "cuts": v["cuts"], "playlists": v["playlists"],
              "command": "python -m benchmarks.lab.hybrid_validation " + " ".join(sys.argv[1:])}
    for name, m in [*v["fusion"].items(), ("two-tower alone", v["two_tower_alone"])]:
        print(f"{name}: NDCG {m['ndcg']:.4f}  R-prec {m['r_precision']:.4f}  (official cuts)")
    if v.get("blend"):
        b = v["blend"]["all_cuts"]
        print(f"{v['chosen']} + blend: NDCG {b['ndcg']:.4f}  R-prec {b['r_precision']:.4f}  (all cuts)")
    out = ROOT / "benchmarks" / "results" / "hybrid-validation" / f"{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
