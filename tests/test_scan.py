"""modules.scan: a query's scores do not depend on the other queries scanned with it."""

import numpy as np

from modules.scan import block_rows, scan


def test_rows_are_the_same_alone_and_in_any_batch():
    rng = np.random.default_rng(0)
    for dtype, n, d in ((np.float32, 20_011, 64), (np.float32, 7, 128), (np.float64, 5_000, 33)):
        matrix = rng.normal(size=(n, d)).astype(dtype)
        queries = [rng.normal(size=d).astype(dtype) for _ in range(9)]
        alone = [scan(matrix, [q])[0] for q in queries]
        for size in (2, 3, 9):
            batch = scan(matrix, queries[:size][::-1])
            for j, q_index in enumerate(range(size)[::-1]):
                assert np.array_equal(batch[j], alone[q_index])
        np.testing.assert_allclose(np.stack(alone), np.stack(queries) @ matrix.T, rtol=1e-4, atol=1e-3)
        assert scan(matrix, []).shape == (0, n) and alone[0].dtype == dtype


def test_blocks_depend_on_the_matrix_only():
    assert block_rows(np.zeros((10, 64), np.float32)) == 4096
    assert block_rows(np.zeros((10, 128), np.float32)) == 2048
    assert block_rows(np.zeros((10, 10**7), np.float32)) == 1
