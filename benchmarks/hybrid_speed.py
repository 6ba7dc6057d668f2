"""End-to-end speed of the hybrid recommender, with ALS measured in the same run.

    # a catalog of >= 100k tracks: the shipped 89,740 plus copies with new ids and jittered features
    python -m benchmarks.hybrid_speed catalog --tracks 150000 --out data/bench/catalog-150k.parquet
    python -m modules world --playlists 20000 --catalog data/bench/catalog-150k.parquet \
        --out data/bench/big/mpd --jobs 2
    python -m modules challenge data/bench/big/mpd --out data/bench/big/split --per-category 100
    python -m modules train --mpd data/bench/big/split/train --features data/bench/catalog-150k.parquet \
        --out data/bench/big/bundle --epochs 2
    python -m benchmarks.hybrid_speed latency --bundle data/bench/big/bundle --train data/bench/big/split/train \
        --challenge data/bench/big/split/challenge_set.json

``latency`` times ``Recommender.recommend(seeds, title, k=500)`` per playlist (fusion and re-rank included;
explanations off, and again with the top 20 explained), a whole 1,000-playlist challenge file, and implicit ALS's
``recommend`` for the same playlists (fitted on the same training playlists), and reports the ratio. Results go
to benchmarks/results/hybrid-speed.json. Speed does not depend on model quality, so few epochs are fine here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_catalog(n_tracks: int, out: Path, seed: int = 0) -> None:
    import pandas as pd

    from modules.catalog import AUDIO_FEATURES
    from modules.paths import DEFAULT_CATALOG

    raw = pd.read_parquet(DEFAULT_CATALOG)
    base = raw.drop_duplicates("track_id")
    need = n_tracks - len(base)
    rng = np.random.default_rng(seed)
    if need > 0:
        extra = base.sample(n=need, replace=True, random_state=seed).reset_index(drop=True)
        alphabet = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
        extra["track_id"] = ["".join(row) for row in alphabet[rng.integers(0, 62, size=(need, 22))]]
        extra["track_name"] = extra["track_name"] + " (version " + (np.arange(need) % 7 + 2).astype(str) + ")"
        for f in ("danceability", "energy", "valence", "acousticness", "speechiness", "liveness"):
            extra[f] = np.clip(extra[f] + rng.normal(0, 0.05, need), 0, 1)
        extra["popularity"] = np.clip(extra["popularity"] - rng.integers(0, 30, need), 0, 100)
        raw = pd.concat([raw, extra], ignore_index=True)
    assert all(f in raw.columns for f in AUDIO_FEATURES)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw.to_parquet(out, index=False)
    print(f"catalog: {raw['track_id'].nunique():,} tracks -> {out}")


def _pct(values: list[float]) -> dict:
    a = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "mean_ms": round(float(a.mean()), 2)}


def latency(bundle: Path, train: Path, challenge: Path, n: int, batch: int) -> dict:
    from modules.baselines import ALSRecommender
    from modules.mpd import read_challenge
    from modules.recommender import Recommender
    from modules.store import open_store

    rec = Recommender.load(bundle)
    pls = read_challenge(challenge)["playlists"]
    sample = [pls[i] for i in np.random.default_rng(0).permutation(len(pls))[:n]]
    args = [([t["track_uri"] for t in p["tracks"]], p.get("name")) for p in sample]
    for s, t in args[:5]:  # warm-up (tf.function tracing, caches)
        rec.recommend(s, t, 500, explain=False)
    plain, explained, plain_cpu = [], [], []
    for s, t in args:
        t0, c0 = time.perf_counter(), time.process_time()
        rec.recommend(s, t, 500, explain=False)
        plain.append(time.perf_counter() - t0)
        plain_cpu.append(time.process_time() - c0)
    for s, t in args[:100]:
        t0 = time.perf_counter()
        rec.recommend(s, t, 500, explain=20)
        explained.append(time.perf_counter() - t0)
    chunk = (pls * (batch // len(pls) + 1))[:batch]
    t0 = time.perf_counter()
    rec.recommend_batch(chunk, 500)
    batch_s = time.perf_counter() - t0
    store = open_store(train)
    t0 = time.perf_counter()
    als = ALSRecommender(seed=0).fit(store)
    als_fit = time.perf_counter() - t0
    for s, t in args[:5]:
        als.recommend(s, t, 500)
    als_times, als_cpu = [], []
    for s, t in args:
        t0, c0 = time.perf_counter(), time.process_time()
        als.recommend(s, t, 500)
        als_times.append(time.perf_counter() - t0)
        als_cpu.append(time.process_time() - c0)
    h = rec.hybrid
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        "bundle": str(bundle), "training_tracks": len(rec.tracks),
        "two_tower_candidates": int(len(h.two_tower_.candidate_uris_)),
        "content_tracks": int(len(h.content_.uris_)) if h.content_ is not None else 0,
        "rules": int(len(h.rules_.rules)) if h.rules_ is not None else 0,
        "n_candidates": h.n_candidates, "playlists_timed": len(args),
        "hybrid_k500": _pct(plain), "hybrid_k500_cpu": _pct(plain_cpu), "hybrid_k500_explain20": _pct(explained),
        "challenge_file": {"playlists": batch, "seconds": round(batch_s, 1)},
        "als_k500": _pct(als_times), "als_k500_cpu": _pct(als_cpu), "als_fit_seconds": round(als_fit, 1),
        "ratio_hybrid_to_als_p50": round(float(np.median(plain) / np.median(als_times)), 2),
    }
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("catalog")
    c.add_argument("--tracks", type=int, default=150_000)
    c.add_argument("--out", type=Path, default=ROOT / "data" / "bench" / "catalog-150k.parquet")
    c.add_argument("--seed", type=int, default=0)
    lt = sub.add_parser("latency")
    lt.add_argument("--bundle", type=Path, required=True)
    lt.add_argument("--train", type=Path, required=True)
    lt.add_argument("--challenge", type=Path, required=True)
    lt.add_argument("--playlists", type=int, default=300)
    lt.add_argument("--batch", type=int, default=1000)
    lt.add_argument("--label", default="hybrid-speed")
    args = ap.parse_args()
    if args.cmd == "catalog":
        make_catalog(args.tracks, args.out, args.seed)
        return 0
    result = latency(args.bundle, args.train, args.challenge, args.playlists, args.batch)
    result["command"] = "python -m benchmarks.hybrid_speed " + " ".join(sys.argv[1:])
    print(json.dumps(result, indent=1))
    out = ROOT / "benchmarks" / "results" / f"{args.label}.json"
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
