"""One hash of a bundle's answers to the load test's requests: does a serving change keep every answer's bytes?

    PYTHONPATH=/tmp/base python -m benchmarks.answer_hashes --model models/world   # the commit before the change
    python -m benchmarks.answer_hashes --model models/world                        # after it: the same hash?

Answers ``Recommender.recommend_columns_batch`` in batches of 16, as a recommendation process does: ``--requests``
of the load test's mix (``serve_load.make_requests``: 0-100 seeds, titles, k = 50, every row explained) and
``--wide`` more with k = 500, all 500 rows explained and, every other one, a feature weight of 3. Every column of
every answer (tracks, names, scores, parts as float64 bytes, explanations) goes into one SHA-256. Faster than
``benchmarks.same_bytes`` (no training) and on the bundle the service serves; it checks serving only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def answer_hash(model: Path, n_requests: int, n_wide: int, seed: int = 0) -> dict:
    from benchmarks.serve_load import make_requests
    from modules.recommender import Recommender
    from modules.service import limit_native_threads

    limit_native_threads(1)
    rec = Recommender.load(model)
    requests = [{"seed_track_uris": r["seed_track_uris"], "title": r["title"], "k": r["k"], "explain": True}
                for r in make_requests(model, n_requests, 50, seed)]
    features = rec.audio_features
    for i, r in enumerate(make_requests(model, n_wide, 500, seed + 1)):
        requests.append({"seed_track_uris": r["seed_track_uris"], "title": r["title"], "k": 500, "explain": 500,
                         "weights": {features[i % len(features)]: 3.0} if i % 2 and features else None})
    digest, answers, errors = hashlib.sha256(), 0, 0
    for a in range(0, len(requests), 16):
        for answer in rec.recommend_columns_batch(requests[a:a + 16]):
            if isinstance(answer, Exception):
                errors += 1
                digest.update(repr(answer).encode())
                continue
            answers += 1
            for name in sorted(answer):
                value = answer[name]
                digest.update(name.encode())
                if isinstance(value, np.ndarray) and value.dtype != object:
                    digest.update(value.dtype.str.encode() + value.tobytes())
                else:
                    digest.update(json.dumps([str(v) for v in value]).encode())
    return {"answers": answers, "errors": errors, "sha256": digest.hexdigest()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.answer_hashes", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/world"))
    ap.add_argument("--requests", type=int, default=240, help="k = 50 requests of the load test's mix")
    ap.add_argument("--wide", type=int, default=60, help="k = 500 requests, half with a feature weight")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(answer_hash(args.model, args.requests, args.wide, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
