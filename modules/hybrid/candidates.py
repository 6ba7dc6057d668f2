"""A playlist's candidates: the pool the sources retrieved, and the candidate set the fusion scores.

The pool is the union of every pooling source's answer (two-tower, rules, ALS, popularity, in that order; a track
keeps the place of its first source), seeds removed; a request for few tracks pools only each source's best
(``HybridRecommender.pool_sizes``), while the features still read everything the sources retrieved.
``CandidateSet`` holds the pooled tracks with their features; its ``order`` is the ranking (ties by URI, so
deterministic).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from modules.hybrid.sources import Candidates, Query, SourceSet


def pool_candidates(sources: SourceSet, query: Query, sizes: Mapping[str, int] | None = None) -> Candidates:
    """The union of the sources' answers in ``query.found``, each track at its first place, seeds removed;
    with ``sizes`` (source name → count) only each source's best that many (``CandidateSource.best``)."""
    found = [(s, query.found[s.name]) for s in sources.pooling if s.name in query.found]
    pool = np.concatenate([f.ids if sizes is None else s.best(f, sizes[s.name]) for s, f in found])
    _, first = np.unique(pool, return_index=True)
    pool = pool[np.sort(first)]
    return Candidates(pool[~np.isin(pool, query.seed_ids)], len(sources.ids.uris))


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
