"""The contract every playlist recommender meets (baselines, two-tower, rules, content, the hybrid).

Like implicit's ``RecommenderBase``: ``fit`` on training playlists, ``recommend`` for one playlist given its
seeds and title. Whatever the model, the answer is ``k`` unique track URIs with no seed among them;
``recommend_challenge`` turns any recommender into an official submission.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modules.errors import NotFittedError
from modules.mpd import SUBMISSION_SIZE, write_submission

log = logging.getLogger(__name__)


class PlaylistRecommender(ABC):
    """Base class: subclasses implement ``fit`` and ``_recommend``.

    ``recommend`` validates the input once, at this boundary, so every model gets the same checks.
    """

    @abstractmethod
    def fit(self, store, pids=None):
        """Learn from the playlists of ``store`` (a ``PlaylistStore``), restricted to ``pids`` if given.

        Returns ``self``.
        """

    @abstractmethod
    def _recommend(self, seeds: list[str], title: str | None, k: int) -> tuple[list[str], np.ndarray]:
        """Up to ``k`` ranked (uri, score) pairs, seeds already excluded; ``recommend`` fills the rest."""

    def recommend(self, seed_track_uris: Sequence[str] = (), title: str | None = None,
                  k: int = SUBMISSION_SIZE) -> tuple[list[str], np.ndarray]:
        """The ``k`` tracks that best continue a playlist.

        Parameters
        ----------
        seed_track_uris : sequence of str
            The playlist's tracks (any number, unknown URIs allowed; duplicates are ignored).
        title : str, default=None
            The playlist's title, if it has one.
        k : int, default=500
            Number of recommendations.

        Returns
        -------
        uris : list of str
            ``k`` unique URIs, none of them a seed, best first (fewer only when the catalog is smaller).
        scores : ndarray of shape (len(uris),)
            Scores, non-increasing.
        """
        if not hasattr(self, "fitted_") or not self.fitted_:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(store) first.")
        if isinstance(seed_track_uris, str):
            raise TypeError("seed_track_uris must be a list of track URIs, not one string; wrap it in a list.")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer (got {k!r}).")
        seeds = list(dict.fromkeys(str(s) for s in seed_track_uris))
        title = title.strip() if isinstance(title, str) and title.strip() else None
        uris, scores = self._recommend(seeds, title, int(k))
        return self._complete(uris, np.asarray(scores, dtype=np.float32), set(seeds), int(k))

    def _complete(self, uris, scores, seeds: set[str], k: int) -> tuple[list[str], np.ndarray]:
        """Drop seeds and duplicates, then pad from ``fallback_`` (popularity order) up to ``k``."""
        return complete(uris, scores, seeds, k, getattr(self, "fallback_", ()))

    def recommend_batch(self, playlists: Iterable[dict], k: int = SUBMISSION_SIZE,
                        show_progress: bool = False) -> list[tuple[list[str], np.ndarray]]:
        """``recommend`` for challenge-format playlists (``{"tracks": [{"track_uri"}], "name"?}``)."""
        playlists = list(playlists)
        return [self.recommend([t["track_uri"] for t in p.get("tracks", ())], p.get("name"), k)
                for p in tqdm(playlists, desc="recommend", unit="playlist", disable=not show_progress)]


def recommend_challenge(recommender: PlaylistRecommender, challenge: dict, out: str | Path | None = None,
                        show_progress: bool = True) -> dict[int, list[str]]:
    """Recommend 500 tracks for every playlist of a challenge set; write the submission CSV if ``out``."""
    playlists = challenge["playlists"]
    results = recommender.recommend_batch(playlists, SUBMISSION_SIZE, show_progress=show_progress)
    rows = {p["pid"]: uris for p, (uris, _) in zip(playlists, results)}
    short = [pid for pid, uris in rows.items() if len(uris) < SUBMISSION_SIZE]
    if short:
        log.warning("%d playlists got fewer than %d tracks (the catalog is smaller than that)", len(short),
                    SUBMISSION_SIZE)
    if out is not None:
        write_submission(out, rows.items())
    return rows


def positions(keys, uris) -> np.ndarray:
    """Position of each of ``uris`` in ``keys`` (-1 where absent).

    ``keys`` is a ``pandas.Index`` of unique URIs (or anything that builds one). Hashing in C instead of a Python
    dict lookup per URI: a playlist's candidate set maps thousands of URIs several times per query.
    """
    import pandas as pd

    if not isinstance(keys, pd.Index):
        keys = pd.Index(np.asarray(keys, dtype=object), dtype=object)
    if len(keys) == 0:
        return np.full(len(uris), -1, np.int64)
    # the target as an object Index: given a bare array, pandas infers its string dtype and converts the URIs
    # to Arrow first (timed with 50k keys and 26 URIs: 74 µs a call against 17 µs; five calls per query)
    target = pd.Index(np.asarray(uris, dtype=object), dtype=object)
    return keys.get_indexer(target).astype(np.int64, copy=False)


_THREADPOOLS = None


def zscore(x: np.ndarray) -> np.ndarray:
    """Standardized within one playlist's candidates (NaN stays NaN), so scales compare across playlists."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    if ok.sum() < 2:
        return np.where(ok, 0.0, np.nan)
    # ``mean`` and ``std`` written out as numpy computes them (sum / n; sqrt of the sum of squared deviations / n,
    # each sum numpy's pairwise one), so the same bits, with the finite values selected once instead of twice and
    # without the wrappers' checks (~4 calls per recommendation)
    v = x[ok] if not ok.all() else x
    n = len(v)
    mu = np.add.reduce(v) / n
    d = v - mu
    sd = np.sqrt(np.add.reduce(d * d) / n)
    return (x - mu) / (sd if sd > 0 else 1.0)


