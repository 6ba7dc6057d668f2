"""Fusion models compared on the validation playlists only (never the test split).

    python -m benchmarks.lab.fusion_kinds --store data/bench/world-20000-s0/train-store-100 \
        --two-tower-bundle data/bench/world-20000-s0/tt --kinds hgb logistic logistic_by_length

Does what ``HybridRecommender.fit`` does up to the fusion (validation split carved from the store, the two-tower
reused, rules/content/ALS fitted on the playlists outside the split, every validation cut's candidates and
features), then scores each fusion kind by the same two-fold cross-fitting ``fit`` uses to choose, overall and per
category, alone and blended with the ALS and two-tower z-scores (``modules.hybrid.lab.choose_blend``: weights per
playlist length chosen on one fold, scored on the other). The features are cached next to the store, so further
kinds cost seconds. Results:
benchmarks/results/fusion-kinds/<label>.json.

``--by-length`` adds a table per playlist length (all cuts) with ALS's and the two-tower's own orders of the same
candidates beside each fusion; ``--playlist-knn K`` appends three playlist-kNN features (the candidates' summed
cosine similarity of the K training playlists closest to the seeds, its z-score and rank; an experiment, not
a part of the hybrid); ``--item-sim`` appends item-to-seed similarities (ALS-factor and co-occurrence cosine,
largest and mean/sum over the seeds) and ``--als-ensemble N`` replaces the ALS features by the mean of N ALS
models' scores (both experiments, docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="training store (python -m modules ingest)")
    ap.add_argument("--two-tower-bundle", type=Path, required=True, help="a two-tower trained on the same store")
    ap.add_argument("--params", default="{}", help="HybridRecommender parameters as a JSON object")
    ap.add_argument("--kinds", nargs="+", default=["hgb", "logistic", "logistic_by_length"],
                    help='fusion kinds, each optionally with parameters: logistic_by_length:{"buckets": [1]}')
    ap.add_argument("--blend-objective", nargs="+", default=None, metavar="METRIC",
                    help="metrics whose sum the blend weights maximize (default: the hybrid's BLEND_OBJECTIVE)")
    ap.add_argument("--blend-by-title", action="store_true",
                    help="blend weights per playlist length *and* title / no title (an experiment; the hybrid uses "
                    "length only)")
    ap.add_argument("--by-length", action="store_true",
                    help="also score every cut per playlist length, with the ALS and two-tower orders beside")
    ap.add_argument("--playlist-knn", type=int, default=0, metavar="K",
                    help="append playlist-kNN features from the K nearest training playlists (experiment)")
    ap.add_argument("--item-sim", action="store_true",
                    help="append item-to-seed similarity features (max / mean ALS-factor cosine, max / summed "
                    "co-occurrence cosine; experiment)")
    ap.add_argument("--als-ensemble", type=int, default=1, metavar="N",
                    help="replace the ALS features by the mean of N ALS models' scores (seeds 0..N-1; experiment)")
    ap.add_argument("--taste", action="store_true",
                    help="append genre-conditional popularity features (experiment)")
    ap.add_argument("--kde", default=None, metavar="JSON",
                    help='with --taste: kernel density of the seeds over chosen audio features, e.g. '
                    '\'{"features": {"energy": 0.2, "valence": 0.2}}\' (raw values, tempo / 200; experiment)')
    ap.add_argument("--oracle-world", type=int, nargs=2, default=None, metavar=("PLAYLISTS", "SEED"),
                    help="diagnostic for a generated world's store: append the world oracle's slot probability "
                    "(benchmarks/lab/world_oracle.py, no runs) as a feature, and score its order over the candidates "
                    "and over the whole catalog")
    ap.add_argument("--label", default="default")
    args = ap.parse_args()

    import joblib
    import numpy as np

    from modules.cli.options import json_object
    from modules.hybrid import PER_CUT, HybridRecommender, lab
    from modules.hybrid.blend import length_bucket
    from modules.store import PlaylistStore

    params = {**json_object(args.params), "two_tower_bundle": str(args.two_tower_bundle)}
    store = PlaylistStore(args.store)
    h = HybridRecommender(**params)
    t0 = time.perf_counter()
    split = lab.fit_validation_stage(h, store)
    key = hashlib.sha1(json.dumps({**params, "format": 3}, sort_keys=True).encode()).hexdigest()[:10]
    cache = args.store.parent / f"fusion-data-{key}.joblib"  # the features depend on the parameters only
    if cache.exists():
        data = joblib.load(cache)
    else:
        data = lab.fusion_data(h, split, store)
        joblib.dump(data, cache)
    if args.playlist_knn:
        data = with_playlist_knn(h, data, args.playlist_knn)
    if args.item_sim:
        data = with_item_sim(h, data)
    if args.als_ensemble > 1:
        data = with_als_ensemble(h, data, args.als_ensemble, store, split.train_pids)
    if args.taste:
        if "taste" in h.feature_names_:
            raise SystemExit("--taste is the experiment behind audio_taste: add --params '{\"audio_taste\": false}'")
        data = with_taste(h, data, kde=json_object(args.kde) if args.kde else None)
    oracle_rows = None
    if args.oracle_world:
        data, oracle_rows = with_oracle(h, data, split, *args.oracle_world)
    prep = time.perf_counter() - t0
    bucket = None
    if args.blend_by_title:  # 2 x length bucket + 1 when the cut has a title
        bucket = np.array([2 * int(length_bucket(len(e[2]))) + (e[3] is not None) for e in data["examples"]])
    results = {}
    for spec in args.kinds:
        kind, _, extra = spec.partition(":")
        scores = lab.cross_fitted_scores(h, data, kind, json_object(extra) if extra else None)
        weights, blended = lab.choose_blend(h, data, scores, tuple(args.blend_objective or ()) or None, bucket)
        for label, sc in ((spec, scores), (f"{spec} + blend", blended)):
            summary = results[label] = lab.score_cuts(h, data, split, sc)
            summary.pop(PER_CUT)
            a, c = summary["ALL"], summary["ALL_CUTS"]
            print(f"{label:40s} official cuts NDCG {a['ndcg']:.4f} R-prec {a['r_precision']:.4f} | all {c['count']} "
                  f"cuts NDCG {c['ndcg']:.4f} R-prec {c['r_precision']:.4f}", flush=True)
        results[f"{spec} + blend"]["weights"] = {str(b): list(w) for b, w in weights.items()}
        if args.by_length:
            for label, sc in ((spec, scores), (f"{spec} + blend", blended)):
                results[label]["by_length"] = by_length(data, sc)
    if args.by_length:
        sets = data["sets"]
        for label, col in (("ALS order", "als_score"), ("two-tower order", "tt_score"), ("taste order", "taste"),
                           ("audio-likelihood order", "audio_llr"), ("taste x audio order", "taste_audio"),
                           ("oracle order (candidates)", "oracle_q"),
                           ("kde order", "kde_log"), ("taste x kde order", "taste_kde_log")):
            if col in sets[0].feature_names:
                results[label] = {"by_length": by_length(data, [s.column(col) for s in sets])}
        if oracle_rows is not None:
            results["oracle (whole catalog)"] = {"by_length": by_length(data, None, oracle_rows)}
        rows = [k for k in results if "by_length" in results[k]]
        buckets = list(results[rows[0]]["by_length"])
        print("all cuts per playlist length, NDCG / R-prec:")
        print(" " * 34 + "".join(f"{b:>17s}" for b in buckets))
        for k in rows:
            bl = results[k]["by_length"]
            print(f"{k[:34]:34s}" + "".join(f"{bl[b]['ndcg']:8.4f}/{bl[b]['r_precision']:.4f}" for b in buckets))
    cats = [c for c in next(iter(results.values())) if c not in ("ALL_CUTS", "weights", "by_length")]
    fused = [k for k in results if "ALL" in results[k]]
    print("per category NDCG:")
    print(" " * 20 + "".join(f"{k[:20]:>22s}" for k in fused))
    for c in cats:
        print(f"{c:20s}" + "".join(f"{results[k][c]['ndcg']:22.4f}" for k in fused))
    out = ROOT / "benchmarks" / "results" / "fusion-kinds" / f"{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python -m benchmarks.lab.fusion_kinds " + " ".join(sys.argv[1:]),
                               "playlists": len(split.challenge["playlists"]), "cuts": len(data["examples"]),
                               "positives": int(np.sum(data["y"])), "prepare_seconds": round(prep),
                               "results": results}, indent=1))
    return 0


def by_length(data: dict, scores, tops=None) -> dict:
    """Mean NDCG and R-precision of every cut, per playlist-length bucket of the blend (``BLEND_BUCKETS``);
    ``tops`` gives each cut's ranked URIs directly instead of ``scores`` over its candidates."""
    import numpy as np

    from modules.hybrid import BLEND_BUCKETS
    from modules.hybrid.blend import length_bucket
    from modules.metrics import score_playlist

    edges = (0, *BLEND_BUCKETS)
    names = [f"{lo}-{hi - 1}" if hi - lo > 1 else str(lo) for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1]}+"]
    rows: dict[str, list] = {}
    for i, (_g, _official, seeds, _title, held) in enumerate(data["examples"]):
        cs = data["sets"][i]
        top = tops[i] if tops is not None else \
            cs.uris[cs.order(np.nan_to_num(np.asarray(scores[i], np.float64), nan=-np.inf), 500)].tolist()
        got = score_playlist(top, list(held))
        rows.setdefault(names[int(length_bucket(len(seeds)))], []).append((got["ndcg"], got["r_precision"]))
    return {b: {"ndcg": float(np.mean([r[0] for r in rows[b]])), "r_precision": float(np.mean([r[1] for r in rows[b]])),
                "cuts": len(rows[b])} for b in names if b in rows}


