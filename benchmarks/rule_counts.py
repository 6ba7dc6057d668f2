"""How large the rules baseline's table would be, counted without mining, and (``--fit``) what mining it costs.

    python -m benchmarks.rule_counts data/bench/world-mpd-100000-s0/train-store-100
    python -m benchmarks.rule_counts data/bench/world-mpd-20000-s0/train-store-100 --fit   # RuleRecommender()

The pair rules at each min count come from ``sparse_miner.pair_rule_degrees`` (pair counts block by block, no
pair kept), at the baseline's ``min_confidence`` 0.02. ``--fit`` then fits ``RuleRecommender()`` with its defaults
(min count 1) in this process and reports its rules, seconds and peak resident memory: what ``submit rules``
costs before it recommends anything. docs/benchmarks.md (the 100,000-playlist MPD-shaped world) quotes both.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

MIN_COUNTS = (1, 2, 3, 5, 10)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", help="a playlist store (python -m modules ingest)")
    ap.add_argument("--min-confidence", type=float, default=0.02)
    ap.add_argument("--fit", action="store_true", help="also fit RuleRecommender() and report its peak memory")
    args = ap.parse_args(argv)

    from modules.rules import RuleRecommender
    from modules.rules.sparse_miner import pair_rule_degrees
    from modules.rules.transactions import load_transactions
    from modules.store import open_store

    store = open_store(args.store)
    t0 = time.perf_counter()
    tx = load_transactions(store, None)
    deg = pair_rule_degrees(tx, MIN_COUNTS, args.min_confidence)
    out = {"store": args.store, "playlists": tx.n_playlists, "min_confidence": args.min_confidence,
           "pair_rules": {str(c): int(deg[:, i].sum()) for i, c in enumerate(MIN_COUNTS)},
           "count_seconds": round(time.perf_counter() - t0, 1),
           "count_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
    if args.fit:
        t0 = time.perf_counter()
        rec = RuleRecommender(min_confidence=args.min_confidence).fit(store)
        out["fit"] = {"rules": rec.model_.n_rules, "seconds": round(time.perf_counter() - t0, 1),
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
