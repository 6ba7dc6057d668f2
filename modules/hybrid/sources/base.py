"""The interface every part of the hybrid meets: a candidate source.

A source adapts one fitted part (two-tower, rules, ALS, content, popularity, taste) to what the fusion needs, and
is the only place the hybrid reads that part's attributes. Two calls:

* ``retrieve(queries, n)``: for a batch of playlists, each one's ``n`` best candidates (``Retrieved.ids``) and
  what the source's features read again (scores, the rules that fired, …). Whole-catalog scans are done here,
  once per batch;
* ``features(query, candidates)``: the source's feature columns for one playlist's pooled candidates.

Candidates are ids of the hybrid's one id space (``modules.hybrid.ids.IdMaps``), so pooling and filling a column
are array indexing. To add a signal: a new source in this package, its feature names in
``modules.hybrid.features.PART_FEATURES``, and an entry in ``SourceSet``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

RECENT_SEEDS = 5  # a long playlist is also asked about its last seeds: the held-out tracks continue its end
NO_IDS = np.zeros(0, np.int64)


@dataclass(frozen=True)
class Query:
    """One playlist as the sources see it.

    ``seeds`` are deduplicated, in playlist order; ``seed_ids`` their hybrid ids (-1 unknown to every part) and
    ``known`` the ids of those that are training tracks (rows of the hybrid's per-track tables). ``weights`` are
    a listener's audio-feature weights (content), ``found`` each source's ``retrieve`` answer by source name.
    """

    seeds: list[str]
    title: str | None
    seed_ids: np.ndarray
    known: np.ndarray
    weights: Mapping[str, float] | None = None
    found: Mapping[str, Retrieved] = field(default_factory=dict)

    @property
    def long(self) -> bool:
        """Whether the playlist is also asked about its last ``RECENT_SEEDS`` seeds."""
        return len(self.seeds) > RECENT_SEEDS


@dataclass
class Retrieved:
    """A source's answer for one playlist: its candidates (hybrid ids, best first, ``[n]``) and ``data``, what
    its ``features`` read again (``None`` when it found nothing)."""

    ids: np.ndarray
    data: object = None


class Candidates:
    """One playlist's pooled candidates: ``ids`` (hybrid ids, ``[n]``, pool order) and where each id sits."""

    def __init__(self, ids: np.ndarray, n_ids: int):
        self.ids = ids
        self.slot = np.full(n_ids, -1, np.int32)  # int32: half the bytes to fill per playlist (~100k ids)
        self.slot[ids] = np.arange(len(ids))

    def __len__(self) -> int:
        return len(self.ids)

    def place(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows of the pool these ids fill, which of the ids are in the pool)."""
        p = self.slot[ids]
        return p[p >= 0], p >= 0


class CandidateSource:
    """Base class of the sources: by default a source proposes no candidates and fills no column.

    Attributes
    ----------
    name : str
        The key of its answers in ``Query.found`` (and of its part in ``HybridRecommender.parts``).
    """

    name = ""

    def retrieve(self, queries: list[Query], n: int) -> list[Retrieved | None]:
        """Each query's ``n`` best candidates, ``[len(queries)]`` answers (``None``: the source has none)."""
        return [None] * len(queries)

    def best(self, found: Retrieved, n: int) -> np.ndarray:
        """The ``n`` best of a ``retrieve`` answer's candidates, in its order: what a smaller pool takes from this
        source (``HybridRecommender.pool_sizes``). The answer's ``ids`` are best first; a source whose are not
        overrides this."""
        return found.ids[:n]

    def features(self, query: Query, candidates: Candidates) -> dict[str, np.ndarray]:
        """Feature columns (name → ``[len(candidates)]``) for one playlist's pooled candidates."""
        return {}
