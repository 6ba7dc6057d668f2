"""The hybrid's candidate sources, one file per part, behind one interface (``base.CandidateSource``).

``SourceSet`` holds a fitted hybrid's sources over one id space (``modules.hybrid.ids``): the order in which they
pool candidates (two-tower, rules, ALS, popularity: a candidate's first source decides its place in the pool, and
the pool order is part of what the fusion was fitted on) and the sources that only add features (content, taste).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from modules.hybrid.ids import IdMaps
from modules.hybrid.sources.als import ALSSource
from modules.hybrid.sources.base import RECENT_SEEDS, Candidates, CandidateSource, Query, Retrieved
from modules.hybrid.sources.content import ContentSource
from modules.hybrid.sources.popularity import PopularitySource
from modules.hybrid.sources.rules import BEST_RULE, RuleSource
from modules.hybrid.sources.taste import AudioTaste, TasteSource
from modules.hybrid.sources.two_tower import TwoTowerSource

__all__ = ["BEST_RULE", "RECENT_SEEDS", "ALSSource", "AudioTaste", "Candidates", "CandidateSource", "ContentSource",
           "PopularitySource", "Query", "Retrieved", "RuleSource", "SourceSet", "TasteSource", "TwoTowerSource"]


SEED_MEMO = 256  # playlists whose seed ids ``SourceSet.query`` keeps (a batch is at most 32 requests)


class SourceSet:
    """A fitted hybrid's sources.

    Parameters
    ----------
    two_tower, rules, als, content : fitted parts (``None`` when switched off; the two-tower is required)
    track_uris : ndarray of shape (n_known,)
        The training tracks (the hybrid's per-track tables are in this order).
    popular : ndarray of str
        The most popular training tracks, most popular first.
    pop_log : ndarray of shape (n_known,)
        ``log1p`` of each training track's number of playlists.
    sizes : mapping of str to int
        How many candidates each pooling source proposes (``retrieve``'s ``n``), by source name.
    taste : bool
        Whether the audio-taste features are filled (they need the content model).
    """

    def __init__(self, *, two_tower, rules, als, content, track_uris, popular, pop_log, sizes: Mapping[str, int],
                 taste: bool):
        self.parts = (two_tower, rules, als, content)
        own = {"two_tower": TwoTowerSource.track_uris(two_tower)}
        if rules is not None:
            own["rules"] = RuleSource.track_uris(rules)
        if als is not None:
            own["als"] = ALSSource.track_uris(als)
        own["popularity"] = popular
        rows_of = None if content is None else lambda uris: ContentSource.rows_in(content, uris)
        self.ids = ids = IdMaps.build(track_uris, own, rows_of)
        self.sizes = dict(sizes)
        self._seed_memo: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self.two_tower = TwoTowerSource(two_tower, ids.own["two_tower"])
        self.rules = None if rules is None else RuleSource(rules, ids.own["rules"], self.sizes["rules"])
        self.als = None if als is None else ALSSource(als, ids.own["als"], ids.als_row)
        self.popularity = PopularitySource(ids.own["popularity"], pop_log)
        self.content = None if content is None else ContentSource(content, ids.content)
        self.taste = None if content is None else TasteSource(self.content, ids.content, pop_log)
        self.pooling: list[CandidateSource] = [s for s in (self.two_tower, self.rules, self.als, self.popularity)
                                               if s is not None]
        extra = (self.content, self.taste if taste else None)  # features only
        self.featuring: list[CandidateSource] = [*self.pooling, *(s for s in extra if s is not None)]

    def query(self, seeds: list[str], title: str | None, weights=None, found=None) -> Query:
        """The ``Query`` of a playlist (``seeds`` deduplicated, in order).

        A request asks twice (retrieval, then its candidate set): the seeds' ids of the last ``SEED_MEMO`` playlists
        are kept (read-only arrays), so the second time costs a dict lookup instead of a pandas Index."""
        key = tuple(seeds)
        hit = self._seed_memo.get(key)
        if hit is None:
            seed_ids = self.ids.of(seeds)
            known = seed_ids[(seed_ids >= 0) & (seed_ids < self.ids.n_known)]
            seed_ids.flags.writeable = known.flags.writeable = False
            if len(self._seed_memo) >= SEED_MEMO:
                self._seed_memo.clear()
            self._seed_memo[key] = hit = (seed_ids, known)
        return Query(seeds, title, hit[0], hit[1], weights, found or {})

    def retrieve(self, queries: list[Query]) -> list[dict[str, Retrieved]]:
        """Every pooling source's answers for a batch of playlists: per playlist, source name → answer."""
        out: list[dict[str, Retrieved]] = [{} for _ in queries]
        for source in self.pooling:
            for found, answer in zip(out, source.retrieve(queries, self.sizes[source.name]), strict=True):
                if answer is not None:
                    found[source.name] = answer
        return out
