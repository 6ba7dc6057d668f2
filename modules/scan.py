"""Scores of several queries against one catalog matrix, each exactly what the query would get alone.

A recommendation must not depend on who else is asking. BLAS sums a matrix-matrix product in another order than
a matrix-vector one, and a batched product's order can depend on the other rows, so a playlist scored in a batch
got scores ~1e-6 away from its scores alone, enough to swap near-ties and move a rank feature. Here every query
is one matrix-vector product per fixed block of catalog rows: its scores are a function of the query and the
matrix only (the blocks depend on the matrix's shape, never on the batch). A block (about 1 MB) is scored for
every query of the batch while it sits in cache, so the catalog is still read from memory once per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BLOCK_BYTES = 1 << 20  # catalog rows per block: about 1 MB of them (fits the L2 cache of one core)


def block_rows(matrix: np.ndarray) -> int:
    """Rows per block for ``matrix`` (a function of its shape and dtype only)."""
    return max(1, BLOCK_BYTES // max(1, matrix.shape[1] * matrix.itemsize))


def scan(matrix: np.ndarray, queries: Sequence[np.ndarray]) -> np.ndarray:
    """``matrix @ q`` for every query ``q``, shape ``[len(queries), len(matrix)]``, in ``matrix``'s dtype.

    Row ``i`` is bit-identical whatever the other queries are (``scan(matrix, [q])[0]`` included)."""
    matrix = np.ascontiguousarray(matrix)
    n = len(matrix)
    qs = [np.ascontiguousarray(q, dtype=matrix.dtype) for q in queries]
    out = np.empty((len(qs), n), matrix.dtype)
    step = block_rows(matrix)
    for a in range(0, n, step):
        block = matrix[a:a + step]
        for i, q in enumerate(qs):
            out[i, a:a + step] = block @ q
    return out
