"""The hybrid recommender: two-tower candidates → rule signals → content similarity → a learned fusion.

For one playlist:

1. **candidates**: the two-tower's top ``n_candidates`` (any playlist, no retraining), unioned with the rule
   consequents of the seeds and the most popular tracks (so title-only or all-unknown playlists still have a
   pool);
2. **features** per candidate: the two-tower score, its gap to the best and its rank; the rules' summed
   confidence, the best firing rule's confidence and lift, the rule rank; the content similarity (audio, tags,
   combined); the track's popularity; how many seeds share its artist or album; and the playlist's context
   (number of seeds, known share, title or not);
3. **fusion**: a scikit-learn model trained on a validation split carved from the *training* playlists
   (the same split the two-tower holds out for early stopping, so the two-tower never saw these playlists):
   each candidate is labelled by whether it is among the playlist's held-out tracks. Gradient-boosted trees
   (``HistGradientBoostingClassifier``) and a logistic regression are compared by two-fold cross-fitting on the
   validation playlists; the better NDCG wins and is refitted on all of them.

``parts`` switches parts off for ablations (``("two_tower", "rules")`` …); the fusion then learns on what is left.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modules.base import PlaylistRecommender, popularity_order, positions, single_thread_blas
from modules.challenge import SplitError, split_store
from modules.metrics import evaluate

log = logging.getLogger(__name__)

PARTS = ("two_tower", "rules", "content", "als")
DEFAULT_PARTS = PARTS
BASE_FEATURES = ("pop_log", "same_artist", "same_album", "same_artist_last", "same_album_last", "n_seeds_log",
                 "known_share", "has_title")
PART_FEATURES = {
    "two_tower": ("tt_score", "tt_gap", "tt_z", "tt_rank_log", "tt_found", "tt_recent"),
    "rules": ("rule_score", "rule_norm", "rule_recent", "rule_conf", "rule_lift_log", "rule_rank_log", "rule_found"),
    "content": ("cont_num", "cont_text", "cont_combined", "cont_z"),
    "als": ("als_score", "als_z", "als_rank_log"),
}
RECENT_SEEDS = 5


class HybridError(ValueError):
    """Bad parameters or data for the hybrid recommender."""


@dataclass
class CandidateSet:
    """One playlist's candidates with their features.

    ``uris`` has shape ``[n]``; ``X`` is ``[n, n_features]`` in ``feature_names`` order; ``rule_rows`` is the
    best firing rule per candidate (-1 where none), for explanations.
    """

    uris: np.ndarray
    X: np.ndarray
    feature_names: tuple[str, ...]
    rule_rows: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.X[:, self.feature_names.index(name)]


class HybridRecommender(PlaylistRecommender):
    """Two-tower candidates, rule and content signals, blended by a model learned on validation playlists.

    Parameters
    ----------
    parts : tuple of str, default=("two_tower", "rules", "content", "als")
        Which parts feed the fusion; ``"two_tower"`` is required (it generates candidates). ``"als"`` is implicit's
        ALS folded in from the seeds: its scores and its top candidates (the two lists are complementary).
    n_candidates : int, default=1500
        Two-tower candidates per playlist (rule consequents and popular tracks are added).
    n_rule_candidates : int, default=300
        Rule consequents added to the pool.
    n_popular_candidates : int, default=100
        Most popular training tracks added to the pool.
    validation_per_category : int, default=10
        Validation playlists per challenge category carved from the training playlists (halved until the
        data allows it). The two-tower holds out the same playlists for its early stopping.
    fusion_cuts : int, default=4
        Cuts per validation playlist the fusion learns from: the official one plus others in the categories the
        playlist is long enough for (so 10 per category still teaches every kind of playlist).
    fusion : {"auto", "hgb", "logistic"}, default="auto"
        The fusion model; ``"auto"`` picks by two-fold cross-fitted NDCG on the validation playlists.
    two_tower, rules, content, als : dict, default=None
        Parameters of each part (``TwoTowerRecommender``, ``RuleRecommender``, ``ContentModel``,
        ``ALSRecommender``).
    two_tower_bundle : path, default=None
        Reuse a two-tower trained by ``train-two-tower`` on the same playlists (checked) instead of training one.
    features : DataFrame, default=None
        Audio features (``track_uri`` + feature columns) for the two-tower and the content model; ``None``
        reads the shipped catalog.
    seed : int, default=0
    show_progress : bool, default=False

    Attributes
    ----------
    two_tower_, rules_, content_ : fitted parts (``None`` when switched off)
    fusion_ : fitted scikit-learn estimator
    fusion_kind_ : str
    feature_names_ : tuple of str
    validation_ : dict
        Validation metrics of the fused ranking (cross-fitted) and of the two-tower alone.
    """

    def __init__(self, *, parts=DEFAULT_PARTS, n_candidates: int = 1500, n_rule_candidates: int = 300,
                 n_popular_candidates: int = 100, validation_per_category: int = 10, fusion_cuts: int = 4,
                 fusion: str = "auto",
                 two_tower: dict | None = None, rules: dict | None = None, content: dict | None = None,
                 als: dict | None = None, two_tower_bundle: str | None = None, features=None, seed: int = 0,
                 show_progress: bool = False):
        self.parts = parts
        self.n_candidates = n_candidates
        self.n_rule_candidates = n_rule_candidates
        self.n_popular_candidates = n_popular_candidates
        self.validation_per_category = validation_per_category
        self.fusion_cuts = fusion_cuts
        self.fusion = fusion
        self.two_tower = two_tower
        self.rules = rules
        self.content = content
        self.als = als
        self.two_tower_bundle = two_tower_bundle
        self.features = features
        self.seed = seed
        self.show_progress = show_progress

    # -- validation of parameters -----------------------------------------------------------------------
    def _check_params(self) -> tuple[str, ...]:
        parts = (self.parts,) if isinstance(self.parts, str) else tuple(self.parts)
        unknown = [p for p in parts if p not in PARTS]
        if unknown or "two_tower" not in parts:
            raise HybridError(f"The 'parts' parameter of HybridRecommender must list parts from {list(PARTS)} and "
                              f"include 'two_tower' (it generates the candidates). Got {self.parts!r} instead.")
        for name in ("n_candidates", "n_rule_candidates", "n_popular_candidates", "validation_per_category",
                     "fusion_cuts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "n_candidates" else 0):
                raise HybridError(f"The {name!r} parameter of HybridRecommender must be an int >= "
                                  f"{1 if name == 'n_candidates' else 0}. Got {v!r} instead.")
        if self.fusion not in ("auto", "hgb", "logistic"):
            raise HybridError(f"The 'fusion' parameter of HybridRecommender must be 'auto', 'hgb' or 'logistic'. "
                              f"Got {self.fusion!r} instead.")
        return tuple(p for p in PARTS if p in parts)

    # -- fitting ----------------------------------------------------------------------------------------
    def fit(self, store, pids=None):
        """Fit the parts, learn the fusion on validation playlists carved from ``store`` (``pids``), refit the
        cheap parts (rules, content) on all training playlists. Returns ``self``."""
        from modules.content import ContentModel
        from modules.rules import RuleRecommender
        from modules.two_tower import TwoTowerRecommender

        parts = self._check_params()
        t0 = time.perf_counter()
        all_pids = store.playlists["pid"].to_numpy() if pids is None else np.unique(np.asarray(pids, np.int64))
        split, per_cat = self._validation_split(store, all_pids)
        inner = split.train_pids if split is not None else all_pids
        self.parts_ = parts
        self.feature_names_ = BASE_FEATURES + tuple(f for p in parts for f in PART_FEATURES[p])

        tt_params = {"seed": self.seed, "show_progress": self.show_progress, **(self.two_tower or {})}
        tt_params.setdefault("validation_per_category", per_cat)
        if self.features is not None:
            tt_params.setdefault("features", self.features)
        if self.two_tower_bundle:
            self.two_tower_ = self._pretrained_two_tower(store, inner, per_cat)
        else:
            log.info("hybrid: training the two-tower on %d playlists", len(all_pids))
            self.two_tower_ = TwoTowerRecommender(**tt_params).fit(store, all_pids)

        def fit_cheap(pids_):
            rules = content = als = None
            if "rules" in parts:
                rules = RuleRecommender(**self._rule_params(len(pids_))).fit(store, pids_).model_
            if "content" in parts:
                content = ContentModel(**(self.content or {})).fit(self.features, store, pids_)
            if "als" in parts:
                from modules.baselines import ALSRecommender

                als = ALSRecommender(**{"seed": self.seed, **(self.als or {})}).fit(store, pids_)
            return rules, content, als

        self.validation_ = {}
        if split is None:
            log.warning("hybrid: no validation playlists; fusion falls back to the two-tower order")
            self.fusion_kind_, self.fusion_ = "two_tower", None
        else:
            # every table the features read comes from the playlists outside the validation split: a held-out
            # track must not be "popular" because its own validation playlist counted it
            self._fit_tables(store, inner)
            self.rules_, self.content_, self.als_ = fit_cheap(inner)
            self._learn_fusion(split, store)
        self._fit_tables(store, all_pids)
        self.rules_, self.content_, self.als_ = fit_cheap(all_pids)
        self.fallback_ = popularity_order(store, all_pids)
        self.fit_seconds_ = time.perf_counter() - t0
        self.fitted_ = True
        return self

    def _pretrained_two_tower(self, store, inner, per_cat):
        """A two-tower trained earlier (``train-two-tower``) on exactly these playlists, with the same validation
        playlists held out; anything else would leak the validation playlists into the fusion's features."""
        from modules.two_tower import TwoTowerRecommender

        tt = TwoTowerRecommender.load(self.two_tower_bundle)
        ok = (tt.config_.validation_per_category == per_cat and int(tt.seed) == int(self.seed)
              and tt._fingerprint(store, inner, tt.config_) == tt.fingerprint_)
        if not ok:
            raise HybridError(f"the two-tower in {self.two_tower_bundle} was not trained on these playlists with "
                              f"seed {self.seed} and validation_per_category {per_cat}; train it with "
                              "`python -m modules train-two-tower` on the same data, or drop two_tower_bundle.")
        log.info("hybrid: using the two-tower trained in %s", self.two_tower_bundle)
        return tt

    def _rule_params(self, n_playlists: int) -> dict:
        params = dict(self.rules or {})
        if "min_support" not in params and "min_count" not in params:
            # pair rules seen in one playlist are the best signal on small data (docs/rules.md); on larger data
            # a count threshold keeps the rule table bounded
            params["min_count"] = max(1, int(round(n_playlists / 5000)))
        return params

    def _validation_split(self, store, pids):
        per_cat = self.validation_per_category
        while per_cat >= 1:
            try:
                return split_store(store, per_category=per_cat, seed=int(self.seed), pids=pids), per_cat
            except SplitError as err:
                log.info("hybrid: %s; trying %d per category", err, per_cat // 2)
                per_cat //= 2
        return None, 0

    def _fit_tables(self, store, pids) -> None:
        """Per-track lookups used by the features: popularity, artist and album codes."""
        tr = store.tracks
        self.track_uris_ = tr["track_uri"].to_numpy().astype(str)
        self.track_index_ = {u: i for i, u in enumerate(self.track_uris_.tolist())}
        self._uri_index_ = None
        _, self.artist_code_ = np.unique(tr["artist_uri"].to_numpy().astype(str), return_inverse=True)
        _, self.album_code_ = np.unique(tr["album_uri"].to_numpy().astype(str), return_inverse=True)
        inter = store.interactions(pids)
        counts = np.asarray(inter.matrix.sum(axis=0)).ravel()
        self.pop_log_ = np.log1p(counts).astype(np.float32)
        self.popular_ = self.track_uris_[np.lexsort((self.track_uris_, -counts))[: max(self.n_popular_candidates, 1)]]

    def _uri_index(self):
        """The training tracks as a ``pandas.Index`` (built once, not saved)."""
        if getattr(self, "_uri_index_", None) is None:
            import pandas as pd

            self._uri_index_ = pd.Index(self.track_uris_.astype(object), dtype=object)
        return self._uri_index_

    # -- features ---------------------------------------------------------------------------------------
    def candidate_set(self, seeds: list[str], title: str | None, feature_weights=None) -> CandidateSet:
        """Candidates of one playlist with their features (seeds excluded)."""
        seed_set = set(seeds)
        # the same tower asked about the last few seeds only (one batched call with the whole playlist): the
        # held-out tracks continue the playlist's end
        recent = len(seeds) > RECENT_SEEDS
        answers = self.two_tower_.candidates_batch([seeds, seeds[-RECENT_SEEDS:]] if recent else [seeds],
                                                   [title, title] if recent else [title], self.n_candidates)
        tt_uris, tt_scores = answers[0]
        pool = dict.fromkeys(tt_uris)
        rs = None
        if self.rules_ is not None and seeds:
            rs = self.rules_.score(seeds, k=self.n_rule_candidates or None) if self.n_rule_candidates else None
            if rs is not None:
                pool.update(dict.fromkeys(rs.uris.tolist()))
        als_scores = None
        if getattr(self, "als_", None) is not None:
            m = self.als_.matrix_
            known_idx = m.known(seeds)
            if len(known_idx):
                als_scores = self.als_.model_.item_factors @ self.als_.fold_in(known_idx)
                als_scores[known_idx] = -np.inf
                top = np.argpartition(-als_scores, min(self.n_rule_candidates, len(als_scores) - 1))
                pool.update(dict.fromkeys(m.uris[top[: self.n_rule_candidates]].tolist()))
        pool.update(dict.fromkeys(u for u in self.popular_.tolist()[: self.n_popular_candidates]))
        uris = np.array([u for u in pool if u not in seed_set], dtype=object)
        n = len(uris)
        cols: dict[str, np.ndarray] = {}

        idx = self.track_index_
        rows = positions(self._uri_index(), uris)
        known = rows >= 0
        cols["pop_log"] = np.where(known, self.pop_log_[np.maximum(rows, 0)], 0.0)
        seed_rows = np.array([idx[s] for s in seeds if s in idx], np.int64)
        ns = max(len(seeds), 1)
        for name, codes in (("same_artist", self.artist_code_), ("same_album", self.album_code_)):
            if len(seed_rows):
                sc, cnt = np.unique(codes[seed_rows], return_counts=True)
                cand = codes[np.maximum(rows, 0)]
                pos = np.clip(np.searchsorted(sc, cand), 0, len(sc) - 1)
                cols[name] = np.where(known & (sc[pos] == cand), cnt[pos], 0) / ns
            else:
                cols[name] = np.zeros(n)
        # the playlist's last seed: people add runs of one artist or album, and the held-out tracks follow it
        last = idx.get(seeds[-1], -1) if seeds else -1
        for name, codes in (("same_artist_last", self.artist_code_), ("same_album_last", self.album_code_)):
            cols[name] = (known & (codes[np.maximum(rows, 0)] == codes[last])).astype(np.float64) if last >= 0 \
                else np.zeros(n)
        cols["n_seeds_log"] = np.full(n, np.log1p(len(seeds)))
        cols["known_share"] = np.full(n, len(seed_rows) / ns if seeds else 0.0)
        cols["has_title"] = np.full(n, 1.0 if title else 0.0)

        if recent:
            r_uris, r_scores = answers[1]
            rp = positions(r_uris, uris)
            cols["tt_recent"] = np.where(rp >= 0, r_scores[np.maximum(rp, 0)] if len(r_scores) else 0.0, np.nan)
        tpos = positions(tt_uris, uris)
        found = tpos >= 0
        top = float(tt_scores[0]) if len(tt_scores) else 0.0
        floor = float(tt_scores[-1]) if len(tt_scores) else 0.0
        cols["tt_score"] = np.where(found, tt_scores[np.maximum(tpos, 0)] if len(tt_scores) else 0.0, floor)
        cols["tt_gap"] = cols["tt_score"] - top
        cols["tt_z"] = _zscore(cols["tt_score"])
        cols["tt_rank_log"] = np.log1p(np.where(found, tpos, len(tt_uris)))
        cols["tt_found"] = found.astype(np.float64)
        cols.setdefault("tt_recent", cols["tt_score"])

        rule_rows = np.full(n, -1, np.int64)
        if "rules" in self.parts_:
            score = np.zeros(n)
            conf = np.zeros(n)
            lift = np.zeros(n)
            rank = np.full(n, np.log1p(self.n_rule_candidates + 1))
            if rs is not None and len(rs):
                p = positions(rs.uris, uris)
                hit = p >= 0
                score[hit] = rs.scores[p[hit]]
                rank[hit] = np.log1p(p[hit])
                rule_rows[hit] = rs.best_rule[p[hit]]
                if hit.any():
                    m = self.rules_.rules.metrics(rule_rows[hit])
                    conf[hit] = m["confidence"]
                    lift[hit] = np.log(np.maximum(m["lift"], 1e-9))
            recent = np.zeros(n)
            if rs is not None and len(rs) and len(seeds) > RECENT_SEEDS:
                rr = self.rules_.score(seeds[-RECENT_SEEDS:])
                p = positions(rr.uris, uris)
                recent[p >= 0] = rr.scores[p[p >= 0]]
            elif rs is not None:
                recent = score
            cols.update(rule_score=score, rule_norm=score / max(len(seed_rows), 1), rule_recent=recent,
                        rule_conf=conf, rule_lift_log=lift, rule_rank_log=rank,
                        rule_found=(rule_rows >= 0).astype(np.float64))
        if "content" in self.parts_:
            sim = self.content_.similarity(seeds, uris.tolist(), feature_weights, title=title)
            cols.update(cont_num=sim["num"], cont_text=sim["text"], cont_combined=sim["combined"],
                        cont_z=_zscore(sim["combined"]))
        if "als" in self.parts_:
            if als_scores is not None:
                m = self.als_.matrix_
                arow = m.positions(uris)
                sc = np.where(arow >= 0, als_scores[np.maximum(arow, 0)], np.nan)
                rank = np.argsort(np.argsort(-np.nan_to_num(sc, nan=-np.inf), kind="stable"), kind="stable")
                cols.update(als_score=sc, als_z=_zscore(sc), als_rank_log=np.log1p(rank.astype(np.float64)))
            else:
                cols.update(als_score=np.full(n, np.nan), als_z=np.full(n, np.nan), als_rank_log=np.full(n, np.nan))
        X = np.column_stack([np.asarray(cols[f], np.float64) for f in self.feature_names_]) if n else \
            np.zeros((0, len(self.feature_names_)))
        return CandidateSet(uris, X, self.feature_names_, rule_rows)

    # -- fusion -----------------------------------------------------------------------------------------
    def _fusion_examples(self, split, store) -> list[tuple[int, bool, list[str], str | None, set[str]]]:
        """(playlist index, official cut?, seeds, title, held-out set) for every cut of every validation playlist.

        The first cut of a playlist is the one ``split_store`` made (reported as validation metrics); the others
        cut the same playlist in other categories it is long enough for, so the fusion sees every kind of
        playlist (title only, 1 seed, 100 random seeds, …) without taking more playlists from the two-tower.
        """
        from modules.challenge import CATEGORIES, cut_playlist

        pls = split.challenge["playlists"]
        entries = store.playlist_tracks
        entries = entries.loc[entries["pid"].isin([p["pid"] for p in pls])].sort_values(["pid", "pos"], kind="stable")
        tracks_of = {int(pid): g["track_uri"].tolist() for pid, g in entries.groupby("pid", sort=False)}
        names = dict(zip(store.playlists["pid"].tolist(), store.playlists["name"].tolist()))
        out = []
        for g, p in enumerate(pls):
            seeds = list(dict.fromkeys(t["track_uri"] for t in p["tracks"]))
            out.append((g, True, seeds, p.get("name"), set(split.truth[str(p["pid"])]["tracks"])))
            full = tracks_of[int(p["pid"])]
            official = split.truth[str(p["pid"])]["category"]
            title = names.get(p["pid"])
            eligible = [c for c in CATEGORIES if c.name != official and len(full) >= c.min_tracks
                        and (not c.title or (isinstance(title, str) and title.strip()))]
            rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), int(p["pid"]), 7]))
            for i in rng.permutation(len(eligible))[: max(self.fusion_cuts - 1, 0)]:
                cat = eligible[int(i)]
                s_pos, h_pos = cut_playlist(len(full), cat, int(p["pid"]) + 1, int(self.seed))
                out.append((g, False, list(dict.fromkeys(full[j] for j in s_pos)), title if cat.title else None,
                            {full[j] for j in h_pos}))
        return out

    def _learn_fusion(self, split, store) -> None:
        pls = split.challenge["playlists"]
        examples = self._fusion_examples(split, store)
        sets, groups, labels, official = [], [], [], []
        for g, is_official, seeds, title, held in tqdm(examples, desc="fusion features", unit="cut",
                                                        disable=not self.show_progress):
            cs = self.candidate_set(seeds, title)
            sets.append(cs)
            labels.append(np.fromiter((u in held for u in cs.uris), bool, len(cs.uris)))
            groups.append(np.full(len(cs.uris), g))
            official.append(is_official)
        X = np.concatenate([s.X for s in sets])
        y = np.concatenate(labels)
        fold = np.concatenate(groups) % 2
        first = {g: i for i, (g, is_official, *_) in enumerate(examples) if is_official}
        artist_of = dict(zip(store.tracks["track_uri"], store.tracks["artist_name"]))
        kinds = ("hgb", "logistic") if self.fusion == "auto" else (self.fusion,)
        results = {}
        for kind in kinds:
            rows = {}
            for f in (0, 1):
                model = _make_fusion(kind, self.seed).fit(X[fold != f], y[fold != f])
                for g in range(f, len(pls), 2):
                    s = sets[first[g]]
                    score = _fusion_score(model, s.X)
                    rows[pls[g]["pid"]] = s.uris[np.lexsort((s.uris, -score))][:500].tolist()
            results[kind] = evaluate(rows, split.truth, artist_of=artist_of).summary()
        tt_rows = {p["pid"]: sets[first[g]].uris[np.lexsort((sets[first[g]].uris,
                                                              -sets[first[g]].column("tt_score")))][:500].tolist()
                   for g, p in enumerate(pls)}
        tt_eval = evaluate(tt_rows, split.truth, artist_of=artist_of).summary()
        best = max(kinds, key=lambda k: results[k]["ALL"]["ndcg"])
        self.fusion_kind_ = best
        self.fusion_ = _make_fusion(best, self.seed).fit(X, y)
        n_held = sum(len(t["tracks"]) for t in split.truth.values())
        found = sum(int(labels[first[g]].sum()) for g in range(len(pls)))
        self.validation_ = {"playlists": len(pls), "cuts": len(examples), "candidates": int(len(y)),
                            "positives": int(y.sum()), "candidate_recall": found / max(n_held, 1),
                            "fusion": {k: v["ALL"] for k, v in results.items()}, "chosen": best,
                            "two_tower_alone": tt_eval["ALL"], "per_category": results[best],
                            "two_tower_per_category": tt_eval}
        log.info("hybrid: fusion %s, validation NDCG %.4f (two-tower alone %.4f) on %d playlists, %d cuts", best,
                 results[best]["ALL"]["ndcg"], tt_eval["ALL"]["ndcg"], len(pls), len(examples))

    def score_candidates(self, cs: CandidateSet) -> np.ndarray:
        """Fused scores of a candidate set (higher is better)."""
        if self.fusion_ is None:
            return cs.column("tt_score")
        return _fusion_score(self.fusion_, cs.X)

    def _recommend(self, seeds, title, k):
        with single_thread_blas():
            cs = self.candidate_set(seeds, title)
            score = self.score_candidates(cs)
        order = np.lexsort((cs.uris, -score))[:k]
        return cs.uris[order].tolist(), score[order]

    # -- persistence ------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> dict:
        """Write the parts and the fusion into the bundle folder ``path``; returns what was written."""
        import joblib

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.two_tower_.save(path)
        written = {"two_tower": "two_tower/"}
        if self.rules_ is not None:
            self.rules_.rules.write(path / "rules.parquet")
            written["rules"] = "rules.parquet"
        if self.content_ is not None:
            self.content_.save(path / "content")
            written["content"] = "content/"
        if getattr(self, "als_", None) is not None:
            joblib.dump(self.als_, path / "als.joblib")
            written["als"] = "als.joblib"
        state = {k: getattr(self, k) for k in ("parts_", "feature_names_", "fusion_kind_", "fusion_", "validation_",
                                                "track_uris_", "artist_code_", "album_code_", "pop_log_",
                                                "popular_", "fallback_", "fit_seconds_")}
        state["params"] = {k: v for k, v in self.get_params().items() if k != "features"}
        joblib.dump(state, path / "fusion.joblib")
        written["fusion"] = "fusion.joblib"
        return written

    @classmethod
    def load(cls, path: str | Path) -> HybridRecommender:
        import joblib

        from modules.content import ContentModel
        from modules.rules import RuleModel
        from modules.two_tower import TwoTowerRecommender

        path = Path(path)
        state = joblib.load(path / "fusion.joblib")
        self = cls(**state.pop("params"))
        for k, v in state.items():
            setattr(self, k, v)
        self.track_index_ = {u: i for i, u in enumerate(self.track_uris_.tolist())}
        self.two_tower_ = TwoTowerRecommender.load(path)
        aggregation = (self.rules or {}).get("aggregation", "sum_confidence")
        self.rules_ = RuleModel.load(path / "rules.parquet", aggregation) if "rules" in self.parts_ else None
        self.content_ = ContentModel.load(path / "content") if "content" in self.parts_ else None
        self.als_ = joblib.load(path / "als.joblib") if "als" in self.parts_ else None
        self.fitted_ = True
        return self

    def get_params(self) -> dict:
        names = ("parts", "n_candidates", "n_rule_candidates", "n_popular_candidates", "validation_per_category",
                 "fusion_cuts", "fusion", "two_tower", "rules", "content", "als", "two_tower_bundle", "features",
                 "seed", "show_progress")
        return {k: getattr(self, k) for k in names}


