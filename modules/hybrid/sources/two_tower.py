"""The two-tower as the hybrid's first source: its top ``n_candidates`` for the playlist (and for its last seeds).

It is the one source every hybrid has (``parts`` must include it): any playlist, title-only or with unknown seeds,
gets candidates from it without retraining. Features: its score, the gap to its best, z-score, log rank, whether
it found the candidate, and the score of the same tower asked about the last ``RECENT_SEEDS`` seeds only
(``tt_recent``).
"""

from __future__ import annotations

import logging

import numpy as np

from modules.base import zscore
from modules.bundle import PART_ENTRIES
from modules.errors import HybridError
from modules.hybrid.sources.base import RECENT_SEEDS, Candidates, CandidateSource, Query, Retrieved

log = logging.getLogger(__name__)


def fit_two_tower(store, pids, params: dict, validation):
    """A ``TwoTowerRecommender`` with ``params`` trained on ``pids`` of ``store``, stopping early on the hybrid's
    own ``validation`` split (``modules.validation``): the tower never trains on the fusion's validation playlists,
    whatever its own seed."""
    from modules.two_tower import TwoTowerRecommender

    if "validation_per_category" in params:
        raise HybridError("Set validation_per_category on the hybrid, not in its 'two_tower' parameters: the hybrid "
                          "carves one validation split and hands it to the two-tower.")
    log.info("hybrid: training the two-tower on %d playlists", len(pids))
    return TwoTowerRecommender(**params).fit(store, pids, validation=validation)


def pretrained_two_tower(path, store, inner, per_category: int, seed: int):
    """A two-tower trained earlier (``train-two-tower``) on exactly these playlists, with the same validation
    playlists held out; anything else would leak the validation playlists into the fusion's features."""
    from modules.two_tower import TwoTowerRecommender

    tt = TwoTowerRecommender.load(path)
    ok = (tt.config_.validation_per_category == per_category and int(tt.seed) == int(seed)
          and tt._fingerprint(store, inner, tt.config_) == tt.fingerprint_)
    if not ok:
        raise HybridError(f"the two-tower in {path} was not trained on these playlists with "
                          f"seed {seed} and validation_per_category {per_category}; train it with "
                          "`python -m modules train-two-tower` on the same data, or drop two_tower_bundle.")
    log.info("hybrid: using the two-tower trained in %s", path)
    return tt


def save_two_tower(model, bundle) -> str:
    """Write the two-tower into the bundle folder; returns its place there."""
    model.save(bundle)
    return PART_ENTRIES["two_tower"]


def load_two_tower(bundle):
    from modules.two_tower import TwoTowerRecommender

    return TwoTowerRecommender.load(bundle)


class TwoTowerSource(CandidateSource):
    """Candidates and ``PART_FEATURES["two_tower"]`` from a fitted ``TwoTowerRecommender``; ``to_id`` maps its
    candidate rows to hybrid ids."""

    name = "two_tower"

    def __init__(self, model, to_id: np.ndarray):
        self.model = model
        self.to_id = to_id

    @staticmethod
    def track_uris(model) -> np.ndarray:
        """The tracks it can propose, in its own row order."""
        return model.candidate_uris_

    def retrieve(self, queries: list[Query], n: int) -> list[Retrieved]:
        """One catalog scan for the batch: each playlist's top ``n`` and, when it is long, its last seeds'.
        ``data`` is ``((rows, scores), (rows, scores) of the last seeds or None)``. A playlist's answer is
        bit-identical alone or in any batch (``modules.scan``)."""
        seeds, titles, at = [], [], []
        for q in queries:
            at.append(len(seeds))
            seeds.append(q.seeds)
            titles.append(q.title)
            if q.long:  # the held-out tracks continue the playlist's end
                seeds.append(q.seeds[-RECENT_SEEDS:])
                titles.append(q.title)
        answers = self.model.top_batch(seeds, titles, n)
        out = []
        for a, q in zip(at, queries, strict=True):
            whole = answers[a]
            out.append(Retrieved(self.to_id[whole[0]], (whole, answers[a + 1] if q.long else None)))
        return out

    def features(self, query: Query, candidates: Candidates) -> dict[str, np.ndarray]:
        found = query.found[self.name]
        (_, tt_scores), ending = found.data
        tt_ids, n = found.ids, len(candidates)
        floor = float(tt_scores[-1]) if len(tt_scores) else 0.0
        tt_score = np.full(n, floor, np.float64)
        tpos = np.full(n, len(tt_ids), np.int64)
        at, ok = candidates.place(tt_ids)
        tt_score[at] = tt_scores[ok]
        tpos[at] = np.flatnonzero(ok)
        cols = {"tt_score": tt_score,
                "tt_gap": tt_score - (float(tt_scores[0]) if len(tt_scores) else 0.0),
                "tt_z": zscore(tt_score),
                "tt_rank_log": np.log1p(tpos),
                "tt_found": (tpos < len(tt_ids)).astype(np.float64)}
        if ending is not None:
            r_top, r_scores = ending
            tt_recent = np.full(n, np.nan)
            at, ok = candidates.place(self.to_id[r_top])
            tt_recent[at] = r_scores[ok]
            cols["tt_recent"] = tt_recent
        else:
            cols["tt_recent"] = tt_score
        return cols
