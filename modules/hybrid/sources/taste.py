"""What a playlist's genres and sound say about a candidate: genre-conditional popularity and audio fit.

A playlist is read as a mixture of genres (the share of its seeds tagged with each) whose tracks are picked by
popularity, tilted toward a sound: within its genres, its seeds sit in some part of the audio-feature space (a
mood: calm and acoustic, fast and danceable, …). Two features come out of that, for the hybrid's fusion:

* ``taste``: the chance of a candidate under the genre mixture, ``sum_g share_g * (count + a) / Z_g``, with
  ``count`` the track's training playlists and ``Z_g`` the genre's total;
* ``fit_<feature>``: per audio feature, the log ratio of the seeds' density at the candidate's value to the density
  expected from the playlist's genres alone (popularity-weighted), and ``audio_fit``, their sum. A feature the
  playlist does not care about has a ratio near 1 (log 0); the fusion learns on validation which ones matter.

Densities are histograms of the content model's standardized features (24 bins over ±3 standard deviations,
smoothed), so a playlist costs a few table lookups per candidate. Tables are derived from a fitted
``ContentModel`` and per-track counts, nothing is saved: a loaded bundle rebuilds them on first use
(``TasteSource``, the hybrid's adapter, on its first playlist). On with ``HybridRecommender(audio_taste=True)``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from modules.base import zscore
from modules.content.query import rows_of
from modules.hybrid.sources.base import Candidates, CandidateSource, Query

N_BINS = 24
SPAN = 3.0  # standard deviations covered by the bins; beyond them values fall in the edge bins
SMOOTH_BINS = 2.0  # Gaussian smoothing of every histogram, in bins (0.5 standard deviation)
SHRINK = 5.0  # the seeds' histogram is shrunk toward the genres' as if by this many seeds
COUNT_PRIOR = 0.5  # added to every track's count so unseen catalog tracks keep a small chance
FLOOR = 1e-4
PADDED_GENRES = 16  # up to this many genres on one track, each track's genres are also kept as a padded row


class AudioTaste:
    """Tables for ``features``; build with ``AudioTaste.build(content_model, counts)``.

    ``counts`` holds each content-model row's number of training playlists (0 for catalog-only tracks)."""

    def __init__(self, genres: sparse.csr_matrix, weight: np.ndarray, bins: np.ndarray, has_num: np.ndarray,
                 genre_hist: np.ndarray, all_hist: np.ndarray, feature_names: tuple[str, ...]):
        self.genres = genres
        self.per_track = np.asarray(genres.sum(axis=1)).ravel()
        self.weight = weight
        self.z = np.maximum(np.asarray(genres.T @ weight).ravel(), 1e-12)
        self.bins = bins
        self.has_num = has_num
        self.genre_hist = genre_hist
        self.all_hist = all_hist
        self.padded = _padded_columns(genres, PADDED_GENRES)
        self.feature_names = feature_names
        # each track's bin of each feature as a place in the flattened [d, N_BINS] tables: one gather per playlist
        d = bins.shape[1]
        self.flat_bins = (np.arange(d, dtype=np.int16)[None, :] * N_BINS + bins).astype(np.int16)

    @classmethod
    def build(cls, content, counts: np.ndarray) -> AudioTaste:
        cols = np.flatnonzero([str(v).startswith("g:") for v in content.vocab_])
        genres = (content.text_[:, cols] > 0).astype(np.float64).tocsr()
        weight = np.asarray(counts, np.float64) + COUNT_PRIOR
        # the same arithmetic in place, and the bins held as the table keeps them (int8) from the start: at 2.28 M
        # tracks the float copies and the int64 bins were 0.5 GiB for a moment
        x = content.numeric_ + SPAN
        x /= 2 * SPAN
        x *= N_BINS
        bins = x.astype(np.int64)
        del x
        np.clip(bins, 0, N_BINS - 1, out=bins)
        bins = bins.astype(np.int8)
        has_num = np.asarray(content.has_num_, bool)
        w = np.where(has_num, weight, 0.0)
        # one feature at a time: each track's weight in its bin, [n, N_BINS] with one entry a row (all features
        # in one [n, d * N_BINS] matrix held ~1.3 GiB for a moment at 2.28 M tracks; the sums run in the same
        # order, so the histograms are the same bit for bit)
        rows = np.arange(len(bins) + 1)
        genre_hist = np.empty((genres.shape[1], bins.shape[1], N_BINS))
        all_hist = np.empty((bins.shape[1], N_BINS))
        for j in range(bins.shape[1]):
            A = sparse.csr_matrix((w, bins[:, j], rows), shape=(len(bins), N_BINS))
            genre_hist[:, j, :] = np.asarray((genres.T @ A).todense())
            all_hist[j] = np.asarray(A.sum(axis=0)).ravel()
        return cls(genres, weight, bins, has_num, _normalize(_smooth(genre_hist)),
                   _normalize(_smooth(all_hist)), tuple(content.features))

    @staticmethod
    def feature_names_for(features) -> tuple[str, ...]:
        """The columns ``features`` returns for a content model over these audio features."""
        return ("taste", "taste_z", "audio_fit", *(f"fit_{f}" for f in features))

    @property
    def names(self) -> tuple[str, ...]:
        return self.feature_names_for(self.feature_names)

    def features(self, seed_rows: np.ndarray, candidate_rows: np.ndarray) -> dict[str, np.ndarray]:
        """Columns ``names`` for candidates (content-model rows, -1 unknown) of a playlist with these seed rows."""
        n = len(candidate_rows)
        out: dict[str, np.ndarray] = {}
        seed_rows = np.asarray(seed_rows, np.int64)
        seed_rows = seed_rows[seed_rows >= 0]
        ok = candidate_rows >= 0
        cand = candidate_rows[ok]
        tagged = seed_rows[self.per_track[seed_rows] > 0]
        share = None
        if len(tagged):
            share = self._genre_shares(tagged)
            share /= share.sum()
            taste = np.full(n, np.nan)
            taste[ok] = self.weight[cand] * self._genre_sums(cand, share / self.z)
            out["taste"], out["taste_z"] = taste, zscore(taste)
        sounding = seed_rows[self.has_num[seed_rows]]
        if len(sounding) and ok.any():
            ref = np.tensordot(share, self.genre_hist, axes=1) if share is not None else self.all_hist
            ref = np.maximum(ref, FLOOR)
            d = self.bins.shape[1]
            counts = np.zeros((d, N_BINS))
            np.add.at(counts, (np.tile(np.arange(d), len(sounding)), self.bins[sounding].astype(np.int64).ravel()), 1.0)
            seen = (_smooth(counts) + SHRINK * ref) / (len(sounding) + SHRINK)
            ratio = np.log(seen / ref)  # [d, N_BINS]
            num = ok.copy()
            num[ok] = self.has_num[cand]
            per = ratio.ravel()[self.flat_bins[candidate_rows[num]]]  # [m, d]: ratio[j, bin of feature j]
            fit = np.full((d + 1, n), np.nan)  # one array for the d columns and their sum (rows: contiguous)
            fit[:d, num] = per.T
            fit[d, num] = per.sum(axis=1)
            out.update({f"fit_{f}": fit[j] for j, f in enumerate(self.feature_names)}, audio_fit=fit[d])
        missing = np.full(n, np.nan)  # one read-only NaN column for every column not computed
        missing.flags.writeable = False
        return {k: out.get(k, missing) for k in self.names}

    def _genre_shares(self, rows: np.ndarray) -> np.ndarray:
        """Per genre, the sum over ``rows`` (in order) of ``1 / (the row's number of genres)`` where the row has it:
        what ``genres[rows].multiply(1 / per_track[rows][:, None]).sum(axis=0)`` gives, bit for bit (scipy adds the
        entries row after row, as ``bincount`` does), from the padded rows when there are (~0.03 ms against ~0.3 ms
        of sparse slicing for a 100-seed playlist)."""
        n_genres = self.genres.shape[1]
        if self.padded is None:
            return np.asarray(self.genres[rows].multiply(1.0 / self.per_track[rows][:, None]).sum(axis=0)).ravel()
        cols = self.padded[rows]  # the padding counts into an extra last bin, dropped
        weights = np.repeat(1.0 / self.per_track[rows], cols.shape[1])
        return np.bincount(cols.ravel(), weights=weights, minlength=n_genres + 1)[:n_genres]

    def _genre_sums(self, rows: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``self.genres[rows] @ v``: per row, the sum of ``v`` over its genres, added in the matrix's stored order
        as scipy adds them, from the padded rows when there are (a gather and a few additions instead of slicing
        the sparse matrix: ~0.05 ms against ~0.25 ms for 2,000 candidates)."""
        if self.padded is None:
            return self.genres[rows] @ v
        vals = np.append(v, 0.0)[self.padded[rows]]  # the padding points at the appended 0
        out = vals[:, 0].copy()
        for j in range(1, vals.shape[1]):
            out += vals[:, j]
        return out


def _padded_columns(m: sparse.csr_matrix, most: int) -> np.ndarray | None:
    """Each row's column indices in stored order, padded with ``m.shape[1]`` to the longest row (``[n_rows,
    width]``); ``None`` when a row has more than ``most`` entries, no row has any, or an entry is not 1 (the
    sums read the columns only)."""
    lengths = np.diff(m.indptr)
    width = int(lengths.max()) if len(lengths) else 0
    if width == 0 or width > most or not (m.data == 1.0).all():
        return None
    dtype = np.int16 if m.shape[1] < np.iinfo(np.int16).max else np.int32
    out = np.full((m.shape[0], width), m.shape[1], dtype)
    rows = np.repeat(np.arange(m.shape[0]), lengths)
    out[rows, np.arange(len(rows)) - np.repeat(m.indptr[:-1], lengths)] = m.indices
    return out


def _smooth(h: np.ndarray) -> np.ndarray:
    """Gaussian smoothing along the last axis (bins), edges renormalized."""
    k = np.arange(-4, 5)
    kernel = np.exp(-(k**2) / (2 * SMOOTH_BINS**2))
    flat = h.reshape(-1, h.shape[-1])
    out = np.stack([np.convolve(r, kernel, mode="same") for r in flat]) if len(flat) else flat
    norm = np.convolve(np.ones(h.shape[-1]), kernel, mode="same")
    return (out / norm).reshape(h.shape)


def _normalize(h: np.ndarray) -> np.ndarray:
    s = h.sum(axis=-1, keepdims=True)
    return np.where(s > 0, h / np.where(s > 0, s, 1.0), 1.0 / h.shape[-1])


class TasteSource(CandidateSource):
    """``AudioTaste.names`` features for the hybrid: from the content source and the hybrid's training counts.

    Parameters
    ----------
    content : ContentSource
    rows : ndarray of shape (n_ids,)
        Content-model row of every hybrid id (-1 where unknown).
    pop_log : ndarray of shape (n_known,)
        ``log1p`` of each training track's number of playlists (the hybrid's per-track table).
    """

    name = "taste"

    def __init__(self, content, rows: np.ndarray, pop_log: np.ndarray):
        self.content = content
        self.rows = rows
        self.pop_log = pop_log
        self._table = None

    def table(self) -> AudioTaste:
        """The tables, built on first use."""
        if self._table is None:
            counts = np.zeros(len(self.content.model.uris_))
            rows = self.rows[: len(self.pop_log)]
            counts[rows[rows >= 0]] = np.expm1(self.pop_log.astype(np.float64))[rows >= 0]
            self._table = AudioTaste.build(self.content.model, counts)
        return self._table

    def features(self, query: Query, candidates: Candidates) -> dict[str, np.ndarray]:
        return self.table().features(rows_of(self.content.model, query.seeds), self.rows[candidates.ids])
