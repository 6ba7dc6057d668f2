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
import orjson
from tqdm import tqdm

from modules import fusion_arrays
from modules.base import PlaylistRecommender, popularity_order, positions, single_thread_native, zscore
from modules.challenge import SplitError, split_store, validation_per_category
from modules.errors import UserError
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
FUSION_FOLDER_FORMAT = "hybrid-fusion/1"  # the bundle's fusion/ folder (save_fusion)


class HybridError(UserError, ValueError):
    """Bad parameters or data for the hybrid recommender."""


@dataclass
class CandidateSet:
    """One playlist's candidates with their features.

    ``uris`` has shape ``[n]``; ``X`` is ``[n, n_features]`` in ``feature_names`` order; ``rule_rows`` is the
    best firing rule per candidate (-1 where none), for explanations; ``ids`` order like the URIs (training
    tracks are numbered in URI order), a cheap tie-break.
    """

    uris: np.ndarray
    X: np.ndarray
    feature_names: tuple[str, ...]
    rule_rows: np.ndarray
    ids: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.X[:, self.feature_names.index(name)]

    def order(self, score: np.ndarray, k: int | None = None) -> np.ndarray:
        """Positions of the ``k`` best candidates by ``score`` (ties by URI), best first."""
        if k is not None and k < len(score):
            # only the candidates that can make the top k (ties at the cut included) are sorted
            cut = np.partition(-score, k - 1)[k - 1]
            keep = np.flatnonzero(-score <= cut)
            return keep[np.lexsort((self.ids[keep], -score[keep]))][:k]
        return np.lexsort((self.ids, -score))[:k]


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
    validation_per_category : int or "auto", default="auto"
        Validation playlists per challenge category carved from the training playlists (halved until the
        data allows it). ``"auto"``: 1.5 % of the training playlists, 10 to 50 per category
        (``modules.challenge.validation_per_category``). The two-tower holds out the same playlists for its
        early stopping.
    fusion_cuts : int, default=4
        Cuts per validation playlist the fusion learns from: the official one plus others in the categories the
        playlist is long enough for (so 10 per category still teaches every kind of playlist).
    audio_taste : bool, default=True
        With the content part: add the playlist's genre-conditional popularity and, per audio feature, how well a
        candidate fits the seeds' sound against what their genres alone would give (``modules.taste``).
    fusion : {"auto", "hgb", "logistic", "logistic_by_length"}, default="auto"
        The fusion model; ``"auto"`` picks by two-fold cross-fitted NDCG on the validation playlists.
        ``"logistic_by_length"`` fits one logistic regression per playlist-length bucket.
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
                 n_popular_candidates: int = 100, validation_per_category: int | str = "auto",
                 fusion_cuts: int = 4, audio_taste: bool = True,
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
        self.audio_taste = audio_taste
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
            if name == "validation_per_category" and v == "auto":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "n_candidates" else 0):
                also = " or 'auto'" if name == "validation_per_category" else ""
                raise HybridError(f"The {name!r} parameter of HybridRecommender must be an int >= "
                                  f"{1 if name == 'n_candidates' else 0}{also}. Got {v!r} instead.")
        if not isinstance(self.audio_taste, bool):
            raise HybridError(f"The 'audio_taste' parameter of HybridRecommender must be True or False. Got "
                              f"{self.audio_taste!r} instead.")
        if self.fusion not in ("auto", *FUSION_KINDS):
            raise HybridError(f"The 'fusion' parameter of HybridRecommender must be 'auto' or one of "
                              f"{list(FUSION_KINDS)}. Got {self.fusion!r} instead.")
        return tuple(p for p in PARTS if p in parts)

    # -- fitting ----------------------------------------------------------------------------------------
    def fit(self, store, pids=None):
        """Fit the parts, learn the fusion on validation playlists carved from ``store`` (``pids``), refit the
        cheap parts (rules, content, ALS) on all training playlists. Returns ``self``."""
        t0 = time.perf_counter()
        all_pids = store.playlists["pid"].to_numpy() if pids is None else np.unique(np.asarray(pids, np.int64))
        split = self.fit_validation_stage(store, all_pids)
        self.validation_, self.blend_ = {}, None
        if split is None:
            log.warning("hybrid: no validation playlists; fusion falls back to the two-tower order")
            self.fusion_kind_, self.fusion_ = "two_tower", None
        else:
            self._learn_fusion(split, store)
        self._fit_tables(store, all_pids)
        self._fit_parts(store, all_pids)
        self.fallback_ = popularity_order(store, all_pids)
        self.fit_seconds_ = time.perf_counter() - t0
        self.fitted_ = True
        return self

    def fit_validation_stage(self, store, all_pids):
        """Carve the validation split, train (or reuse) the two-tower, and fit the other parts on the playlists
        outside the split; returns the split (``None`` when the data is too small for one).

        Every table the fusion's features read comes from the playlists outside the validation split: a held-out
        track must not be "popular" because its own validation playlist counted it."""
        from modules.two_tower import TwoTowerRecommender

        parts = self._check_params()
        split, per_cat = self._validation_split(store, all_pids)
        inner = split.train_pids if split is not None else all_pids
        self.parts_ = parts
        self.feature_names_ = BASE_FEATURES + tuple(f for p in parts for f in PART_FEATURES[p])
        if "content" in parts and self.audio_taste:
            from modules.content import ContentModel
            from modules.taste import AudioTaste

            features = ContentModel(**(self.content or {})).features  # the audio features it will be fitted on
            self.feature_names_ += AudioTaste.feature_names_for(features)
        if self.two_tower_bundle:
            self.two_tower_ = self._pretrained_two_tower(store, inner, per_cat)
        else:
            tt_params = {"seed": self.seed, "show_progress": self.show_progress, **(self.two_tower or {})}
            tt_params.setdefault("validation_per_category", per_cat)
            if self.features is not None:
                tt_params.setdefault("features", self.features)
            log.info("hybrid: training the two-tower on %d playlists", len(all_pids))
            self.two_tower_ = TwoTowerRecommender(**tt_params).fit(store, all_pids)
        if split is not None:
            self._fit_tables(store, inner)
            self._fit_parts(store, inner)
        return split

    def _fit_parts(self, store, pids) -> None:
        """Fit the cheap parts (rules, content, ALS) that are switched on."""
        from modules.content import ContentModel
        from modules.rules import RuleRecommender

        self.rules_ = self.content_ = self.als_ = None
        self._ids_ = self._taste_ = None
        if "rules" in self.parts_:
            self.rules_ = RuleRecommender(**self._rule_params(len(pids))).fit(store, pids).model_
        if "content" in self.parts_:
            self.content_ = ContentModel(**(self.content or {})).fit(self.features, store, pids)
        if "als" in self.parts_:
            from modules.baselines import ALSRecommender

            self.als_ = ALSRecommender(**{"seed": self.seed, **(self.als or {})}).fit(store, pids)

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
        if per_cat == "auto":
            per_cat = validation_per_category(len(np.unique(pids)))
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
        self._ids_ = self._taste_ = None
        _, self.artist_code_ = np.unique(tr["artist_uri"].to_numpy().astype(str), return_inverse=True)
        _, self.album_code_ = np.unique(tr["album_uri"].to_numpy().astype(str), return_inverse=True)
        inter = store.interactions(pids)
        counts = np.asarray(inter.matrix.sum(axis=0)).ravel()
        self.pop_log_ = np.log1p(counts).astype(np.float32)
        self.popular_ = self.track_uris_[np.lexsort((self.track_uris_, -counts))[: max(self.n_popular_candidates, 1)]]

    def _audio_taste(self):
        """``modules.taste.AudioTaste`` tables from the content model and the training counts (built once)."""
        taste = getattr(self, "_taste_", None)
        if taste is None:
            from modules.taste import AudioTaste

            ids = self._ids()
            counts = np.zeros(len(self.content_.uris_))
            rows = ids.content[: ids.n_known]
            counts[rows[rows >= 0]] = np.expm1(self.pop_log_.astype(np.float64))[rows >= 0]
            taste = self._taste_ = AudioTaste.build(self.content_, counts)
        return taste

    def _ids(self) -> _IdMaps:
        """Integer maps between the parts' own track orders and one id space (built once per fitted state)."""
        ids = getattr(self, "_ids_", None)
        if ids is None:
            ids = self._ids_ = _IdMaps.build(self)
        return ids

    def unknown(self, uris) -> list[str]:
        """The URIs that are not training tracks (they add nothing as seeds)."""
        uris, ids = list(uris), self._ids()
        return [u for u, i in zip(uris, ids.of(uris).tolist()) if not 0 <= i < ids.n_known]

    # -- features ---------------------------------------------------------------------------------------
    def retrieve(self, queries: list[tuple[list[str], str | None]]) -> list[tuple]:
        """The whole-catalog scans of several playlists at once: the two-tower's top ``n_candidates`` (for the
        whole playlist and, when it is long, its last seeds) and the ALS scores of every track.

        Both scans read every track's factors (13 and 26 MB on the demo bundle): under load one pass over them
        serves a batch. A playlist's answer is bit-identical alone or in any batch (``modules.scan``)."""
        tt_seeds, tt_titles, at = [], [], []
        for seeds, title in queries:
            at.append(len(tt_seeds))
            tt_seeds.append(seeds)
            tt_titles.append(title)
            if len(seeds) > RECENT_SEEDS:  # the held-out tracks continue the playlist's end
                tt_seeds.append(seeds[-RECENT_SEEDS:])
                tt_titles.append(title)
        answers = self.two_tower_.top_batch(tt_seeds, tt_titles, self.n_candidates)
        als: list[np.ndarray | None] = [None] * len(queries)
        if getattr(self, "als_", None) is not None:
            known = [self.als_.matrix_.known(seeds) for seeds, _ in queries]
            have = [i for i, k in enumerate(known) if len(k)]
            if have:
                scores = self.als_.scan([known[i] for i in have])
                for j, i in enumerate(have):
                    als[i] = scores[j]
                    als[i][known[i]] = -np.inf
        return [(answers[a], answers[a + 1] if len(seeds) > RECENT_SEEDS else None, als_scores)
                for a, (seeds, _), als_scores in zip(at, queries, als, strict=True)]

    def candidate_set(self, seeds: list[str], title: str | None, feature_weights=None,
                      retrieved: tuple | None = None) -> CandidateSet:
        """Candidates of one playlist with their features (seeds excluded); ``retrieved`` is the playlist's
        ``retrieve`` answer when it was computed with others.

        Every part's candidates are integer ids of one id space (``_IdMaps``), so the pool is built and each
        feature column filled by array indexing; URIs are looked up once, for the seeds."""
        ids = self._ids()
        n_known = ids.n_known
        seed_g = ids.of(seeds)
        whole, ending, als_scores = retrieved if retrieved is not None else self.retrieve([(seeds, title)])[0]
        recent = ending is not None
        tt_top, tt_scores = whole
        tt_g = ids.tt[tt_top]
        sources = [tt_g]
        rs = None
        if self.rules_ is not None and seeds and self.n_rule_candidates:
            rs = self.rules_.score(seeds, k=self.n_rule_candidates)
            sources.append(ids.rules[rs.ids])
        if als_scores is not None:
            n_als = min(self.n_rule_candidates, len(als_scores))
            if n_als:
                top = np.argpartition(als_scores, len(als_scores) - n_als)[len(als_scores) - n_als:]
                sources.append(ids.als[top])
        sources.append(ids.popular[: self.n_popular_candidates])
        pool = np.concatenate(sources)
        _, first = np.unique(pool, return_index=True)
        pool = pool[np.sort(first)]
        pool = pool[~np.isin(pool, seed_g)]
        uris = ids.uris[pool]
        n = len(pool)
        slot = np.full(len(ids.uris), -1, np.int64)
        slot[pool] = np.arange(n)

        def place(gids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """(rows of the pool these ids fill, which of the ids are in the pool)."""
            p = slot[gids]
            return p[p >= 0], p >= 0

        cols: dict[str, np.ndarray] = {}
        known = pool < n_known
        rows = np.where(known, pool, 0)
        cols["pop_log"] = np.where(known, self.pop_log_[rows], 0.0)
        seed_rows = seed_g[(seed_g >= 0) & (seed_g < n_known)]
        ns = max(len(seeds), 1)
        for name, codes in (("same_artist", self.artist_code_), ("same_album", self.album_code_)):
            if len(seed_rows):
                sc, cnt = np.unique(codes[seed_rows], return_counts=True)
                cand = codes[rows]
                pos = np.clip(np.searchsorted(sc, cand), 0, len(sc) - 1)
                cols[name] = np.where(known & (sc[pos] == cand), cnt[pos], 0) / ns
            else:
                cols[name] = np.zeros(n)
        # the playlist's last seed: people add runs of one artist or album, and the held-out tracks follow it
        last = int(seed_g[-1]) if len(seeds) and 0 <= seed_g[-1] < n_known else -1
        for name, codes in (("same_artist_last", self.artist_code_), ("same_album_last", self.album_code_)):
            cols[name] = (known & (codes[rows] == codes[last])).astype(np.float64) if last >= 0 else np.zeros(n)
        cols["n_seeds_log"] = np.full(n, np.log1p(len(seeds)))
        cols["known_share"] = np.full(n, len(seed_rows) / ns if seeds else 0.0)
        cols["has_title"] = np.full(n, 1.0 if title else 0.0)

        floor = float(tt_scores[-1]) if len(tt_scores) else 0.0
        tt_score = np.full(n, floor, np.float64)
        tpos = np.full(n, len(tt_g), np.int64)
        at, ok = place(tt_g)
        tt_score[at] = tt_scores[ok]
        tpos[at] = np.flatnonzero(ok)
        found = tpos < len(tt_g)
        cols["tt_score"] = tt_score
        cols["tt_gap"] = tt_score - (float(tt_scores[0]) if len(tt_scores) else 0.0)
        cols["tt_z"] = zscore(tt_score)
        cols["tt_rank_log"] = np.log1p(tpos)
        cols["tt_found"] = found.astype(np.float64)
        if recent:
            r_top, r_scores = ending
            tt_recent = np.full(n, np.nan)
            at, ok = place(ids.tt[r_top])
            tt_recent[at] = r_scores[ok]
            cols["tt_recent"] = tt_recent
        else:
            cols["tt_recent"] = tt_score

        rule_rows = np.full(n, -1, np.int64)
        if "rules" in self.parts_:
            score = np.zeros(n)
            conf = np.zeros(n)
            lift = np.zeros(n)
            rank = np.full(n, np.log1p(self.n_rule_candidates + 1))
            if rs is not None and len(rs):
                at, ok = place(ids.rules[rs.ids])
                score[at] = rs.scores[ok]
                rank[at] = np.log1p(np.flatnonzero(ok))
                rule_rows[at] = rs.best_rule[ok]
                if len(at):
                    m = self.rules_.rules.metrics(rule_rows[at])
                    conf[at] = m["confidence"]
                    lift[at] = np.log(np.maximum(m["lift"], 1e-9))
            rule_recent = np.zeros(n)
            if rs is not None and len(rs) and len(seeds) > RECENT_SEEDS:
                rr = self.rules_.score(seeds[-RECENT_SEEDS:])
                at, ok = place(ids.rules[rr.ids])
                rule_recent[at] = rr.scores[ok]
            elif rs is not None:
                rule_recent = score
            cols.update(rule_score=score, rule_norm=score / max(len(seed_rows), 1), rule_recent=rule_recent,
                        rule_conf=conf, rule_lift_log=lift, rule_rank_log=rank,
                        rule_found=(rule_rows >= 0).astype(np.float64))
        if "content" in self.parts_:
            sim = self.content_.similarity(seeds, (), feature_weights, title=title, candidate_rows=ids.content[pool])
            cols.update(cont_num=sim["num"], cont_text=sim["text"], cont_combined=sim["combined"],
                        cont_z=zscore(sim["combined"]))
            if "taste" in self.feature_names_:
                cols.update(self._audio_taste().features(self.content_.rows_of(seeds), ids.content[pool]))
        if "als" in self.parts_:
            if als_scores is not None:
                arow = ids.als_row[pool]
                sc = np.where(arow >= 0, als_scores[np.maximum(arow, 0)], np.nan)
                rank = np.argsort(np.argsort(-np.nan_to_num(sc, nan=-np.inf), kind="stable"), kind="stable")
                cols.update(als_score=sc, als_z=zscore(sc), als_rank_log=np.log1p(rank.astype(np.float64)))
            else:
                cols.update(als_score=np.full(n, np.nan), als_z=np.full(n, np.nan), als_rank_log=np.full(n, np.nan))
        X = np.column_stack([np.asarray(cols[f], np.float64) for f in self.feature_names_]) if n else \
            np.zeros((0, len(self.feature_names_)))
        return CandidateSet(uris, X, self.feature_names_, rule_rows, pool)

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

    def fusion_data(self, split, store) -> dict:
        """Candidate sets, labels and cross-fitting folds of every validation cut (the fusion's training data)."""
        examples = self._fusion_examples(split, store)
        sets, groups, labels = [], [], []
        for g, _official, seeds, title, held in tqdm(examples, desc="fusion features", unit="cut",
                                                     disable=not self.show_progress):
            cs = self.candidate_set(seeds, title)
            sets.append(cs)
            labels.append(np.fromiter((u in held for u in cs.uris), bool, len(cs.uris)))
            groups.append(np.full(len(cs.uris), g))
        X = np.concatenate([s.X for s in sets])
        start = 0
        for cs in sets:  # each set's rows become a view of X: one copy of the features, not two
            cs.X = X[start:start + len(cs.X)]
            start += len(cs.X)
        return {"examples": examples, "sets": sets, "labels": labels, "X": X,
                "y": np.concatenate(labels), "fold": np.concatenate(groups) % 2,
                "first": {g: i for i, (g, is_official, *_) in enumerate(examples) if is_official},
                "artist_of": dict(zip(store.tracks["track_uri"], store.tracks["artist_name"]))}

    def _new_fusion(self, kind: str, params: dict | None = None):
        return _make_fusion(kind, self.seed, params, self.feature_names_.index("n_seeds_log"))

    def cross_fitted_scores(self, data: dict, kind: str, params: dict | None = None) -> list[np.ndarray]:
        """Fusion ``kind``'s score of every validation cut, each from a model fitted on the other fold's playlists."""
        X, y, fold, sets = data["X"], data["y"], data["fold"], data["sets"]
        out: list[np.ndarray] = [np.zeros(0)] * len(sets)
        for f in (0, 1):
            tr = fold != f
            model = self._new_fusion(kind, params).fit(X[tr], y[tr])
            for i, (g, *_rest) in enumerate(data["examples"]):
                if g % 2 == f:
                    out[i] = _fusion_score(model, sets[i].X)
        return out

    def score_cuts(self, data: dict, split, scores: list[np.ndarray]) -> dict:
        """Metrics of per-cut ``scores`` (e.g. ``cross_fitted_scores``): per category on the official cuts, and
        ``"ALL_CUTS"`` (mean NDCG / R-precision over every cut, four times the examples, so less noisy) which
        ``fit`` chooses by."""
        from modules.metrics import score_playlist

        pls = split.challenge["playlists"]
        sets, first = data["sets"], data["first"]
        rows, per_cut = {}, []
        for i, (g, _official, _seeds, _title, held) in enumerate(data["examples"]):
            top = sets[i].uris[sets[i].order(scores[i], 500)].tolist()
            per_cut.append(score_playlist(top, list(held)))
            if first[g] == i:
                rows[pls[g]["pid"]] = top
        summary = evaluate(rows, split.truth, artist_of=data["artist_of"]).summary()
        summary["ALL_CUTS"] = {m: float(np.mean([c[m] for c in per_cut])) for m in ("ndcg", "r_precision")}
        summary["ALL_CUTS"]["count"] = len(per_cut)
        summary[PER_CUT] = np.array([c["ndcg"] for c in per_cut])
        return summary

    def choose_blend(self, data: dict, scores: list[np.ndarray], objective: tuple[str, ...] | None = None,
                     bucket: np.ndarray | None = None) -> tuple[dict, list[np.ndarray]]:
        """Per playlist-length bucket, the weights ``(a, c)`` of ``z(logit fusion) + a·ALS z + c·two-tower z`` with
        the best mean ``objective`` (the sum of those metrics; default ``BLEND_OBJECTIVE``) over the validation
        cuts (``BLEND_GRID``; the fusion scores are cross-fitted). Returns the weights chosen on all cuts, and
        blended scores whose weights were chosen on the *other* fold (an honest estimate of what the blend adds).
        ``bucket`` (one id per validation cut) replaces the length buckets, for experiments."""
        from modules.metrics import score_playlist

        sets, examples = data["sets"], data["examples"]
        objective = objective or BLEND_OBJECTIVE
        a_grid = BLEND_GRID if "als" in self.parts_ else (0.0,)
        combos = [(a, c) for a in a_grid for c in BLEND_GRID]
        ndcg = np.zeros((len(sets), len(combos)))  # the objective per cut and weights
        for i, (_g, _official, _seeds, _title, held) in enumerate(examples):
            for j, (a, c) in enumerate(combos):
                top = sets[i].uris[sets[i].order(_blend(scores[i], sets[i], a, c), 500)].tolist()
                got = score_playlist(top, list(held))
                ndcg[i, j] = sum(got[m] for m in objective)
        if bucket is None:
            bucket = _length_bucket([len(e[2]) for e in examples])
        fold = np.array([e[0] % 2 for e in examples])

        def pick(rows):
            return {int(b): combos[int(np.argmax(ndcg[rows & (bucket == b)].mean(axis=0)))]
                    for b in np.unique(bucket[rows]).tolist()}

        chosen = pick(np.ones(len(sets), bool))
        honest = list(scores)
        for f in (0, 1):
            other = pick(fold != f)
            for i in np.flatnonzero(fold == f):
                a, c = other.get(int(bucket[i]), (0.0, 0.0))
                honest[i] = _blend(scores[i], sets[i], a, c)
        return chosen, honest

    def _learn_fusion(self, split, store) -> None:
        pls = split.challenge["playlists"]
        data = self.fusion_data(split, store)
        sets, labels, first, y = data["sets"], data["labels"], data["first"], data["y"]
        kinds = FUSION_KINDS if self.fusion == "auto" else (self.fusion,)
        results, blends, blend_evals = {}, {}, {}
        for kind in kinds:
            scores = self.cross_fitted_scores(data, kind)
            results[kind] = self.score_cuts(data, split, scores)
            blends[kind], blended = self.choose_blend(data, scores)
            blend_evals[kind] = self.score_cuts(data, split, blended)
        tt_eval = self.score_cuts(data, split, [s.column("tt_score") for s in sets])
        # what is served is the blend, so the blend's honest estimate decides
        best, choice = _choose_fusion_kind(blend_evals, [e[0] for e in data["examples"]])
        self.fusion_kind_ = best
        self.fusion_ = self._new_fusion(best).fit(data["X"], y)
        self.blend_, blend_eval = blends[best], blend_evals[best]
        n_held = sum(len(t["tracks"]) for t in split.truth.values())
        found = sum(int(labels[first[g]].sum()) for g in range(len(pls)))

        def per_category(summary):
            return {k: v for k, v in summary.items() if k not in ("ALL_CUTS", PER_CUT)}

        self.validation_ = {"playlists": len(pls), "cuts": len(data["examples"]), "candidates": int(len(y)),
                            "positives": int(y.sum()), "candidate_recall": found / max(n_held, 1),
                            "fusion": {k: v["ALL"] for k, v in results.items()},
                            "fusion_all_cuts": {k: v["ALL_CUTS"] for k, v in results.items()}, "chosen": best,
                            "choice": choice,
                            "blend": {"weights": {str(b): list(w) for b, w in self.blend_.items()},
                                      "official": blend_eval["ALL"], "all_cuts": blend_eval["ALL_CUTS"],
                                      "all_cuts_by_fusion": {k: v["ALL_CUTS"] for k, v in blend_evals.items()}},
                            "two_tower_alone": tt_eval["ALL"], "two_tower_alone_all_cuts": tt_eval["ALL_CUTS"],
                            "per_category": per_category(blend_eval),
                            "two_tower_per_category": per_category(tt_eval)}
        log.info("hybrid: fusion %s, validation NDCG %.4f over %d cuts, %.4f blended (%.4f on the official cuts; "
                 "two-tower alone %.4f)", best, results[best]["ALL_CUTS"]["ndcg"], len(data["examples"]),
                 blend_eval["ALL_CUTS"]["ndcg"], blend_eval["ALL"]["ndcg"], tt_eval["ALL"]["ndcg"])

    def score_candidates(self, cs: CandidateSet) -> np.ndarray:
        """Fused scores of a candidate set (higher is better): the fusion, blended with the ALS and two-tower
        z-scores by the weights ``fit`` chose for the playlist's length."""
        if self.fusion_ is None:
            return cs.column("tt_score")
        p = _fusion_score(self.fusion_, cs.X)
        blend = getattr(self, "blend_", None)
        if not blend or len(p) == 0:
            return p
        bucket = int(_length_bucket(_n_seeds(cs.X[:1], cs.feature_names.index("n_seeds_log"))[0]))
        a, c = blend.get(bucket, (0.0, 0.0))
        return _blend(p, cs, a, c)

    def _recommend(self, seeds, title, k):
        with single_thread_native():
            cs = self.candidate_set(seeds, title)
            score = self.score_candidates(cs)
        order = cs.order(score, k)
        return cs.uris[order].tolist(), score[order]

    # -- persistence ------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> dict:
        """Write the parts and the fusion into the bundle folder ``path``; returns what was written (part →
        file). Nothing written is a pickle (docs/bundle.md lists each file and its format)."""
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
            self.als_.save(path / "als")
            written["als"] = "als/"
        self.save_fusion(path / "fusion")
        written["fusion"] = "fusion/"
        return written

    def save_fusion(self, path: str | Path) -> Path:
        """Write the fusion model and the hybrid's own tables to folder ``path``: ``state.json`` (parameters,
        feature names, fusion kind and its JSON description, blend weights, validation metrics), ``fusion.npz``
        (the fusion's numbers), ``tracks.parquet`` (per training track: URI, artist and album codes, log
        popularity) and ``fallback.parquet`` (the popularity order)."""
        import pandas as pd

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        spec, arrays = (None, {}) if self.fusion_ is None else _fusion_to_arrays(self.fusion_)
        blend = getattr(self, "blend_", None)
        params = {k: v for k, v in self.get_params().items() if k != "features"}
        state = {"format": FUSION_FOLDER_FORMAT, "params": params,
                 "parts": list(self.parts_), "feature_names": list(self.feature_names_),
                 "fusion_kind": self.fusion_kind_, "fusion": spec,
                 "blend": None if blend is None else [[int(b), float(a), float(c)] for b, (a, c) in blend.items()],
                 "validation": self.validation_, "fit_seconds": getattr(self, "fit_seconds_", None),
                 "popular": [str(u) for u in self.popular_]}
        (path / "state.json").write_bytes(orjson.dumps(state, default=_json_default,
                                                       option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        np.savez(path / "fusion.npz", **arrays)
        pd.DataFrame({"track_uri": np.asarray(self.track_uris_, dtype=object),
                      "artist_code": np.asarray(self.artist_code_, np.int64),
                      "album_code": np.asarray(self.album_code_, np.int64),
                      "pop_log": np.asarray(self.pop_log_, np.float32)}).to_parquet(path / "tracks.parquet",
                                                                                    index=False)
        pd.DataFrame({"track_uri": [str(u) for u in self.fallback_]}).to_parquet(path / "fallback.parquet",
                                                                                  index=False)
        return path

    @classmethod
    def load(cls, path: str | Path) -> HybridRecommender:
        """A hybrid from a bundle folder written by ``save``. Reads JSON, Parquet, ``.npz`` arrays (no pickles:
        ``allow_pickle=False``) and the two-tower's TensorFlow checkpoint; nothing it reads can run code."""
        from modules.content import ContentModel
        from modules.rules import RuleModel
        from modules.two_tower import TwoTowerRecommender

        path = Path(path)
        self = cls._load_fusion(path / "fusion")
        self.two_tower_ = TwoTowerRecommender.load(path)
        aggregation = (self.rules or {}).get("aggregation", "sum_confidence")
        self.rules_ = RuleModel.load(path / "rules.parquet", aggregation) if "rules" in self.parts_ else None
        self.content_ = ContentModel.load(path / "content") if "content" in self.parts_ else None
        if "als" in self.parts_:
            from modules.baselines import ALSRecommender

            self.als_ = ALSRecommender.load(path / "als")
        else:
            self.als_ = None
        self.fitted_ = True
        return self

    @classmethod
    def _load_fusion(cls, path: Path) -> HybridRecommender:
        """The hybrid's parameters, fusion and tables from the folder ``save_fusion`` wrote."""
        import pandas as pd

        if not (path / "state.json").exists():
            raise FileNotFoundError(f"no {path / 'state.json'}")
        state = orjson.loads((path / "state.json").read_bytes())
        if state.get("format") != FUSION_FOLDER_FORMAT:
            raise HybridError(f"{path} holds fusion format {state.get('format')!r}; this version reads "
                              f"{FUSION_FOLDER_FORMAT!r}. Retrain the bundle with python -m modules train.")
        params = dict(state["params"])
        params["parts"] = tuple(params["parts"])
        self = cls(**params)
        self.parts_ = tuple(state["parts"])
        self.feature_names_ = tuple(state["feature_names"])
        self.fusion_kind_ = state["fusion_kind"]
        try:
            with np.load(path / "fusion.npz", allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except ValueError as err:  # e.g. an array of Python objects, which only the pickle loader reads
            raise HybridError(f"{path / 'fusion.npz'} holds more than numbers ({err}); it was not written by this "
                              "package: retrain the bundle.") from None
        self.fusion_ = None if state["fusion"] is None else _fusion_from_arrays(state["fusion"], arrays)
        width = _n_features(state["fusion"])
        if width is not None and width != len(self.feature_names_):
            raise HybridError(f"{path}: the fusion reads {width} features but state.json names "
                              f"{len(self.feature_names_)}; the folder is damaged: retrain or copy the bundle again.")
        self.blend_ = None if state["blend"] is None else {int(b): (float(a), float(c)) for b, a, c in state["blend"]}
        self.validation_ = state["validation"]
        self.fit_seconds_ = state["fit_seconds"]
        tracks = pd.read_parquet(path / "tracks.parquet")
        self.track_uris_ = tracks["track_uri"].to_numpy().astype(str)
        self.artist_code_ = tracks["artist_code"].to_numpy(np.int64)
        self.album_code_ = tracks["album_code"].to_numpy(np.int64)
        self.pop_log_ = tracks["pop_log"].to_numpy(np.float32)
        self.popular_ = np.array(state["popular"], dtype=str)
        self.fallback_ = [str(u) for u in pd.read_parquet(path / "fallback.parquet")["track_uri"]]
        self._ids_ = self._taste_ = None
        return self

    def get_params(self) -> dict:
        names = ("parts", "n_candidates", "n_rule_candidates", "n_popular_candidates", "validation_per_category",
                 "fusion_cuts", "audio_taste", "fusion", "two_tower", "rules", "content", "als", "two_tower_bundle",
                 "features", "seed", "show_progress")
        return {k: getattr(self, k) for k in names}


@dataclass
class _IdMaps:
    """One integer id space for the candidates: the training tracks first (``id < n_known``, the rows of the
    hybrid's per-track tables), then any track a part knows that the training tracks do not. Each part's own
    order maps into it (``tt``, ``rules``, ``als``, ``popular``) and back (``als_row``, ``content``: -1 where the
    part does not know the track)."""

    uris: np.ndarray
    n_known: int
    index: object
    tt: np.ndarray
    rules: np.ndarray
    als: np.ndarray
    popular: np.ndarray
    als_row: np.ndarray
    content: np.ndarray

    @classmethod
    def build(cls, h: HybridRecommender) -> _IdMaps:
        import pandas as pd

        uris = np.asarray(h.track_uris_, dtype=object)
        n_known = len(uris)
        lists = {"tt": h.two_tower_.candidate_uris_,
                 "rules": h.rules_.rules.track_uris if h.rules_ is not None else np.zeros(0, object),
                 "als": h.als_.matrix_.uris if getattr(h, "als_", None) is not None else np.zeros(0, object),
                 "popular": h.popular_}
        index = pd.Index(uris, dtype=object)
        for key in ("tt", "rules", "als"):
            extra = np.asarray(lists[key], dtype=object)
            extra = extra[index.get_indexer(extra) < 0]
            if len(extra):
                uris = np.concatenate([uris, pd.unique(extra)])
                index = pd.Index(uris, dtype=object)
        maps = {k: positions(index, np.asarray(v, dtype=object)) for k, v in lists.items()}
        als_row = np.full(len(uris), -1, np.int64)
        als_row[maps["als"]] = np.arange(len(maps["als"]))
        content = h.content_.rows_of(uris) if h.content_ is not None else np.full(len(uris), -1, np.int64)
        return cls(uris, n_known, index, als_row=als_row, content=content, **maps)

    def of(self, uris) -> np.ndarray:
        """Ids of URIs (-1 when unknown to every part)."""
        return positions(self.index, np.asarray(list(uris), dtype=object))


# the blend's weights and the playlist lengths (seeds) they may change at: 0 | 1–4 | 5–9 | 10–24 | 25–99 | 100+
BLEND_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
BLEND_OBJECTIVE = ("ndcg",)  # what the blend weights maximize on the validation cuts
BLEND_BUCKETS = (1, 5, 10, 25, 100)
ALS_UNKNOWN_Z = -10.0  # a candidate ALS cannot score ranks last on the ALS side


def _length_bucket(n_seeds, edges=BLEND_BUCKETS):
    """Bucket of a playlist length (number of seeds): 0 below ``edges[0]``, then one per edge passed."""
    return np.searchsorted(np.asarray(edges), n_seeds, side="right")


def _n_seeds(X: np.ndarray, n_seeds_col: int) -> np.ndarray:
    """Seeds per candidate row, back from the ``n_seeds_log`` feature."""
    return np.rint(np.expm1(X[:, n_seeds_col]))


def _blend(fused: np.ndarray, cs: CandidateSet, a: float, c: float) -> np.ndarray:
    """``z(logit fused) + a·ALS z + c·two-tower z`` within one playlist's candidates."""
    p = np.clip(np.asarray(fused, np.float64), 1e-12, 1 - 1e-12)
    out = zscore(np.log(p) - np.log1p(-p))
    if a and "als_z" in cs.feature_names:
        out = out + a * np.nan_to_num(cs.column("als_z"), nan=ALS_UNKNOWN_Z)
    if c:
        out = out + c * cs.column("tt_z")
    return out


HGB_DEFAULTS = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 40,
                "l2_regularization": 1.0}


FUSION_KINDS = ("hgb", "logistic", "logistic_by_length")
# fusion kinds that are a dot product per candidate; the trees cost about 100 tree walks per candidate
LINEAR_FUSIONS = ("logistic", "logistic_by_length")
PER_CUT = "PER_CUT"  # score_cuts' key for the NDCG of every cut (not a category)


def _choose_fusion_kind(evals: dict, playlist_of_cut) -> tuple[str, dict]:
    """The fusion kind to serve, from each kind's blended validation scores (``score_cuts``).

    The best linear kind, unless the gradient-boosted trees beat it by more than one standard error of the
    paired difference (per validation playlist, since a playlist's cuts are not independent): the trees cost
    several times more per query and fit noise more easily, so a tie goes to the linear fusion (the
    "one-standard-error rule")."""
    mean = {k: v["ALL_CUTS"]["ndcg"] for k, v in evals.items()}
    linear = [k for k in evals if k in LINEAR_FUSIONS]
    if "hgb" not in evals or not linear:
        best = max(evals, key=mean.get)
        return best, {"rule": "best mean NDCG over the validation cuts"}
    best_linear = max(linear, key=mean.get)
    diff = evals["hgb"][PER_CUT] - evals[best_linear][PER_CUT]
    groups = np.asarray(playlist_of_cut)
    _, inverse = np.unique(groups, return_inverse=True)
    per_playlist = np.bincount(inverse, diff) / np.bincount(inverse)
    se = float(per_playlist.std(ddof=1) / np.sqrt(len(per_playlist))) if len(per_playlist) > 1 else float("inf")
    gain = float(diff.mean())
    best = "hgb" if gain > se else best_linear
    return best, {"rule": "trees only when they beat the best linear fusion by more than one standard error",
                  "best_linear": best_linear, "trees_gain": gain, "standard_error": se,
                  "playlists": int(len(per_playlist))}
# playlist lengths (seeds) where the fusion's weights change: title only | seeded (finer buckets, e.g. (1, 10),
# validated no better on the 20k world: benchmarks/results/fusion-kinds/world-20000.json)
LENGTH_BUCKETS = (1,)


def _make_fusion(kind: str, seed: int, params: dict | None = None, n_seeds_col: int | None = None):
    if kind == "logistic_by_length":
        if n_seeds_col is None:
            raise HybridError("the 'logistic_by_length' fusion needs the n_seeds_log column")
        params = dict(params or {})
        buckets = tuple(params.pop("buckets", LENGTH_BUCKETS))
        return _FusionByLength("logistic", seed, n_seeds_col, buckets, params)
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
                             StandardScaler(), LogisticRegression(**{"C": 1.0, "max_iter": 2000, **(params or {})}))
    raise HybridError(f"unknown fusion {kind!r}")


class _FusionByLength:
    """One fusion model per playlist-length bucket (``LENGTH_BUCKETS``), plus a pooled one for buckets with too
    few positives. A single linear model must weigh ALS the same for a title-only playlist and a 100-seed one;
    per bucket it need not (ALS is strong with many seeds, the title tower with none)."""

    def __init__(self, kind: str, seed: int, n_seeds_col: int, buckets=LENGTH_BUCKETS, params: dict | None = None,
                 min_positives: int = 50):
        self.kind, self.seed, self.n_seeds_col, self.buckets = kind, seed, n_seeds_col, tuple(buckets)
        self.params, self.min_positives = params, min_positives

    def _bucket(self, X: np.ndarray) -> np.ndarray:
        return _length_bucket(_n_seeds(X, self.n_seeds_col), self.buckets)

    def fit(self, X, y):
        y = np.asarray(y, bool)
        self.pooled_ = _make_fusion(self.kind, self.seed, self.params).fit(X, y)
        bucket = self._bucket(X)
        self.models_ = {}
        for b in np.unique(bucket).tolist():
            sel = bucket == b
            if y[sel].sum() >= self.min_positives and (~y[sel]).any():
                self.models_[b] = _make_fusion(self.kind, self.seed, self.params).fit(X[sel], y[sel])
        return self

    def positive_proba(self, X) -> np.ndarray:
        """Each row's probability of the positive class, from its bucket's model (the pooled one otherwise)."""
        if not self.models_:
            return _fusion_score(self.pooled_, X)
        bucket = self._bucket(X)
        out = np.empty(len(X))
        pooled = ~np.isin(bucket, list(self.models_))
        if pooled.any():
            out[pooled] = _fusion_score(self.pooled_, X[pooled])
        for b, model in self.models_.items():
            sel = bucket == b
            if sel.any():
                out[sel] = _fusion_score(model, X[sel])
        return out

    def predict_proba(self, X):
        p = self.positive_proba(X)
        return np.column_stack([1.0 - p, p])

    def to_arrays(self, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
        """``(spec, arrays)``: the bucketing as JSON, the pooled model and each bucket's as arrays."""
        spec, arrays = _fusion_to_arrays(self.pooled_, f"{prefix}pooled_")
        out = {"type": "by_length", "kind": self.kind, "seed": int(self.seed), "n_seeds_col": int(self.n_seeds_col),
               "buckets": [int(b) for b in self.buckets], "params": self.params,
               "min_positives": int(self.min_positives), "pooled": spec, "models": {}}
        for b, model in self.models_.items():
            out["models"][str(int(b))], more = _fusion_to_arrays(model, f"{prefix}bucket{int(b)}_")
            arrays.update(more)
        return out, arrays

    @classmethod
    def from_arrays(cls, spec: dict, arrays, prefix: str = "") -> _FusionByLength:
        self = cls(spec["kind"], int(spec["seed"]), int(spec["n_seeds_col"]), tuple(spec["buckets"]), spec["params"],
                   int(spec["min_positives"]))
        self.pooled_ = _fusion_from_arrays(spec["pooled"], arrays, f"{prefix}pooled_")
        self.models_ = {int(b): _fusion_from_arrays(sub, arrays, f"{prefix}bucket{int(b)}_")
                        for b, sub in spec["models"].items()}
        return self


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
    """The fusion's probability that each candidate row is a held-out track.

    The fitted pipelines score through their array form (``modules.fusion_arrays``: the pipeline's numbers, bit for
    bit), the form a bundle stores, so a loaded bundle answers exactly as the model that was fitted; the logistic
    form is also one matrix-vector product where the pipeline re-validated its input at every step."""
    if len(X) == 0:
        return np.zeros(0)
    if isinstance(model, _FusionByLength):
        return model.positive_proba(X)
    predictor = fusion_arrays.as_predictor(model)
    if predictor is not None:
        return predictor.positive_proba(X)
    return model.predict_proba(X)[:, 1]


def _fusion_to_arrays(model, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
    """``(spec, arrays)`` of a fitted fusion (``modules.fusion_arrays``), the per-length kind included."""
    if isinstance(model, _FusionByLength):
        return model.to_arrays(prefix)
    return fusion_arrays.to_arrays(model, prefix)


def _fusion_from_arrays(spec: dict, arrays, prefix: str = ""):
    if isinstance(spec, dict) and spec.get("type") == "by_length":
        return _FusionByLength.from_arrays(spec, arrays, prefix)
    return fusion_arrays.from_arrays(spec, arrays, prefix)


def _n_features(spec) -> int | None:
    """Features a fusion spec reads (``None`` for no fusion)."""
    if not isinstance(spec, dict):
        return None
    if spec.get("type") == "by_length":
        return _n_features(spec.get("pooled"))
    return spec.get("n_features")


def _json_default(value):
    import os

    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to state.json")
