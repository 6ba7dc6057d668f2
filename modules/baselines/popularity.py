"""``PopularityRecommender``: the most frequent training tracks; title-only playlists get title popularity."""

from __future__ import annotations

import numpy as np

from modules.baselines.shared import _Baseline


class PopularityRecommender(_Baseline):
    """The most popular tracks; title-only playlists get the popularity among title-matching playlists.

    Parameters
    ----------
    title_match : bool, default=True
        Use the title for playlists without seeds (popularity among training playlists with the same
        normalized title, or sharing title words, weighted by word overlap). ``False``: plain popularity.
    seed : int, default=0
        Accepted for a uniform interface; the method draws no randomness.

    Examples
    --------
    >>> rec = PopularityRecommender().fit(store)            # doctest: +SKIP
    >>> uris, scores = rec.recommend([], title="chill", k=10)  # doctest: +SKIP
    """

    def __init__(self, *, title_match: bool = True, seed: int = 0):
        self.title_match = title_match
        self.seed = seed

    def fit(self, store, pids=None):
        self._fit_common(store, pids)
        self.fitted_ = True
        return self

    def _recommend(self, seeds, title, k):
        if not seeds and title and self.title_match:
            return self._title_answer(title, k)
        m = self.matrix_
        n = k + len(seeds)
        uris = self.fallback_[:n]
        return uris, np.array([m.counts[m.index[u]] if u in m.index else 0 for u in uris], np.float32)
