"""implicit's ALS as a source: the playlist folded in from its seeds scores every track.

Its top ``n_rule_candidates`` join the pool (ALS and the two-tower miss different tracks), and its score, z-score
and log rank among the candidates are features; a candidate ALS does not know gets NaN (the blend reads it as
``ALS_UNKNOWN_Z``). The model itself is ``modules.baselines.ALSRecommender``.
"""

from __future__ import annotations

import numpy as np

from modules.base import zscore
from modules.bundle import PART_ENTRIES, Bundle
from modules.hybrid.sources.base import NO_IDS, Candidates, CandidateSource, Query, Retrieved


def fit_als(store, pids, params: dict | None, seed: int):
    """The ALS part; ``params["engine"] == "spark"`` (``train --engine spark``) fits its factors with MLlib
    (``modules.spark.als``, the same ``als-arrays/1`` part), on the running Spark session."""
    from modules.baselines import ALSRecommender

    params = {"seed": seed, **(params or {})}
    if params.pop("engine", "local") == "spark":
        from modules.spark.als import SparkALSRecommender as ALSRecommender
    return ALSRecommender(**params).fit(store, pids)


def save_als(model, bundle) -> str:
    model.save(Bundle(bundle).als_dir)
    return PART_ENTRIES["als"]


def load_als(bundle):
    from modules.baselines import ALSRecommender

    return ALSRecommender.load(Bundle(bundle).als_dir)


class ALSSource(CandidateSource):
    """Candidates and ``PART_FEATURES["als"]`` from a fitted ``ALSRecommender``; ``to_id`` maps its track rows to
    hybrid ids and ``row_of`` hybrid ids back to its rows (-1 where it does not know the track)."""

    name = "als"

    def __init__(self, model, to_id: np.ndarray, row_of: np.ndarray):
        self.model = model
        self.to_id = to_id
        self.row_of = row_of

    @staticmethod
    def track_uris(model) -> np.ndarray:
        return model.matrix_.uris

    def retrieve(self, queries: list[Query], n: int) -> list[Retrieved]:
        """Every track's score for each playlist with a known seed (one pass over the item factors serves the
        batch), seeds at -inf, and its top ``n``; ``data`` is the scores (``None`` without a known seed).

        With the model's index (``ann_``) the top ``n`` is the index's (best first) and ``data`` computes the
        exact score of the rows asked (``FoldedScores``) instead of holding every track's."""
        known = [self.model.matrix_.known(q.seeds) for q in queries]
        if self.model.ann_ is not None:
            out = []
            for k in known:
                if not len(k):
                    out.append(Retrieved(NO_IDS, None))
                    continue
                u, rows, _ = self.model.search(k, n)
                out.append(Retrieved(self.to_id[rows], FoldedScores(self.model.model_.item_factors, u, k)))
            return out
        have = [i for i, k in enumerate(known) if len(k)]
        scores: list[np.ndarray | None] = [None] * len(queries)
        if have:
            found = self.model.scan([known[i] for i in have])
            for j, i in enumerate(have):
                scores[i] = found[j]
                scores[i][known[i]] = -np.inf
        out = []
        for s in scores:
            top = NO_IDS
            if s is not None:
                m = min(n, len(s))
                if m:
                    top = self.to_id[np.argpartition(s, len(s) - m)[len(s) - m:]]
            out.append(Retrieved(top, s))
        return out

    def best(self, found: Retrieved, n: int) -> np.ndarray:
        """The ``n`` best-scoring of the top (``argpartition`` leaves it unordered), in the top's order."""
        if n >= len(found.ids):
            return found.ids
        sc = found.data[self.row_of[found.ids]]
        return found.ids[np.sort(np.argpartition(-sc, n)[:n])] if n else found.ids[:0]

    def features(self, query: Query, candidates: Candidates) -> dict[str, np.ndarray]:
        scores = query.found[self.name].data
        n = len(candidates)
        if scores is None:
            return {"als_score": np.full(n, np.nan), "als_z": np.full(n, np.nan), "als_rank_log": np.full(n, np.nan)}
        rows = self.row_of[candidates.ids]
        sc = np.where(rows >= 0, scores[np.maximum(rows, 0)], np.nan)
        order = np.argsort(-np.nan_to_num(sc, nan=-np.inf), kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))  # the inverse permutation: what a second stable argsort gave
        return {"als_score": sc, "als_z": zscore(sc), "als_rank_log": np.log1p(rank.astype(np.float64))}


class FoldedScores:
    """A playlist's ALS score of any track, computed when asked (``scores[rows]``): what the exact scan's score
    vector gives for those rows (seeds at -inf), without scoring the catalog."""

    def __init__(self, factors: np.ndarray, user: np.ndarray, seeds: np.ndarray):
        self.factors, self.user, self.seeds = factors, user, np.unique(np.asarray(seeds, np.int64))

    def __len__(self) -> int:
        return len(self.factors)

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        out = np.asarray(self.factors[rows], np.float32) @ self.user
        out[np.isin(rows, self.seeds)] = -np.inf
        return out