def _zscore(x: np.ndarray) -> np.ndarray:
    """Standardized within one playlist's candidates (NaN stays NaN), so scales compare across playlists."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    if ok.sum() < 2:
        return np.where(ok, 0.0, np.nan)
    mu, sd = x[ok].mean(), x[ok].std()
    return (x - mu) / (sd if sd > 0 else 1.0)


HGB_DEFAULTS = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 40,
                "l2_regularization": 1.0}


def _make_fusion(kind: str, seed: int, params: dict | None = None):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "hgb":
        return make_pipeline(_EmptyColumnsToZero(), HistGradientBoostingClassifier(
            **{**HGB_DEFAULTS, **(params or {})}, early_stopping=False, random_state=seed))
    if kind == "logistic":
        return make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True),
                             StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    raise HybridError(f"unknown fusion {kind!r}")


class _EmptyColumnsToZero:
    """Columns that were all missing in training (e.g. no audio features anywhere in a reduced MPD subset) become
    zeros, which gradient-boosted trees can bin; other missing values stay NaN (trees learn what NaN means)."""

    def fit(self, X, y=None):
        self.empty_ = np.isnan(X).all(axis=0)
        return self

    def transform(self, X):
        if self.empty_.any():
            X = X.copy()
            X[:, self.empty_] = 0.0
        return X

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self


def _fusion_score(model, X: np.ndarray) -> np.ndarray:
    if len(X) == 0:
        return np.zeros(0)
    return model.predict_proba(X)[:, 1]
