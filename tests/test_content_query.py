"""The content query's tag centre summed without slicing the sparse matrix (``modules.content.query``)."""

from __future__ import annotations

import numpy as np


def test_the_seeds_tag_sum_without_slicing_equals_scipys_bit_for_bit():
    """``weighted_row_sum`` (the playlist's tag centre before normalizing) equals ``text_[rows].T @ weights``
    exactly: float32 tags times float64 weights, rows repeated and in any order, where the order of additions
    shows; float32 weights fall back to scipy."""
    from scipy import sparse

    from modules.content.query import weighted_row_sum

    rng = np.random.default_rng(2)
    m = sparse.random(3000, 800, density=0.01, format="csr", dtype=np.float32, random_state=3)
    sensitive = 0
    for _ in range(100):
        rows = rng.integers(0, 3000, rng.integers(0, 150))
        w = rng.random(len(rows)) / rng.random(len(rows))
        want = np.asarray(m[rows].T @ w).ravel()
        got = weighted_row_sum(m, rows, w)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
        sensitive += np.asarray(m[rows[::-1]].T @ w[::-1]).ravel().tobytes() != want.tobytes()
    assert sensitive > 50  # the order of additions matters for these inputs, so equality is a real check
    rows, w = rng.integers(0, 3000, 40), rng.random(40).astype(np.float32)
    assert weighted_row_sum(m, rows, w).tobytes() == np.asarray(m[rows].T @ w).ravel().tobytes()
