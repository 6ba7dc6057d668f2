"""``ItemKNNRecommender``: item-item co-occurrence kNN, the neighbours of every seed summed.

Cosine or conditional probability (``alpha``), computed on the fly from the sparse playlist × track matrix
(no dense item × item table).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from modules.baselines.shared import _Baseline, _check_param


class ItemKNNRecommender(_Baseline):
    """Item-item co-occurrence kNN: each seed's most similar tracks, similarities summed over the seeds.

    ``sim(i, j) = c_ij / (n_i ** alpha * n_j ** (1 - alpha))`` where ``c_ij`` is the number of training
    playlists holding both tracks and ``n_i`` the number holding ``i``; ``alpha=0.5`` is the cosine,
    ``alpha=1`` the conditional probability of ``j`` given ``i``.

    Parameters
    ----------
    neighbors : int or None, default=None
        Keep only each seed's ``neighbors`` most similar tracks before summing (``None``: all co-occurring
        tracks; on sparse data truncation mostly loses recall).
    alpha : float, default=1.0
        Asymmetry of the normalization: 0.5 is the cosine, 1.0 the conditional probability P(j | i), which
        favours popular neighbours (chosen on a validation split carved from training playlists, see
        docs/two_tower.md).
    title_match : bool, default=True
        Answer playlists without known seeds (and pad short answers) with the title popularity.
    seed : int, default=0
        Accepted for a uniform interface; the method draws no randomness.
    """

    def __init__(self, *, neighbors: int | None = None, alpha: float = 1.0, title_match: bool = True,
                 seed: int = 0):
        self.neighbors = neighbors
        self.alpha = alpha
        self.title_match = title_match
        self.seed = seed

    def fit(self, store, pids=None):
        _check_param("ItemKNNRecommender", "neighbors", self.neighbors,
                     self.neighbors is None or (isinstance(self.neighbors, int) and self.neighbors > 0),
                     "None or a positive int")
        _check_param("ItemKNNRecommender", "alpha", self.alpha, 0.0 <= float(self.alpha) <= 1.0,
                     "a float in [0, 1]")
        self._fit_common(store, pids)
        self.XT_ = self.matrix_.X.T.tocsr()  # tracks × playlists
        n = np.maximum(self.matrix_.counts, 1.0)
        self.row_norm_ = n ** -float(self.alpha)
        self.col_norm_ = n ** -(1.0 - float(self.alpha))
        self.fitted_ = True
        return self

    def similarities(self, seed_index: np.ndarray) -> sparse.csr_matrix:
        """Rows of the item-item similarity matrix for the given track indices, ``[len(seed_index), n_tracks]``.

        Self-similarity is zeroed; with ``neighbors`` set, each row keeps its largest ``neighbors`` entries.
        """
        co = (self.XT_[seed_index] @ self.matrix_.X).tocsr()  # co-occurrence counts
        co = sparse.diags(self.row_norm_[seed_index]) @ co @ sparse.diags(self.col_norm_)
        co = co.tocsr()
        co[np.arange(len(seed_index)), seed_index] = 0.0
        co.eliminate_zeros()
        if self.neighbors is not None:
            co = _keep_top_per_row(co, self.neighbors, self.matrix_.counts)
        return co

    def _recommend(self, seeds, title, k):
        idx = self.matrix_.known(seeds)
        use_title = title if self.title_match else None
        if len(idx) == 0:
            return self._title_answer(use_title, k)
        scores = np.asarray(self.similarities(idx).sum(axis=0)).ravel()
        uris, s = self.matrix_.top(scores, k, exclude=idx)
        return self._with_title_padding(uris, s, use_title, k, idx)


def _keep_top_per_row(m: sparse.csr_matrix, n: int, counts: np.ndarray) -> sparse.csr_matrix:
    """Keep the ``n`` largest entries of each CSR row (ties: more popular, then lower index)."""
    m = m.tocsr()
    rows, cols, vals = [], [], []
    for r in range(m.shape[0]):
        a, b = m.indptr[r], m.indptr[r + 1]
        c, v = m.indices[a:b], m.data[a:b]
        if len(c) > n:
            keep = np.lexsort((c, -counts[c], -v))[:n]
            c, v = c[keep], v[keep]
        rows.append(np.full(len(c), r))
        cols.append(c)
        vals.append(v)
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape)
