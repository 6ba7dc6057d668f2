"""modules.top_n: the sampled-threshold top-n gives the whole argpartition's answer, position for position."""

import numpy as np

from modules.top_n import plain_top_n, top_n


def test_top_n_is_the_plain_answer_on_ties_nan_and_minus_infinity():
    rng = np.random.default_rng(0)
    used_sample = 0
    for trial in range(400):
        n, m = int(rng.integers(2, 60_000)), int(rng.integers(1, 2_500))
        scores = rng.normal(size=n).astype(np.float32 if trial % 2 else np.float64)
        if trial % 3 == 0:
            scores = np.round(scores, 2)  # ties, also at the cut (then argpartition's own choice must be kept)
        if trial % 5 == 0:
            scores[rng.integers(0, n, 50)] = -np.inf  # the seeds
        if trial % 7 == 0:
            scores[rng.integers(0, n, 3)] = np.nan  # argpartition ranks NaN above every number
        if trial % 11 == 0:
            scores = np.sort(scores)  # sorted scores: a strided sample still bounds the m best
        got, want = top_n(scores, m), plain_top_n(scores, m)
        assert np.array_equal(got, want), (trial, n, m)
        used_sample += n >= 8 * m and m >= 64
    assert used_sample > 50  # the fast path was exercised, not only the fallbacks


def test_top_n_is_best_first_ties_by_position():
    scores = np.array([0.5, 2.0, 2.0, -1.0, 3.0, 2.0] * 2_000, np.float32)
    top = top_n(scores, 100)
    assert len(top) == 100 and (scores[top] >= 2.0).all()
    assert np.all(np.diff(scores[top]) <= 0)
    same = scores[top][1:] == scores[top][:-1]
    assert np.all(np.diff(top)[same] > 0)  # equal scores in position order
    assert np.array_equal(top_n(scores[:3], 10), [1, 2, 0])  # m beyond the length: all of them
