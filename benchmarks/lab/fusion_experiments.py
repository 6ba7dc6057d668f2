"""Fusion experiments on the validation playlists only (never the test split).

    python -m benchmarks.lab.fusion_experiments --bundle data/bench/hyb3k \
        --store data/bench/world-3000-s0/train-store-30

Loads a fitted HybridRecommender (its two-tower held the validation playlists out), refits the cheap parts on
the playlists outside the validation split, builds every validation playlist's candidates and features, and
compares fusion models and feature sets by two-fold cross-fitted NDCG / R-precision. Prints a table and writes
benchmarks/results/fusion-experiments.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from modules.challenge import split_store
from modules.hybrid import BASE_FEATURES, PART_FEATURES, HybridRecommender, lab
from modules.hybrid.fusion import fusion_score
from modules.metrics import evaluate
from modules.store import PlaylistStore

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--cuts", type=int, nargs="+", default=[4])
    ap.add_argument("--quick", action="store_true", help="only the HGB settings on all features")
    args = ap.parse_args()
    h = HybridRecommender.load(args.bundle)
    store = PlaylistStore(args.store)
    per_cat = h.two_tower_.config_.validation_per_category
    split = split_store(store, per_category=per_cat, seed=h.seed)
    inner = split.train_pids
    h.parts_ = ("two_tower", "rules", "content", "als")
    h.feature_names_ = BASE_FEATURES + tuple(f for p in h.parts_ for f in PART_FEATURES[p])
    lab.fit_parts(h, store, inner)  # the bundle's rules, content and ALS parameters, its seed
    pls = split.challenge["playlists"]
    h.fusion_cuts = max(args.cuts)
    examples = lab.fusion_examples(h, split, store)
    sets, ys, groups, first = [], [], [], {}
    for i, (g, official, seeds, title, held) in enumerate(examples):
        cs = h.candidate_set(seeds, title)
        sets.append(cs)
        ys.append(np.fromiter((u in held for u in cs.uris), bool, len(cs.uris)))
        groups.append(np.full(len(cs.uris), g))
        if official:
            first[g] = i
    # experimental columns, computed here before they earn a place in the model
    inter = store.interactions(inner)
    Xp = inter.matrix.tocsr()
    plen = np.asarray(Xp.sum(axis=1)).ravel()
    tindex = {u: i for i, u in enumerate(inter.track_uris.tolist())}
    extra = []
    for (_g, _official, seeds, title, _held), cs in zip(examples, sets):
        ids = [tindex[u] for u in seeds if u in tindex]
        n = len(cs.uris)
        knn = np.zeros(n)
        if ids:
            v = np.zeros(Xp.shape[1], np.float32)
            v[ids] = 1
            sims = (Xp @ v) / np.sqrt(np.maximum(plen, 1) * len(ids))
            top = np.argpartition(-sims, min(100, len(sims) - 1))[:100]
            sc = np.asarray(sims[top] @ Xp[top].toarray()).ravel()
            rows = np.fromiter((tindex.get(u, -1) for u in cs.uris), np.int64, n)
            knn = np.where(rows >= 0, sc[np.maximum(rows, 0)], 0.0)
        rec_u, rec_s = h.two_tower_.candidates(seeds[-5:], title, 3000) if len(seeds) > 5 else ([], [])
        rpos = {u: i for i, u in enumerate(rec_u)}
        p = np.fromiter((rpos.get(u, -1) for u in cs.uris), np.int64, n)
        recent = np.where(p >= 0, np.asarray(rec_s)[np.maximum(p, 0)] if len(rec_s) else 0, np.nan) \
            if len(seeds) > 5 else cs.column("tt_score")
        extra.append(np.column_stack([knn, knn / max(knn.max(), 1e-9), recent]))
    for cs, e in zip(sets, extra):
        cs.X = np.hstack([cs.X, e])
        cs.feature_names = cs.feature_names + ("pknn", "pknn_rel", "tt_recent_x")
    names = sets[0].feature_names
    cut_weight = np.concatenate([np.full(len(y), 1.0 / max(y.sum(), 1)) for y in ys])
    artist_of = dict(zip(store.tracks["track_uri"], store.tracks["artist_name"]))
    grp = np.concatenate(groups)
    y_all = np.concatenate(ys)
    X_all = np.concatenate([s.X for s in sets])
    fold = grp % 2

    def run(kind, cols, label, official_only=False, weighted=False, params=None, max_cut=None):
        ci = [names.index(c) for c in cols]
        X = X_all[:, ci]
        use = np.ones(len(y_all), bool)
        if max_cut is not None:  # only the first max_cut cuts of each playlist
            nth, seen = [], {}
            for (g, *_), cs in zip(examples, sets):
                seen[g] = seen.get(g, 0) + 1
                nth.append(np.full(len(cs.uris), seen[g] <= max_cut))
            use &= np.concatenate(nth)
        if official_only:
            use = np.concatenate([np.full(len(s.uris), i in first.values()) for i, s in enumerate(sets)])
        rows = {}
        for f in (0, 1):
            sel = use & (fold != f)
            if weighted:
                model = lab.new_fusion(h, kind, params)
                model.fit(X[sel], y_all[sel], **{f"{model.steps[-1][0]}__sample_weight": cut_weight[sel]})
            else:
                model = lab.new_fusion(h, kind, params).fit(X[sel], y_all[sel])
            for g in range(f, len(pls), 2):
                s = sets[first[g]]
                sc = fusion_score(model, s.X[:, ci])
                rows[pls[g]["pid"]] = s.uris[np.lexsort((s.uris, -sc))][:500].tolist()
        summ = evaluate(rows, split.truth, artist_of=artist_of).summary()
        s = summ["ALL"]
        print(f"{label:40s} {kind:9s} NDCG {s['ndcg']:.4f}  R-prec {s['r_precision']:.4f}  clicks {s['clicks']:.2f}",
              flush=True)
        return {"label": label, "kind": kind, "features": list(cols), **s,
                "per_category": {c: v["ndcg"] for c, v in summ.items()}}

    def single(col, label):
        rows = {p["pid"]: sets[first[g]].uris[np.lexsort((sets[first[g]].uris,
                                                          -np.nan_to_num(sets[first[g]].column(col), nan=-1e9)))][:500]
                .tolist() for g, p in enumerate(pls)}
        s = evaluate(rows, split.truth, artist_of=artist_of).summary()["ALL"]
        print(f"{label:40s} {'order':9s} NDCG {s['ndcg']:.4f}  R-prec {s['r_precision']:.4f}  clicks {s['clicks']:.2f}")
        return {"label": label, "kind": "order", **s}

    if args.quick:
        base = tuple(c for c in names if c not in ("pknn", "pknn_rel", "tt_recent_x"))
        results = [run("hgb", base, f"all, {c} cuts", max_cut=c) for c in sorted(set(args.cuts))]
        for p in ({"max_iter": 200, "learning_rate": 0.05}, {"max_iter": 300, "learning_rate": 0.05},
                  {"max_leaf_nodes": 15}, {"max_leaf_nodes": 63, "min_samples_leaf": 100},
                  {"l2_regularization": 10.0}):
            results.append(run("hgb", base, f"all, {max(args.cuts)} cuts, {p}", params=p))
        (ROOT / "benchmarks" / "results" / "fusion-experiments-quick.json").write_text(json.dumps(results, indent=1))
        return 0
    results = [single("tt_score", "two-tower order"), single("als_score", "ALS order"),
               single("pknn", "playlist-kNN order")]
    no = lambda *drop: tuple(c for c in names if not any(c.startswith(d) for d in drop))  # noqa: E731
    results.append(run("hgb", no("als_", "pknn", "tt_recent_x"), "tt+rules+content"))
    results.append(run("hgb", no("als_", "pknn", "tt_recent_x"), "tt+rules+content, weighted", weighted=True))
    results.append(run("hgb", no("pknn", "tt_recent_x"), "tt+rules+content+als"))
    results.append(run("hgb", no("als_", "tt_recent_x"), "tt+rules+content+pknn"))
    results.append(run("hgb", no("als_", "pknn"), "tt+rules+content+tt_recent"))
    results.append(run("hgb", no("als_"), "tt+rules+content+pknn+tt_recent"))
    results.append(run("hgb", names, "all"))
    results.append(run("hgb", names, "all, weighted", weighted=True))
    out = ROOT / "benchmarks" / "results" / "fusion-experiments.json"
    out.write_text(json.dumps({"command": "python -m benchmarks.lab.fusion_experiments " + " ".join(sys.argv[1:]),
                               "validation_playlists": len(pls), "cuts": len(examples), "results": results},
                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
