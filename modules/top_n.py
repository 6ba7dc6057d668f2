"""The ``m`` best of a whole-catalog score vector without an ``argpartition`` of the whole catalog.

Serving asks every playlist for its two-tower top 1,500 of ~50,000 tracks (twice for a long playlist: its last
seeds too). ``np.argpartition`` over the catalog cost ~10 ns a track (0.3-0.6 ms a query, the largest single
numpy call of a request); a comparison with a threshold costs ~0.5 ns a track. So ``top_n`` takes a threshold from
a strided sample of the scores that leaves, with near certainty, more than ``m`` tracks at or above it, and
selects among those few thousand. The answer is the plain computation's (``plain_top_n``) exactly: where the
``m``-th and ``(m+1)``-th best scores tie (the plain computation's choice among them is ``argpartition``'s own),
where a score is NaN, or where the sample's threshold leaves fewer than ``m`` tracks, it is computed plainly.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RANK = 64  # the threshold is the sample's 64th best: ~2m scores above it; fewer than m is a ~6-sigma event


def plain_top_n(scores: np.ndarray, m: int) -> np.ndarray:
    """Positions of the ``m`` best ``scores``, best first, ties by position (``argpartition`` over all)."""
    n = len(scores)
    top = np.argpartition(scores, n - m)[n - m:] if m < n else np.arange(n)
    return top[np.lexsort((top, -scores[top]))]


def top_n(scores: np.ndarray, m: int) -> np.ndarray:
    """``plain_top_n(scores, m)``, bit for bit, selecting among the scores above a sampled threshold."""
    n = len(scores)
    m = min(int(m), n)
    step = 2 * m // SAMPLE_RANK  # every step-th score: ~m / step = 32 of the sample are among the m best
    if step < 2 or n < 8 * m:
        return plain_top_n(scores, m)
    sample = scores[::step]
    cut = np.partition(sample, len(sample) - SAMPLE_RANK)[len(sample) - SAMPLE_RANK]
    if not np.isfinite(cut):
        return plain_top_n(scores, m)
    above = np.flatnonzero(scores >= cut)
    if len(above) <= m or np.isnan(scores).any():  # NaN is never >= cut; argpartition ranks it above all
        return plain_top_n(scores, m)
    values = scores[above]
    # the (m+1)-th best lands at position len - m - 1, the m best after it
    best = np.argpartition(values, len(values) - m - 1)[len(values) - m - 1:]
    if values[best[1:]].min() <= values[best[0]]:  # a tie at the cut: which of them argpartition keeps is its own
        return plain_top_n(scores, m)
    top = above[best[1:]]
    return top[np.lexsort((top, -scores[top]))]
