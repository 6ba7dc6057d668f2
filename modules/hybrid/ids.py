"""One integer id space for every track a part of the hybrid can name.

Each part numbers tracks its own way (the two-tower's candidate rows, the rules' track columns, ALS's matrix rows,
the content model's rows). A playlist's candidates come from several parts and get features from all of them,
thousands per query: mapping URIs through dictionaries each time cost more than the fusion. So the ids are fixed
once per fitted state, and pooling, deduplicating and filling a feature column are array indexing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from modules.base import positions


@dataclass
class IdMaps:
    """The id space: the training tracks first (``id < n_known``, the rows of the hybrid's per-track tables), then
    any track a part knows that the training tracks do not, in the order of ``own``.

    Attributes
    ----------
    uris : ndarray of shape (n_ids,)
    n_known : int
    index : pandas.Index
        ``uris`` as an index, for ``of``.
    own : dict of str to ndarray
        Per source name, the id of each of its tracks in its own order (-1 for none here: every track is added).
    als_row : ndarray of shape (n_ids,)
        ALS's row of every id (-1 where ALS does not know the track).
    content : ndarray of shape (n_ids,)
        The content model's row of every id (-1 where it does not know the track, or without a content model).
    """

    uris: np.ndarray
    n_known: int
    index: object
    own: dict[str, np.ndarray]
    als_row: np.ndarray
    content: np.ndarray

    @classmethod
    def build(cls, track_uris, own_uris: Mapping[str, np.ndarray],
              content_rows_of: Callable[[np.ndarray], np.ndarray] | None = None) -> IdMaps:
        """The id space of the training tracks ``track_uris`` and each source's own tracks ``own_uris``."""
        import pandas as pd

        uris = np.asarray(track_uris, dtype=object)
        n_known = len(uris)
        index = pd.Index(uris, dtype=object)
        for tracks in own_uris.values():
            extra = np.asarray(tracks, dtype=object)
            extra = extra[index.get_indexer(extra) < 0]
            if len(extra):
                uris = np.concatenate([uris, pd.unique(extra)])
                index = pd.Index(uris, dtype=object)
        own = {k: positions(index, np.asarray(v, dtype=object)) for k, v in own_uris.items()}
        als_row = np.full(len(uris), -1, np.int64)
        if "als" in own:
            als_row[own["als"]] = np.arange(len(own["als"]))
        content = content_rows_of(uris) if content_rows_of is not None else np.full(len(uris), -1, np.int64)
        return cls(uris, n_known, index, own, als_row, content)

    def of(self, uris) -> np.ndarray:
        """Ids of URIs (-1 when unknown to every part)."""
        return positions(self.index, np.asarray(list(uris), dtype=object))
