"""What every baseline shares: the training playlist × track matrix and the common fit and fallback steps.

``_Baseline`` is the small base of the baselines (a ``PlaylistRecommender``): ``_fit_common`` builds the
matrix, the popularity fallback and the title popularity; ``_title_answer`` and ``_with_title_padding`` answer
or pad with the title popularity. ``_Matrix.top`` ranks with the same tie-break everywhere (score, then
popularity, then URI), so every baseline is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from modules.base import PlaylistRecommender, popularity_order
from modules.baselines.title_popularity import _TitlePopularity, normalize_title
from modules.errors import InputError


def _check_param(owner: str, name: str, value, ok: bool, what: str) -> None:
    if not ok:
        raise InputError(f"The {name!r} parameter of {owner} must be {what}. Got {value!r} instead.")


def _read_first(attr: str, doc: str) -> property:
    """A read-only attribute of ``_Matrix`` that reads the matrix's files on first use (``_Matrix._parts``)."""
    def get(self):
        self._parts()
        return getattr(self, attr)
    return property(get, doc=doc)


class _Matrix:
    """The training playlist × track matrix with its index maps, shared by the baselines.

    A loaded model may read the matrix itself (``X``, ``pids``, ``titles``, ``counts``) on first use
    (``from_files``): the hybrid's ALS part needs only the URIs and the factors, and at 1M playlists the matrix,
    its transpose and the title index were 2.4 GiB of a serving process."""

    def __init__(self, store, pids=None):
        inter = store.interactions(pids)
        keep = np.asarray(inter.matrix.getnnz(axis=0)).ravel() > 0  # tracks of these playlists only
        names = store.playlists.set_index("pid")["name"]
        self._set(inter.matrix[:, keep].tocsr().astype(np.float32), inter.pids, inter.track_uris[keep],
                  [normalize_title(names.get(p)) for p in inter.pids.tolist()])

    @classmethod
    def from_arrays(cls, X, pids: np.ndarray, uris: np.ndarray, titles: list[str]) -> _Matrix:
        """The matrix from its parts: ``X`` ``[playlists, tracks]``, normalized titles."""
        self = cls.__new__(cls)
        self._set(X.tocsr().astype(np.float32), pids, uris, titles)
        return self

    @classmethod
    def from_files(cls, read: Callable[[], tuple], uris: np.ndarray) -> _Matrix:
        """The matrix of the tracks ``uris`` whose ``X``, ``pids`` and ``titles`` (what ``from_arrays`` takes)
        ``read()`` returns, called on first use of any of them (``ALSRecommender.load``)."""
        self = cls.__new__(cls)
        self.share_uris(uris)
        self._read = read
        return self

    def _set(self, X, pids, uris, titles) -> None:
        self._read = None
        self._X = X
        self._pids = pids
        self.share_uris(uris)
        self._counts = np.asarray(self._X.sum(axis=0)).ravel()
        self._titles = titles

    def _parts(self) -> None:
        if self._read is not None:
            X, pids, titles = self._read()
            self._X, self._pids, self._titles = X.tocsr().astype(np.float32), pids, titles
            self._counts = np.asarray(self._X.sum(axis=0)).ravel()
            self._read = None

    @property
    def loaded(self) -> bool:
        """Whether ``X``, ``pids`` and ``titles`` are in memory (``False`` until first use after ``from_files``)."""
        return self._read is None

    X = _read_first("_X", "the playlist x track matrix, CSR float32")
    pids = _read_first("_pids", "the matrix rows' playlist ids")
    titles = _read_first("_titles", "the playlists' normalized titles, in row order")
    counts = _read_first("_counts", "each track's number of playlists (column sums)")

    def share_uris(self, uris: np.ndarray) -> None:
        """Hold ``uris`` as the tracks (the columns) and index them; called again with equal strings another part
        holds, it replaces the copies (``modules.uri_pool``)."""
        self.uris = uris
        self.index = {u: i for i, u in enumerate(self.uris.tolist())}

    def known(self, seeds: Iterable[str]) -> np.ndarray:
        return np.array([self.index[s] for s in seeds if s in self.index], dtype=np.int64)

    def top(self, scores: np.ndarray, k: int, exclude: np.ndarray = ()) -> tuple[list[str], np.ndarray]:
        """The ``k`` best tracks with a positive score, ties broken by popularity then URI (deterministic)."""
        scores = np.asarray(scores, dtype=np.float64).copy()
        if len(exclude):
            scores[exclude] = 0.0
        cand = np.flatnonzero(scores > 0)
        if len(cand) > 4 * k:  # cheap pre-cut that cannot drop any of the true top k
            cut = np.partition(scores[cand], len(cand) - k)[len(cand) - k]
            cand = cand[scores[cand] >= cut]
        order = cand[np.lexsort((self.uris[cand], -self.counts[cand], -scores[cand]))][:k]
        return self.uris[order].tolist(), scores[order].astype(np.float32)


class _Baseline(PlaylistRecommender):
    """Shared fit steps: the matrix, the popularity fallback and the title popularity."""

    def _fit_common(self, store, pids):
        self.matrix_ = _Matrix(store, pids)
        self.fallback_ = popularity_order(store, pids)
        self.title_pop_ = _TitlePopularity(self.matrix_)

    def _title_answer(self, title, k, exclude=()):
        s = self.title_pop_.scores(title) if title else None
        if s is None:
            return [], np.zeros(0, np.float32)  # recommend() pads with plain popularity
        return self.matrix_.top(s, k, exclude)

    def _with_title_padding(self, uris, scores, title, k, exclude):
        """Pad a seed-based answer shorter than ``k`` with the title popularity (then ``recommend`` pads)."""
        if len(uris) >= k or not title:
            return uris, scores
        more, _ = self._title_answer(title, k, exclude)
        seen = set(uris)
        extra = [u for u in more if u not in seen][: k - len(uris)]
        floor = float(scores[-1]) if len(scores) else 0.0
        extra_scores = floor - 1e-3 - np.arange(1, len(extra) + 1, dtype=np.float32) * 1e-6
        return uris + extra, np.concatenate([scores, extra_scores]).astype(np.float32)