def with_playlist_knn(h, data: dict, k: int) -> dict:
    """``data`` with three playlist-kNN features appended to every candidate set, from the training matrix the
    fusion's other features were fitted on (the playlists outside the validation split, so nothing leaks)."""
    import numpy as np

    from modules.base import zscore
    from modules.hybrid import CandidateSet, lab

    if getattr(h, "als_", None) is None:
        raise SystemExit("--playlist-knn needs the 'als' part (it reads ALS's training matrix)")
    m = h.als_.matrix_
    tracks_by_playlist = m.X.T.tocsr()
    length = np.asarray(m.X.sum(axis=1)).ravel()
    als_row = lab.id_maps(h).als_row
    sets = []
    for (_g, _official, seeds, _title, _held), cs in zip(data["examples"], data["sets"], strict=True):
        q = m.known(seeds)
        rows = als_row[cs.ids]
        score = np.full(len(cs.uris), np.nan)
        if len(q):
            overlap = np.asarray(tracks_by_playlist[q].sum(axis=0)).ravel()
            near = np.flatnonzero(overlap)
            sim = overlap[near] / np.sqrt(length[near] * len(q))
            if len(near) > k:
                keep = np.argpartition(-sim, k)[:k]
                near, sim = near[keep], sim[keep]
            weight = np.zeros(m.X.shape[0])
            weight[near] = sim
            ok = rows >= 0
            score[ok] = tracks_by_playlist[rows[ok]] @ weight
        rank = np.argsort(np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable"), kind="stable")
        extra = np.column_stack([score, zscore(score), np.log1p(rank.astype(np.float64))])
        sets.append(CandidateSet(cs.uris, np.hstack([cs.X, extra]),
                                 cs.feature_names + ("pknn_score", "pknn_z", "pknn_rank_log"), cs.rule_rows, cs.ids))
    h.feature_names_ = sets[0].feature_names
    return {**data, "sets": sets, "X": np.concatenate([s.X for s in sets])}


def with_als_ensemble(h, data: dict, n: int, store, pids) -> dict:
    """``data`` with the ALS features (score, z-score, rank among the candidates) recomputed from the mean score
    of ``n`` ALS models that differ only in their seed, fitted on the same training playlists (``pids`` of
    ``store``, those outside the validation split) as the hybrid's."""
    import numpy as np

    from modules.base import zscore
    from modules.baselines import ALSRecommender
    from modules.hybrid import CandidateSet, lab

    base = h.als_
    models = [base]
    for s in range(1, n):
        models.append(ALSRecommender(factors=base.factors, regularization=base.regularization, alpha=base.alpha,
                                     iterations=base.iterations, seed=base.seed + s).fit(store, pids))
    als_row = lab.id_maps(h).als_row
    names = list(data["sets"][0].feature_names)
    cols = [names.index(c) for c in ("als_score", "als_z", "als_rank_log")]
    sets = []
    for (_g, _official, seeds, _title, _held), cs in zip(data["examples"], data["sets"], strict=True):
        q = base.matrix_.known(seeds)
        X = cs.X.copy()
        rows = als_row[cs.ids]
        ok = rows >= 0
        if len(q) and ok.any():
            sc = np.full(len(cs.uris), np.nan)
            sc[ok] = np.mean([np.asarray(m.model_.item_factors)[rows[ok]] @ m.fold_in(q) for m in models], axis=0)
            rank = np.argsort(np.argsort(-np.nan_to_num(sc, nan=-np.inf), kind="stable"), kind="stable")
            X[:, cols[0]], X[:, cols[1]], X[:, cols[2]] = sc, zscore(sc), np.log1p(rank.astype(np.float64))
        sets.append(CandidateSet(cs.uris, X, cs.feature_names, cs.rule_rows, cs.ids))
    return {**data, "sets": sets, "X": np.concatenate([s.X for s in sets])}


def with_taste(h, data: dict, alpha: float = 0.5, bandwidth: float = 1.0, kde: dict | None = None) -> dict:
    """``data`` with genre-conditional popularity features appended: ``taste(t) = sum_g share_g(seeds) *
    (count(t) + alpha) / sum_{t' in g} (count(t') + alpha)`` over the genres of the content model (a playlist as a
    mixture of genres, each genre's tracks drawn by popularity), its z-score and rank, and ``audio_kde``, the mean
    Gaussian kernel of the candidate's standardized audio features to the seeds' (near some seeds, not the mean)."""
    import numpy as np

    from modules.base import zscore
    from modules.hybrid import CandidateSet, lab

    c = h.content_
    genre_cols = np.flatnonzero([str(v).startswith("g:") for v in c.vocab_])
    G = (c.text_[:, genre_cols] > 0).astype(np.float64).tocsr()
    count = np.zeros(G.shape[0])
    rows = c.rows_of(h.als_.matrix_.uris)
    count[rows[rows >= 0]] = h.als_.matrix_.counts[rows >= 0]
    weight = count + alpha
    Z = np.asarray(G.T @ weight).ravel()
    per_track = np.asarray(G.sum(axis=1)).ravel()
    ids = lab.id_maps(h)
    num, has_num = c.numeric_.astype(np.float64), c.has_num_
    names = ("taste", "taste_z", "taste_rank_log", "audio_kde", "audio_llr", "taste_audio",
             *(f"llr_{f}" for f in c.features))
    mu_g, var_g = num[has_num].mean(0), num[has_num].var(0) + 1e-6
    kde_per_dim = bool(kde and kde.get("per_dimension"))
    if kde and "standardized" in kde:  # every audio feature of the content model, in standard deviations
        kx = c.numeric_.astype(np.float64) / float(kde["standardized"])
        names = (*names, *(tuple(f"kde_{f}" for f in c.features) if kde_per_dim else ()), "kde_log", "taste_kde_log")
    elif kde:
        feats = list(kde["features"])
        raw = c.numeric_.astype(np.float64) * c.scaler_scale_ + c.scaler_mean_  # clipped at 5 sd: fine here
        kx = raw[:, [c.feature_index_[f] for f in feats]] / np.array([200.0 if f == "tempo" else 1.0 for f in feats])
        kx = kx / np.array([kde["features"][f] for f in feats])
        names = (*names, "kde_log", "taste_kde_log")
    sets = []
    for (_g, _official, seeds, _title, _held), cs in zip(data["examples"], data["sets"], strict=True):
        srows = c.rows_of(seeds)
        srows = srows[srows >= 0]
        crow = ids.content[cs.ids]
        ok = crow >= 0
        extra = np.full((len(cs.uris), len(names)), np.nan)
        tagged = srows[per_track[srows] > 0]
        if len(tagged) and ok.any():
            share = np.asarray(G[tagged].multiply(1.0 / per_track[tagged][:, None]).sum(axis=0)).ravel()
            share /= share.sum()
            extra[ok, 0] = weight[crow[ok]] * (G[crow[ok]] @ (share / np.maximum(Z, 1e-12)))
            extra[:, 1] = zscore(extra[:, 0])
            rank = np.argsort(np.argsort(-np.nan_to_num(extra[:, 0], nan=-np.inf), kind="stable"), kind="stable")
            extra[:, 2] = np.log1p(rank.astype(np.float64))
        snum = srows[has_num[srows]]
        okn = ok.copy()
        okn[ok] = has_num[crow[ok]]
        if len(snum) and okn.any():
            d2 = ((num[crow[okn]][:, None, :] - num[snum][None, :, :]) ** 2).sum(-1)
            extra[okn, 3] = np.exp(-d2 / (2 * bandwidth**2)).mean(1)
            # does it sound like this playlist? seeds' diagonal Gaussian (shrunk to the catalog's) vs the catalog's
            n, kappa = len(snum), 5.0
            mu = (num[snum].sum(0) + kappa * mu_g) / (n + kappa)
            var = (((num[snum] - mu) ** 2).sum(0) + kappa * var_g) / (n + kappa)
            x = num[crow[okn]]
            per_dim = -0.5 * ((x - mu) ** 2 / var + np.log(var)) + 0.5 * ((x - mu_g) ** 2 / var_g + np.log(var_g))
            extra[okn, 4] = per_dim.sum(1)
            extra[np.ix_(okn, np.arange(6, 6 + len(c.features)))] = per_dim
            extra[:, 5] = np.log(extra[:, 0] + 1e-9) + extra[:, 4]
            if kde:
                d2 = ((kx[crow[okn]][:, None, :] - kx[snum][None, :, :]) ** 2).sum(-1)
                dens = np.exp(-d2 / 2).mean(1)
                if kde_per_dim:  # one density ratio per audio feature: the fusion learns which ones matter
                    x1, s1 = kx[crow[okn]], kx[snum]
                    t1 = weight * (G @ (share / np.maximum(Z, 1e-12))) * has_num if len(tagged) else None
                    if t1 is not None and t1.sum() > 0:
                        r1 = kx[np.random.default_rng(len(seeds)).choice(len(t1), size=300, p=t1 / t1.sum())]
                        num_d = np.exp(-((x1[:, None, :] - s1[None, :, :]) ** 2) / 2).mean(1)
                        den_d = np.exp(-((x1[:, None, :] - r1[None, :, :]) ** 2) / 2).mean(1)
                        first_col = len(names) - 2 - len(c.features)
                        extra[np.ix_(okn, np.arange(first_col, first_col + len(c.features)))] = \
                            np.log((num_d + 1e-3) / (den_d + 1e-3))
                # reference: the same kernel over tracks drawn like the taste (genre mixture x popularity)
                t_all = weight * (G @ (share / np.maximum(Z, 1e-12))) * has_num if len(tagged) else None
                if t_all is not None and t_all.sum() > 0:
                    rng = np.random.default_rng(len(seeds))
                    ref = rng.choice(len(t_all), size=300, p=t_all / t_all.sum())
                    d2r = ((kx[crow[okn]][:, None, :] - kx[ref][None, :, :]) ** 2).sum(-1)
                    dens = dens / (np.exp(-d2r / 2).mean(1) + 1e-3)
                extra[okn, -2] = np.log(dens + 1e-6)
                extra[:, -1] = np.log(extra[:, 0] + 1e-9) + extra[:, -2]
        sets.append(CandidateSet(cs.uris, np.hstack([cs.X, extra]), cs.feature_names + names, cs.rule_rows, cs.ids))
    h.feature_names_ = sets[0].feature_names
    return {**data, "sets": sets, "X": np.concatenate([s.X for s in sets])}


def with_oracle(h, data: dict, split, playlists: int, seed: int) -> tuple[dict, list]:
    """The world oracle's slot probability (hidden taste known, no run term) as a feature of every candidate, and
    its top 500 of the whole catalog per cut: how much of the oracle the candidate pool keeps. A diagnostic of
    the world, never a feature of the hybrid."""
    import numpy as np
    import pandas as pd

    from benchmarks.lab.world_oracle import slot_probability, tastes
    from modules.catalog import read_catalog
    from modules.hybrid import CandidateSet
    from modules.world import PlaylistWorld

    cat = read_catalog()
    world = PlaylistWorld(cat, seed=seed)
    uris = cat.reset_index(drop=True)["track_uri"].to_numpy()
    index = pd.Index(uris, dtype=object)
    pids = [int(p["pid"]) for p in split.challenge["playlists"]]
    hidden = tastes(world, playlists, set(pids))
    sets, tops = [], []
    for (g, _official, seeds, _title, _held), cs in zip(data["examples"], data["sets"], strict=True):
        q = slot_probability(world, hidden[pids[g]], np.zeros(0, np.int64), True, 1, runs=False)
        srows = index.get_indexer(np.asarray(seeds, dtype=object))
        q[srows[srows >= 0]] = -1.0
        top = np.argpartition(-q, 500)[:500]
        tops.append(uris[top[np.lexsort((top, -q[top]))]].tolist())
        rows = index.get_indexer(np.asarray(cs.uris, dtype=object))
        col = np.where(rows >= 0, q[np.maximum(rows, 0)], np.nan)[:, None]
        sets.append(CandidateSet(cs.uris, np.hstack([cs.X, col]), cs.feature_names + ("oracle_q",), cs.rule_rows,
                                 cs.ids))
    h.feature_names_ = sets[0].feature_names
    return {**data, "sets": sets, "X": np.concatenate([s.X for s in sets])}, tops


def with_item_sim(h, data: dict) -> dict:
    """``data`` with item-to-seed similarity features appended: for each candidate, the max and mean cosine of
    its ALS item factors to the seeds' and the max and summed co-occurrence cosine (item-kNN) to the seeds, from
    the training matrix the fusion's other features were fitted on. A playlist mixing styles has candidates close
    to some seeds only; the playlist's one ALS vector averages them away."""
    import numpy as np

    from modules.base import zscore
    from modules.hybrid import CandidateSet, lab

    if getattr(h, "als_", None) is None:
        raise SystemExit("--item-sim needs the 'als' part (it reads ALS's factors and training matrix)")
    m = h.als_.matrix_
    Y = np.asarray(h.als_.model_.item_factors, np.float64)
    Y = Y / np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-12)
    XT = m.X.T.tocsr()
    norm = np.sqrt(np.maximum(m.counts, 1.0))
    als_row = lab.id_maps(h).als_row
    names = ("isim_max", "isim_mean", "cooc_max", "cooc_sum", "cooc_sum_z")
    sets = []
    for (_g, _official, seeds, _title, _held), cs in zip(data["examples"], data["sets"], strict=True):
        q = m.known(seeds)
        rows = als_row[cs.ids]
        ok = np.flatnonzero(rows >= 0)
        extra = np.full((len(cs.uris), len(names)), np.nan)
        if len(q) and len(ok):
            cos = Y[rows[ok]] @ Y[q].T
            extra[ok, 0] = cos.max(1)
            extra[ok, 1] = cos.mean(1)
            co = (XT[rows[ok]] @ XT[q].T).toarray() / norm[rows[ok], None] / norm[None, q]
            extra[ok, 2] = co.max(1)
            extra[ok, 3] = co.sum(1)
            extra[:, 4] = zscore(extra[:, 3])
        sets.append(CandidateSet(cs.uris, np.hstack([cs.X, extra]), cs.feature_names + names, cs.rule_rows, cs.ids))
    h.feature_names_ = sets[0].feature_names
    return {**data, "sets": sets, "X": np.concatenate([s.X for s in sets])}


if __name__ == "__main__":
    sys.exit(main())
