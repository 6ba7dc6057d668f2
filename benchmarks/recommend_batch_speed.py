"""CPU per `/recommend`-style request, one at a time and in batches, in one process (no HTTP).

    python -m benchmarks.recommend_batch_speed --model models/world --label HEAD

The load test's request mix (``serve_load.make_requests``: 0-100 seeds, titles, k = 50 with explanations),
``Recommender.recommend`` one request at a time, then ``Recommender.recommend_columns_batch`` on batches of 1, 4,
8, 16 and 32 when the code has it. It measures the ``modules`` of the current directory (``python -m`` puts it
first on the path): to compare an older commit, copy this file and ``serve_load.py`` into that checkout's
``benchmarks/`` and run the same command there.
One native thread, as the server runs. Results are appended to benchmarks/results/recommend-batch-speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from benchmarks.results_file import append_run
from benchmarks.serve_load import make_requests
from modules.recommender import Recommender
from modules.service import limit_native_threads

HERE = Path(__file__).resolve().parent


def ms_per_request(fn, items, repeats: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(items)
    return round(1000 * (time.perf_counter() - t0) / (repeats * len(items)), 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/world"))
    ap.add_argument("--requests", type=int, default=640)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "recommend-batch-speed.json")
    args = ap.parse_args()
    limit_native_threads(1)
    rec = Recommender.load(args.model)
    kw = [{"seed_track_uris": r["seed_track_uris"], "title": r["title"], "k": r["k"], "explain": r["k"]}
          for r in make_requests(args.model, args.requests, 50, 0)]
    for r in kw[:30]:  # warm-up
        rec.recommend(r["seed_track_uris"], r["title"], r["k"], explain=r["explain"])
    one = ms_per_request(lambda items: [rec.recommend(r["seed_track_uris"], r["title"], r["k"], explain=r["explain"])
                                        for r in items], kw, args.repeats)
    result = {"label": args.label, "command": "python -m benchmarks.recommend_batch_speed " + " ".join(sys.argv[1:]),
              "machine": f"{platform.machine()}, load average {os.getloadavg()[0]:.1f}",
              "requests": len(kw), "recommend_one_at_a_time_ms": one, "batch_ms": {}}
    if hasattr(rec, "recommend_columns_batch"):
        for b in (1, 4, 8, 16, 32):
            result["batch_ms"][b] = ms_per_request(
                lambda items, b=b: [rec.recommend_columns_batch(items[a:a + b]) for a in range(0, len(items), b)],
                kw, args.repeats)
    print(json.dumps(result, indent=1))
    append_run(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