def single_thread_native():
    """A context that keeps BLAS and OpenMP on one thread for per-query work.

    The matrices of one query are small; OpenBLAS splitting them over threads on a busy 2-core machine cost up to
    100 ms in waiting for a 0.2 ms solve, and the gradient-boosted fusion runs one OpenMP region per tree (100 per
    query). Cheap to enter (one controller, made once).
    """
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1)


def one_blas_thread():
    """A context that keeps BLAS on one thread where a trained model must not depend on the machine.

    OpenBLAS splits a long matrix-vector product over its threads and adds the partial sums, so the bits of
    ``X @ w`` depend on how many threads it has: the core count, ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``, or
    a process-wide limit set elsewhere (``single_thread_native``, a server's ``native_threads``). The fusion's
    logistic regression is fitted and scored under it (``modules.hybrid.selection``): on two threads and on one
    the tiny test bundle's validation NDCG was 0.157085 and 0.156975. OpenMP (the trees) is left alone."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def complete(uris, scores, seeds, k: int, fallback) -> tuple[list[str], np.ndarray]:
    """The answer every recommender gives: ``uris`` (best first, with ``scores``) without seeds or duplicates,
    padded from ``fallback`` (popularity order, scored below the last) up to ``k``."""
    seen = set(seeds)
    out, out_scores = [], []
    for u, s in zip(uris, scores):
        if u not in seen:
            seen.add(u)
            out.append(u)
            out_scores.append(float(s))
            if len(out) == k:
                break
    if len(out) < k:
        floor = (min(out_scores) if out_scores else 0.0) - 1.0
        for u in fallback:
            if u not in seen:
                seen.add(u)
                out.append(u)
                out_scores.append(floor)
                floor -= 1e-6
                if len(out) == k:
                    break
    return out, np.asarray(out_scores, dtype=np.float32)


def popularity_order(store, pids=None) -> list[str]:
    """Track URIs by number of playlists (among ``pids`` if given), most popular first; ties by URI."""
    if pids is None:
        tr = store.tracks
        counts, uris = tr["count"].to_numpy(), tr["track_uri"].to_numpy()
    else:
        inter = store.interactions(pids)
        counts, uris = np.asarray(inter.matrix.sum(0)).ravel(), inter.track_uris
    order = np.lexsort((uris, -counts))
    return [str(u) for u in uris[order]]
