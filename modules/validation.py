"""The validation split: playlists carved once from the training playlists, for every part that needs them.

The two-tower stops early on them and the hybrid's fusion and blend are chosen on them; both must hold out the
*same* playlists, or the fusion would learn from playlists the tower was trained on. So the split is computed once
(``carve_validation``) and handed to each part, instead of each part recomputing it from its own parameters.

The cut is the challenge's (``modules.challenge.split_store``): ``per_category`` playlists in each of the ten
categories; ``"auto"`` is 1.5 % of the training playlists, 10 to 50 per category
(``modules.challenge.validation_per_category``), halved until the data allows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from modules.challenge import Split, SplitError, split_store, validation_per_category

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Validation:
    """A carved validation split.

    Attributes
    ----------
    split : Split or None
        ``split_store``'s result (training pids, challenge set, truth); ``None`` when the data is too small for
        one playlist per category.
    per_category : int
        Validation playlists per category in ``split`` (0 without a split).
    """

    split: Split | None
    per_category: int


def carve_validation(store, pids, *, per_category: int | str = "auto", seed: int = 0) -> Validation:
    """The validation split of ``pids`` of ``store``: ``per_category`` playlists per challenge category (``"auto"``:
    ``validation_per_category`` of the number of playlists), halved until ``split_store`` can cut it."""
    if per_category == "auto":
        per_category = validation_per_category(len(np.unique(pids)))
    while per_category >= 1:
        try:
            return Validation(split_store(store, per_category=per_category, seed=int(seed), pids=pids), per_category)
        except SplitError as err:
            log.info("validation split: %s; trying %d per category", err, per_category // 2)
            per_category //= 2
    return Validation(None, 0)
