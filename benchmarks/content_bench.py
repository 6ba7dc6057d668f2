"""Content-model benchmark: re-ranking speed, and tuning on a validation split carved from TRAIN playlists.

    python -m benchmarks.content_bench speed                       # -> benchmarks/results/content-speed.json
    python -m benchmarks.content_bench tune --playlists 3000 --per-category 30 --val-per-category 20
                                                                   # -> benchmarks/results/content-tuning-….json
    python -m benchmarks.content_bench blend --split SPLIT_DIR     # -> benchmarks/results/content-blend-….json

``speed``: ``ContentModel.similarity`` for 1,000 candidates and a 100-track playlist (goal <= 10 ms), with
and without listener feature weights; ``rerank``; ``explain`` of 10 tracks; a whole-catalog recommendation.

``tune``: uses the training store that ``benchmarks/quality.py`` builds (world -> challenge split -> train
store; the test playlists are not in it). ``split_store`` carves validation playlists out of those training
playlists; the model is fitted on the rest and every setting is scored on the validation playlists only.
The chosen setting is then run once on the test split with ``python -m benchmarks.quality --params …``.

``blend``: on a challenge split (``python -m modules challenge``: ``train/``, ``challenge_set.json``,
``truth.json``), the content model alone at every sound/tags blend of the hybrid's grid, with and without album
tags, scored on the held-out test playlists that have seeds; and what the hybrid's tuning
(``modules.content.tuning``) chooses on a validation split carved from the training playlists, so the two can
be compared.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from modules.base import recommend_challenge
from modules.challenge import split_store
from modules.content import ContentModel, ContentRecommender
from modules.content.model import ALBUM_WEIGHT
from modules.metrics import evaluate, standard_error
from modules.store import PlaylistStore

ROOT = Path(__file__).resolve().parent.parent
# the grid's starting point: the first worlds' fixed blend, no prior (ContentRecommender's "auto" would tune them)
START = {"w_num": 0.6, "w_text": 0.4, "album_weight": ALBUM_WEIGHT, "popularity_weight": 0.0}


def stats_ms(times: list[float]) -> dict:
    ms = sorted(1000 * t for t in times)
    return {"median_ms": round(statistics.median(ms), 3), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 3),
            "max_ms": round(ms[-1], 3), "runs": len(ms)}


def timed(fn, runs: int) -> dict:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return stats_ms(times)


def train_store_path(playlists: int, per_category: int, seed: int) -> Path:
    path = ROOT / "data" / "bench" / f"world-{playlists}-s{seed}" / f"train-store-{per_category}"
    if not (path / "store.json").exists():
        raise SystemExit(f"{path} does not exist; build it with: python -m benchmarks.quality --playlists "
                         f"{playlists} --per-category {per_category} --seed {seed}")
    return path


def cmd_speed(args) -> dict:
    store = PlaylistStore(train_store_path(args.playlists, args.per_category, args.seed))
    t0 = time.perf_counter()
    model = ContentModel().fit(None, store)
    fit_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    pt = store.playlist_tracks
    long_pids = pt.groupby("pid").size()
    pid = int(rng.choice(long_pids.index[long_pids >= 100]))
    seeds = pt.loc[pt["pid"] == pid, "track_uri"].tolist()[:100]  # a real 100-track playlist
    cands = model.uris_[rng.choice(len(model.uris_), args.candidates, replace=False)].tolist()
    rec = ContentRecommender(**START).fit(store)
    out = {
        "fit_s": round(fit_s, 2), "tracks": len(model.uris_), "tags": len(model.vocab_), "seeds": len(seeds),
        "candidates": len(cands),
        "similarity": timed(lambda: model.similarity(seeds, cands), args.runs),
        "similarity_feature_weights": timed(lambda: model.similarity(seeds, cands, {"energy": 3.0, "valence": 2.0}),
                                            args.runs),
        "similarity_with_title": timed(lambda: model.similarity(seeds, cands, title="chill vibes"), args.runs),
        "rerank": timed(lambda: model.rerank(seeds, cands, k=100), args.runs),
        "explain_10": timed(lambda: model.explain(seeds, cands[:10]), max(10, args.runs // 10)),
        "recommend_whole_catalog_k500": timed(lambda: rec.recommend(seeds, title="chill", k=500),
                                              max(10, args.runs // 10)),
    }
    return out


def cmd_tune(args) -> dict:
    store = PlaylistStore(train_store_path(args.playlists, args.per_category, args.seed))
    split = split_store(store, per_category=args.val_per_category, seed=args.seed + 1,
                        pids=store.playlists["pid"].to_numpy())
    print(f"validation: {len(split.truth)} playlists carved from {len(store.playlists)} training playlists; "
          f"fitting on {len(split.train_pids)}", flush=True)
    results = []

    def score(rec, label: dict) -> dict:
        rows = recommend_challenge(rec, split.challenge, show_progress=False)
        summary = evaluate(rows, split.truth).summary()
        entry = {"params": label, "ALL": summary["ALL"],
                 "ndcg_by_category": {k: round(v["ndcg"], 4) for k, v in summary.items() if k != "ALL"}}
        results.append(entry)
        a = summary["ALL"]
        print(f"{json.dumps(label):90s} NDCG {a['ndcg']:.4f} R-prec {a['r_precision']:.4f} "
              f"recall {a['recall']:.4f}", flush=True)
        return entry

    def best(entries):
        return max(entries, key=lambda e: (e["ALL"]["ndcg"], e["ALL"]["r_precision"]))

    def query_grid(rec, base: dict, w_nums, qtws, pops) -> list[dict]:
        out = []
        for w_num, qtw, pop in itertools.product(w_nums, qtws, pops):
            rec.model_.w_num, rec.model_.w_text = w_num, round(1.0 - w_num, 3)
            rec.model_.query_title_weight, rec.popularity_weight_ = qtw, pop
            out.append(score(rec, {**base, "w_num": w_num, "w_text": round(1.0 - w_num, 3),
                                   "query_title_weight": qtw, "popularity_weight": pop}))
        return out

    # stage 1: query-time weights (no refit): w_num (w_text = 1 - w_num), title weight, popularity prior
    rec = ContentRecommender(**START).fit(store, pids=split.train_pids)
    stage1 = query_grid(rec, {}, args.w_num, args.query_title_weight, args.popularity_weight)
    top = best(stage1)["params"]
    # stage 2: tag-group weights (refit) at the best query-time setting
    stage2 = []
    for aw, tw in itertools.product(args.artist_weight, args.title_weight):
        params = {**top, "artist_weight": aw, "title_weight": tw}
        fitted = ContentRecommender(**{**START, **params}).fit(store, pids=split.train_pids)
        stage2.append(score(fitted, params))
    groups = {k: best(stage2)["params"][k] for k in ("artist_weight", "title_weight")}
    # stage 3: query-time weights again, around the best, with the best tag-group weights
    rec = ContentRecommender(**START, **groups).fit(store, pids=split.train_pids)
    near = sorted({top["w_num"], *[w for w in args.w_num if abs(w - top["w_num"]) <= 0.2]})
    stage3 = query_grid(rec, groups, near, args.query_title_weight, args.popularity_weight)
    everything = stage1 + stage2 + stage3
    default = next(e for e in stage1 if e["params"] == {"w_num": 0.6, "w_text": 0.4, "query_title_weight": 1.0,
                                                        "popularity_weight": 0.0})
    return {"validation_playlists": len(split.truth), "fit_playlists": len(split.train_pids),
            "default": default, "chosen": best(everything),
            "best_without_popularity": best([e for e in everything if e["params"]["popularity_weight"] == 0]),
            "best_audio_only": best([e for e in everything if e["params"]["w_num"] == 1.0] or everything),
            "results": results}


def cmd_blend(args) -> dict:
    from modules.base import popularity_order
    from modules.challenge import Split
    from modules.content.tuning import GRID_ALBUM_WEIGHTS, GRID_W_NUM, blend_ndcg, tune_content, validation_playlists
    from modules.store import open_store
    from modules.validation import carve_validation

    store = open_store(args.split / "train")
    pids = store.playlists["pid"].to_numpy()
    challenge = json.loads((args.split / "challenge_set.json").read_text())
    truth = json.loads((args.split / "truth.json").read_text())
    test = validation_playlists(Split(pids, challenge, truth))  # the test playlists with seeds, read the same way
    popular = popularity_order(store, pids)
    held_out = []
    for aw in GRID_ALBUM_WEIGHTS:
        ndcg = blend_ndcg(ContentModel(album_weight=aw).fit(None, store, pids), test, popular)
        for j, w in enumerate(GRID_W_NUM):
            held_out.append({"w_num": w, "album_weight": aw, "ndcg": round(float(ndcg[:, j].mean()), 4),
                             "se": round(standard_error(ndcg[:, j]), 4)})
            print(json.dumps(held_out[-1]), flush=True)
    val = carve_validation(store, pids, seed=args.seed)
    chosen, _, report = tune_content(
        lambda aw: ContentModel(album_weight=aw).fit(None, store, val.split.train_pids), val.split,
        popularity_order(store, val.split.train_pids))
    at_choice = next(r for r in held_out
                     if r["w_num"] == chosen["w_num"] and r["album_weight"] == chosen["album_weight"])
    print("validation chose", json.dumps(chosen), "-> held-out NDCG", at_choice["ndcg"], flush=True)
    return {"split": str(args.split), "test_playlists_with_seeds": len(test), "held_out": held_out,
            "validation": report,
            "chosen_held_out": at_choice}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["speed", "tune", "blend"])
    ap.add_argument("--split", type=Path, help="blend: a challenge split folder (train/, challenge_set.json, "
                    "truth.json)")
    ap.add_argument("--playlists", type=int, default=3000)
    ap.add_argument("--per-category", type=int, default=30, help="test playlists per category of the bench split")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=200, help="speed: repetitions per measurement")
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--val-per-category", type=int, default=20, help="tune: validation playlists per category")
    ap.add_argument("--w-num", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0])
    ap.add_argument("--query-title-weight", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    ap.add_argument("--popularity-weight", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.4, 0.7, 1.0])
    ap.add_argument("--artist-weight", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    ap.add_argument("--title-weight", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result = {"command": "python -m benchmarks.content_bench " + " ".join(sys.argv[1:]),
              "machine": {"cpus": os.cpu_count(), "load_average_start": os.getloadavg()}}
    if args.what == "blend" and args.split is None:
        ap.error("blend needs --split SPLIT_DIR (made by python -m modules challenge)")
    result.update({"speed": cmd_speed, "tune": cmd_tune, "blend": cmd_blend}[args.what](args))
    result["machine"]["load_average_end"] = os.getloadavg()
    name = {"speed": "content-speed.json",
            "tune": f"content-tuning-{args.playlists}-s{args.seed}-pc{args.per_category}.json",
            "blend": f"content-blend-{args.split.resolve().name if args.split else ''}.json"}[args.what]
    out = args.out or ROOT / "benchmarks" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    if args.what == "speed":
        print(json.dumps({k: v for k, v in result.items() if k not in ("command",)}, indent=2))
    elif args.what == "tune":
        print("default:", json.dumps(result["default"]["params"]), result["default"]["ALL"])
        for key in ("chosen", "best_without_popularity", "best_audio_only"):
            print(f"{key}:", json.dumps(result[key]["params"]), result[key]["ALL"])
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
