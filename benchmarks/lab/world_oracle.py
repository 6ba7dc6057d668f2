"""How much room does a generated world leave above ALS? An oracle that knows each test playlist's hidden taste.

    python -m benchmarks.lab.world_oracle --playlists 20000 --per-category 100 --seed 0

The playlist world (docs/world.md) draws every playlist from hidden variables: one to three (genre, mood)
clusters, their mixture weights and a run probability (runs continue the album or artist of the track that
started them). This script regenerates the world of ``benchmarks/quality.py``'s split from its seed (the same
draws, so the same playlists), keeps the hidden taste of every test playlist and ranks the catalog by the chance
that one more slot of that playlist holds each track:

    q(t) = (1 - p_run) * start(t) + p_run * (run from an anchor like start, or from a seed) / 2 per album / artist

``start`` being the mixture of the clusters' sampling weights. It is not the exact posterior (the first
categories' continuation of the last seed's run and the slots' deduplication are approximated), so it is a
reference, not a bound: what knowing the taste is worth against what the seeds tell ALS and the hybrid. It uses
nothing a recommender could (the taste is never written to the slices), so it is not a method and is never a
suite row. Scored with ``modules.metrics.evaluate`` against the split's truth, beside the saved ``als`` and
``hybrid`` rows of the same split. Results: benchmarks/results/world-oracle-<playlists>-s<seed>-pc<pc>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from modules.catalog import read_catalog
from modules.challenge import CATEGORIES
from modules.metrics import evaluate
from modules.world import SLICE_SIZE, PlaylistWorld

ROOT = Path(__file__).resolve().parents[2]

METRICS = ("ndcg", "r_precision")


def tastes(world: PlaylistWorld, playlists: int, wanted: set[int]) -> dict[int, dict]:
    """The hidden taste of each wanted pid, from the same random streams ``PlaylistWorld.slice_bytes`` uses."""
    out = {}
    for first in range(0, playlists, SLICE_SIZE):
        rng = np.random.default_rng(np.random.SeedSequence([world.seed, first // SLICE_SIZE]))
        for pid in range(first, min(first + SLICE_SIZE, playlists)):
            pl = world.sample_playlist(rng, pid)
            if pid in wanted:
                out[pid] = pl["_taste"]
    return out


def slot_probability(world: PlaylistWorld, taste: dict, seed_rows: np.ndarray, first: bool,
                     n_held: int, weight: np.ndarray | None = None, mood: bool = True,
                     runs: bool = True) -> np.ndarray:
    """``q(t)`` of the module docstring for every catalog row; ``weight`` replaces the world's hidden track
    weights, ``mood=False`` drops the mood tilt, ``runs=False`` the run term (ablations)."""
    start = np.zeros(world.n_tracks)
    for (genre, m), w in zip(taste["clusters"], taste["mix"], strict=True):
        tracks, cw = world.cluster_weights(genre, m if mood else -1, weight)
        np.add.at(start, tracks, w * cw / cw.sum())
    p_run = float(taste["p_run"])
    if p_run == 0.0 or not runs:
        return start
    # anchors of the held-out runs: run starts (distributed like start) and, for the seeds, the runs they began
    anchor = start.copy()
    if len(seed_rows):
        if first:  # only the run of the last seed reaches past the seeds: about p_run / (1 - p_run) tracks
            share = min(p_run / (1.0 - p_run) / max(n_held, 1), 1.0)
            anchor = (1 - share) * anchor
            anchor[seed_rows[-1]] += share
        else:  # random positions: any seed may have begun a run among the held-out slots
            share = len(seed_rows) / (len(seed_rows) + n_held)
            anchor = (1 - share) * anchor
            np.add.at(anchor, seed_rows, share / len(seed_rows))
    run = np.zeros(world.n_tracks)
    for code in (world.album_code, world.artist_code):
        mass = np.bincount(code, weights=anchor, minlength=code.max() + 1)
        size = np.bincount(code, minlength=code.max() + 1)
        run += 0.5 * mass[code] / size[code]
    return (1.0 - p_run) * start + p_run * run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--playlists", type=int, default=3000)
    ap.add_argument("--per-category", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    base = ROOT / "data" / "bench" / f"world-{args.playlists}-s{args.seed}" / f"split-{args.per_category}"
    rows_dir = ROOT / "benchmarks" / "results" / f"quality-{args.playlists}-s{args.seed}-pc{args.per_category}"
    if not (base / "truth.json").exists():
        raise SystemExit(f"no split at {base}: run python -m benchmarks.quality --playlists {args.playlists} "
                         f"--per-category {args.per_category} --seed {args.seed} --suite first")
    t0 = time.perf_counter()
    truth = json.loads((base / "truth.json").read_text())
    challenge = json.loads((base / "challenge_set.json").read_text())["playlists"]
    cat = read_catalog()
    world = PlaylistWorld(cat, seed=args.seed)
    uris = cat.reset_index(drop=True)["track_uri"].to_numpy()
    row_of = {u: i for i, u in enumerate(uris.tolist())}
    hidden = tastes(world, args.playlists, {int(p) for p in truth})
    first_cats = {c.name for c in CATEGORIES if not c.random}
    store_tracks = pd.read_parquet(base.parent / f"train-store-{args.per_category}" / "tracks.parquet",
                                   columns=["track_uri", "count"])
    counted = np.zeros(len(uris))
    rows = np.array([row_of.get(u, -1) for u in store_tracks["track_uri"]])
    counted[rows[rows >= 0]] = store_tracks["count"].to_numpy()[rows >= 0]
    variants = {"oracle": {}, "oracle, no mood": {"mood": False}, "oracle, no runs": {"runs": False},
                "oracle, training counts as weights": {"weight": counted + 0.5}}
    answers = {v: {} for v in variants}
    for pl in challenge:
        pid = int(pl["pid"])
        seeds = [t["track_uri"] for t in sorted(pl["tracks"], key=lambda t: t["pos"])]
        seed_rows = np.array([row_of[u] for u in seeds if u in row_of], np.int64)
        cat_name = truth[str(pid)]["category"]
        for v, kw in variants.items():
            q = slot_probability(world, hidden[pid], seed_rows, cat_name in first_cats, pl["num_holdouts"], **kw)
            q[seed_rows] = -1.0
            top = np.argpartition(-q, 500)[:500]
            top = top[np.lexsort((top, -q[top]))]
            answers[v][pid] = uris[top].tolist()
    summaries = {v: evaluate(a, truth).summary() for v, a in answers.items()}
    saved = {m: json.loads((rows_dir / f"{m}.json").read_text())["metrics"] for m in ("als", "hybrid")
             if (rows_dir / f"{m}.json").exists()}
    scopes = ["ALL"] + [c.name for c in CATEGORIES]
    table = {s: {**{v: {m: summaries[v][s][m] for m in METRICS} for v in variants},
                 **{name: {m: rows[s][m] for m in METRICS} for name, rows in saved.items()}} for s in scopes}
    out = ROOT / "benchmarks" / "results" / f"world-oracle-{args.playlists}-s{args.seed}-pc{args.per_category}.json"
    out.write_text(json.dumps({"command": "python -m benchmarks.lab.world_oracle " + " ".join(sys.argv[1:]),
                               "seconds": round(time.perf_counter() - t0), "table": table}, indent=1))
    names = [*variants, *saved]
    print("| scope | " + " | ".join(f"{n} NDCG / R-prec" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for s in scopes:
        print(f"| {s} | " + " | ".join(f"{table[s][n]['ndcg']:.4f} / {table[s][n]['r_precision']:.4f}"
                                       for n in names) + " |")
    print(f"({out.relative_to(ROOT)}, {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
