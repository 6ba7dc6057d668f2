"""How many candidates the hybrid needs: recall of the candidate pool at several sizes, on validation playlists.

    python -m modules ingest data/world --out data/world-store
    python -m benchmarks.candidate_recall --bundle models/world --store data/world-store

Uses the bundle's own validation split (the playlists its two-tower held out for early stopping, carved from the
training data with the bundle's seed), so nothing here touches a test split. For each pool size N it reports the
share of held-out tracks among the two-tower's top N. (Not the full pool: the bundle's rules and ALS were refitted
on every training playlist, these included, so they know the held-out tracks; the pool's recall measured during
training, with those parts fitted without these playlists, is ``validation.candidate_recall`` in the manifest.)
Writes benchmarks/results/candidate-recall.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--store", type=Path, required=True, help="the store of the playlists the bundle was trained on")
    ap.add_argument("--sizes", default="250,500,1000,1500,2000,3000")
    args = ap.parse_args()

    from modules.challenge import split_store
    from modules.recommender import Recommender
    from modules.store import PlaylistStore

    rec = Recommender.load(args.bundle)
    h = rec.hybrid
    store = PlaylistStore(args.store)
    per_cat = h.validation_["playlists"] // 10
    split = split_store(store, per_category=per_cat, seed=int(h.seed))
    sizes = [int(s) for s in args.sizes.split(",")]
    tt_hits = dict.fromkeys(sizes, 0)
    n_held = 0
    t0 = time.perf_counter()
    for p in split.challenge["playlists"]:
        seeds = [t["track_uri"] for t in p["tracks"]]
        held = set(split.truth[str(p["pid"])]["tracks"])
        n_held += len(held)
        uris, _ = h.two_tower_.candidates(seeds, p.get("name"), max(sizes))
        for n in sizes:
            tt_hits[n] += len(held & set(list(uris)[:n]))
    n_pl = len(split.challenge["playlists"])
    result = {"bundle": str(args.bundle), "validation_playlists": n_pl, "held_out_tracks": n_held,
              "seconds": round(time.perf_counter() - t0, 1),
              "pool_recall_at_training": h.validation_.get("candidate_recall"), "n_candidates": h.n_candidates,
              "rows": [{"n_candidates": n, "two_tower_recall": round(tt_hits[n] / n_held, 4)} for n in sizes],
              "command": "python -m benchmarks.candidate_recall " + " ".join(sys.argv[1:])}
    print("| N | two-tower top-N recall |\n|---|---|")
    for r in result["rows"]:
        print(f"| {r['n_candidates']:,} | {r['two_tower_recall']:.4f} |")
    out = ROOT / "benchmarks" / "results" / "candidate-recall.json"
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
