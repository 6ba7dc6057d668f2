"""One copy of each track URI string in a loaded bundle: the parts hold the same ``str`` objects.

Each part of a bundle reads its own track URIs (the fusion's tables, the two-tower's items and vocabulary, ALS,
the content model, two popularity orders), and each read makes new Python strings: at 1M playlists a copy is
2.28 M strings of ≈ 85 bytes, ≈ 190 MiB, and a serving process held six of them. ``UriPool.share`` gives a part's
URIs back as the pool's own string objects (equal strings, so nothing a part computes changes), so a repeat costs
a pointer (8 bytes) per track and the part's own strings are freed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class UriPool:
    """The canonical strings: ``uris`` (any order, unique), held as an object array.

    ``share(values)`` is ``values`` (same length, order and equal strings) with every string the pool holds
    replaced by the pool's object; strings it does not hold stay as they are.
    """

    def __init__(self, uris):
        self.uris = np.asarray(uris, dtype=object)
        self._index = None

    def share(self, values) -> np.ndarray:
        """``values`` as an object array whose strings are the pool's own where it has them."""
        values = np.asarray(values, dtype=object)
        m = min(len(values), len(self.uris))
        if np.array_equal(values[:m], self.uris[:m]):  # the usual case: the same tracks first, in the same order
            if len(values) == len(self.uris):
                return self.uris
            out = values.copy()
            out[:m] = self.uris[:m]  # any further value is not in the pool: its strings are all matched
            return out
        if self._index is None:
            self._index = pd.Index(self.uris, dtype=object)
        pos = self._index.get_indexer(pd.Index(values, dtype=object))
        out = values.copy()
        hit = pos >= 0
        out[hit] = self.uris[pos[hit]]
        return out
