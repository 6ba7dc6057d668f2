"""Choose hyper-parameters on a validation split carved from the TRAINING playlists (never the test split).

    python -m benchmarks.lab.two_tower_tune --method als --grid '[{"factors": 64}, {"factors": 128}]'
    python -m benchmarks.lab.two_tower_tune --method two-tower --grid '[{"temperature": 0.05}, {"temperature": 0.1}]'
    python -m benchmarks.lab.two_tower_tune --report          # tables of everything saved so far
    python -m benchmarks.lab.two_tower_tune --poc-check       # the POC on playlists it was trained on vs new ones
    python -m benchmarks.lab.two_tower_tune --quality-tables  # recall@500 and clicks per category, from the saved
                                                          # results of benchmarks/quality.py

The world's training store is the one ``benchmarks/quality.py`` builds (data/bench/world-<n>-s<seed>/
train-store-<pc>); ``split_store`` on its playlists carves ``--val-per-category`` validation playlists per
category; each parameter set is fitted on the rest and scored on them. (The two-tower carves its own,
inner, early-stopping split from what it is given.) One JSON per run lands in
benchmarks/results/tune-<n>-s<seed>-pc<pc>/<method>-<label>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.quality import prepare

ROOT = Path(__file__).resolve().parents[2]


def union(args) -> None:
    import numpy as np
    import orjson

    from modules.mpd import read_submission

    a, b = args.union.split(",")
    base = ROOT / "data" / "bench" / f"world-{args.playlists}-s{args.seed}"
    truth = orjson.loads((base / f"split-{args.per_category}" / "truth.json").read_bytes())
    ra, rb = (read_submission(base / f"submission-{m}.csv").rows for m in (a, b))
    rec, overlap = [], []
    for pid, t in truth.items():
        la, lb, g = set(ra[int(pid)]), set(rb[int(pid)]), set(t["tracks"])
        rec.append(len((la | lb) & g) / len(g))
        overlap.append(len(la & lb) / max(len(la), 1))
    print(f"{a} | {b}: recall of the union of both 500-track lists {np.mean(rec):.4f}; "
          f"share of {a}'s list also in {b}'s {np.mean(overlap):.3f}")


def quality_tables(res_dir: Path) -> None:
    from modules.challenge import CATEGORIES

    results = {p.stem: json.loads(p.read_text())["metrics"] for p in sorted(res_dir.glob("*.json"))}
    for metric, fmt in (("recall", "{:.4f}"), ("clicks", "{:.2f}")):
        print(f"\n{metric} per category ({res_dir.name}):\n")
        print("| method | " + " | ".join(c.name for c in CATEGORIES) + " |")
        print("|---|" + "---|" * len(CATEGORIES))
        for label, met in results.items():
            print(f"| {label} | " + " | ".join(fmt.format(met[c.name][metric]) if c.name in met else "-"
                                             for c in CATEGORIES) + " |")


def poc_check(args, out_dir: Path) -> None:
    import numpy as np
    import tensorflow as tf

    from modules.baselines import PlaylistIdTwoTowerRecommender
    from modules.store import PlaylistStore

    base = prepare(args.playlists, args.per_category, args.seed)
    store = PlaylistStore(base / f"train-store-{args.per_category}")
    rec = PlaylistIdTwoTowerRecommender(seed=args.seed).fit(store)
    m = rec.matrix_
    C = rec.model_.cand(tf.constant(m.uris.astype(str))).numpy()
    n = 300
    Q = rec.model_.query(tf.constant([str(p) for p in m.pids[:n]])).numpy()
    pop = set(np.argsort(-m.counts, kind="stable")[:500].tolist())
    oov = set(rec.order_[:500].tolist())
    seen, popular, new = [], [], []
    for i in range(n):
        own = set(m.X[i].indices.tolist())
        top = set(np.argpartition(-(C @ Q[i]), 500)[:500].tolist())
        seen.append(len(top & own) / len(own))
        popular.append(len(pop & own) / len(own))
        new.append(len(oov & own) / len(own))
    row = {"playlists": n, "own_tracks_recall500_from_id_embedding": float(np.mean(seen)),
           "own_tracks_recall500_popularity": float(np.mean(popular)),
           "own_tracks_recall500_oov_answer": float(np.mean(new)),
           "oov_top500_overlap_with_popularity_top500": len(oov & pop)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "poc-check.json").write_text(json.dumps(row, indent=1))
    print(json.dumps(row, indent=1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--playlists", type=int, default=3000)
    ap.add_argument("--per-category", type=int, default=30, help="test split of the world (left untouched)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-per-category", type=int, default=20, help="validation playlists per category")
    ap.add_argument("--method", choices=["popularity", "itemknn", "als", "poc", "two-tower"])
    ap.add_argument("--grid", default="[{}]", help="JSON list of parameter sets")
    ap.add_argument("--label", default="", help="prefix of the result files")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--union", metavar="A,B",
                    help="for two methods' submissions from benchmarks/quality.py (e.g. als,two-tower): recall@500 "
                    "of the union of their lists and the overlap of the lists (how complementary they are)")
    ap.add_argument("--quality-tables", action="store_true",
                    help="recall@500 and clicks per category from benchmarks/results/quality-<n>-s<seed>-pc<pc>/")
    ap.add_argument("--poc-check", action="store_true",
                    help="fit the playlist-ID POC on the training store; recall@500 of its training playlists' own "
                    "tracks from their ID embeddings (seen) next to the answer every new playlist gets")
    args = ap.parse_args()
    out_dir = ROOT / "benchmarks" / "results" / f"tune-{args.playlists}-s{args.seed}-pc{args.per_category}"
    if args.method:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        from modules.baselines import validate, validation_split
        from modules.methods import make_method
        from modules.store import PlaylistStore

        base = prepare(args.playlists, args.per_category, args.seed)
        store = PlaylistStore(base / f"train-store-{args.per_category}")
        split = validation_split(store, per_category=args.val_per_category, seed=args.seed + 1)
        out_dir.mkdir(parents=True, exist_ok=True)
        for params in json.loads(args.grid):
            t0 = time.perf_counter()
            rec = make_method(args.method, **{"seed": args.seed, **params})
            summary = validate(rec, store, split)
            seconds = time.perf_counter() - t0
            label = args.label + ("-" if args.label else "") + (
                "_".join(f"{k}={v}" for k, v in sorted(params.items())) or "default")
            row = {"method": args.method, "params": params, "seed": args.seed, "seconds": round(seconds, 1),
                   "validation_playlists": len(split.truth), "training_playlists": len(split.train_pids),
                   "metrics": summary}
            if hasattr(rec, "config_"):
                row["config"] = rec.config_.to_dict()  # the full configuration, defaults included
            if hasattr(rec, "curve_"):
                row["curve"] = rec.curve_
                row["best_epoch"] = rec.best_epoch_
            (out_dir / f"{args.method}-{label}.json").write_text(json.dumps(row, indent=1))
            a = summary["ALL"]
            print(f"{args.method} {params}: NDCG {a['ndcg']:.4f} R-prec {a['r_precision']:.4f} "
                  f"recall@500 {a['recall']:.4f} clicks {a['clicks']:.2f} ({seconds:.0f} s)"
                  + (f" best epoch {rec.best_epoch_}" if hasattr(rec, "best_epoch_") else ""), flush=True)
    if args.poc_check:
        poc_check(args, out_dir)
    if args.union:
        union(args)
    if args.quality_tables:
        quality_tables(ROOT / "benchmarks" / "results" / f"quality-{args.playlists}-s{args.seed}-pc{args.per_category}")
    if args.report:
        # Two-tower runs before the defaults changed record them in "defaults_at_run_time": v1 = temperature
        # 0.05, learning_rate 0.005, max_seeds 50, uniform_context_rate 0, unshared item encoders, no item bias,
        # mean pooling; v2 = today's but no item bias and mean pooling; v3 = today's (full "config" saved).
        print("| method | base | params | NDCG | R-prec | recall@500 | clicks | s |")
        print("|---|---|---|---|---|---|---|---|")
        for p in sorted(out_dir.glob("*.json")):
            if p.name == "poc-check.json":
                continue
            r = json.loads(p.read_text())
            a = r["metrics"]["ALL"]
            defaults = r.get("defaults_at_run_time", {})
            base = ("v1" if defaults.get("temperature") == 0.05 else "v2" if defaults else "v3") \
                if r["method"] == "two-tower" else ""
            print(f"| {r['method']} | {base} | `{json.dumps(r['params'])}` | {a['ndcg']:.4f} | "
                  f"{a['r_precision']:.4f} | {a['recall']:.4f} | {a['clicks']:.2f} | {r['seconds']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
