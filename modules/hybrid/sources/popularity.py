"""Popularity as a source: the most popular training tracks always join the pool, and every candidate's log count
is a feature.

So a title-only playlist, or one whose seeds are all unknown, still gets a pool. The counts are the hybrid's own
per-track table (``pop_log_``, from the playlists the other parts were fitted on: a held-out track is never
"popular" because its own validation playlist counted it).
"""

from __future__ import annotations

import numpy as np

from modules.hybrid.sources.base import Candidates, CandidateSource, Query, Retrieved


class PopularitySource(CandidateSource):
    """The first ``n`` of ``popular`` (hybrid ids, most popular first) as candidates; ``pop_log`` (``[n_known]``,
    ``log1p`` of the training count of every training track) as the ``pop_log`` feature."""

    name = "popularity"

    def __init__(self, popular: np.ndarray, pop_log: np.ndarray):
        self.popular = popular
        self.pop_log = pop_log

    def retrieve(self, queries: list[Query], n: int) -> list[Retrieved]:
        top = Retrieved(self.popular[:n])
        return [top] * len(queries)

    def features(self, query: Query, candidates: Candidates) -> dict[str, np.ndarray]:
        known = candidates.ids < len(self.pop_log)
        return {"pop_log": np.where(known, self.pop_log[np.where(known, candidates.ids, 0)], 0.0)}
