"""What the ``audio_taste`` features cost one playlist, beside the whole ``recommend`` call in the same run.

    python -m benchmarks.audio_taste_cost --bundle data/bench/big/bundle \
        --challenge data/bench/big/split/challenge_set.json

For a bundle trained before ``audio_taste`` existed (its fusion does not read the features), this times, per
challenge playlist, ``Recommender.recommend(seeds, title, k=500)`` as the bundle serves it and, separately,
``AudioTaste.features`` for the same playlist's candidates (the work ``audio_taste`` adds to a request), plus the
one-off table build. Results: benchmarks/results/audio-taste-cost.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--challenge", type=Path, required=True)
    ap.add_argument("--playlists", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from modules.hybrid import lab
    from modules.mpd import read_challenge
    from modules.recommender import Recommender

    rec = Recommender.load(args.bundle)
    h = rec.hybrid
    pls = read_challenge(args.challenge)["playlists"]
    rng = np.random.default_rng(args.seed)
    pick = [pls[i] for i in rng.choice(len(pls), size=min(args.playlists, len(pls)), replace=False)]
    t0 = time.perf_counter()
    taste = lab.audio_taste(h)
    build = time.perf_counter() - t0
    for p in pick[:20]:  # warm-up
        rec.recommend([t["track_uri"] for t in p["tracks"]], p.get("name"), 500, explain=False)
    full, extra = [], []
    for p in pick:
        seeds, title = [t["track_uri"] for t in p["tracks"]], p.get("name")
        t0 = time.perf_counter()
        rec.recommend(seeds, title, 500, explain=False)
        full.append(time.perf_counter() - t0)
        cs = h.candidate_set(seeds, title)
        t0 = time.perf_counter()
        taste.features(h.content_.rows_of(seeds), lab.id_maps(h).content[cs.ids])
        extra.append(time.perf_counter() - t0)
    ms = lambda xs, q: round(float(np.percentile(xs, q)) * 1000, 2)  # noqa: E731
    out = {"command": "python -m benchmarks.audio_taste_cost " + " ".join(sys.argv[1:]),
           "playlists": len(pick), "content_tracks": int(len(h.content_.uris_)),
           "table_build_seconds": round(build, 2),
           "recommend_ms": {"p50": ms(full, 50), "p99": ms(full, 99)},
           "audio_taste_ms": {"p50": ms(extra, 50), "p99": ms(extra, 99)},
           "ratio_p50": round(float(np.median(extra) / np.median(full)), 3)}
    path = ROOT / "benchmarks" / "results" / "audio-taste-cost.json"
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
