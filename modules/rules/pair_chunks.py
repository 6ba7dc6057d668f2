"""Pair counts in chunks of playlists, spilled to disk and merged: memory bounded by the chunk, not by the pairs.

The in-memory pair count (``sparse_miner._pair_counts``: ``X_Fᵀ X_F`` in column blocks) keeps every frequent
pair it finds, so at a low minimum count on MPD-sized data (tens of millions of entries, millions of tracks, most
pairs seen once or twice) its table, not the data, decides the memory. Here instead:

1. **Chunks.** The playlists are cut into consecutive chunks of at most ``chunk_pairs`` pair occurrences
   (``Σ L (L - 1) / 2`` over the chunk's playlists, ``L`` their frequent tracks). Every pair ``a < b`` of each
   playlist is listed (by playlist length: one gather per length) and counted into an upper-triangular CSR
   matrix (``scipy.sparse`` sums the duplicates); its rows ``a`` and sorted columns ``b`` are the pair keys in
   order. It is written to a temporary folder as one raw file (row pointers, columns, counts as ``uint16`` while
   a chunk has fewer than 65,536 playlists).
2. **Merge.** The chunks' files are read back (``os.pread``, not memory maps: mapped pages would count as this
   process's resident memory, up to the whole spill) by ranges of rows ``a`` holding about ``merge_entries``
   entries in all (default a quarter of ``chunk_pairs``; the row sizes of every chunk are summed as they are
   written); each range is summed over the chunks (one sparse COO → CSR) and only its pairs that reach
   ``minsup`` are kept.

The minimum count applies after the merge, since a pair's count is split across chunks; the tracks below it are
dropped before (the caller passes only frequent tracks' columns): a pair is never in more playlists than either
of its tracks. Counts are integers, so the result is the in-memory count exactly, whatever the chunk size.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scipy import sparse
from tqdm import tqdm

from modules.errors import RulesError

log = logging.getLogger(__name__)

# Pair occurrences counted per chunk: about 30 bytes each at the chunk's peak (the listed pairs, then the CSR
# matrix that sums them), so ≈ 0.5 GB. The merge reads a quarter as many entries at a time (each costs more: the
# summed pairs as int64, then the caller's float64 metrics on them).
DEFAULT_CHUNK_PAIRS = 1 << 24
MERGE_SHARE = 4
# ``chunk_pairs=None`` (auto) counts in memory while the frequent pairs are bounded by this (occurrences /
# minimum count: a frequent pair takes at least ``minsup`` of them; ≈ 40 bytes a pair in memory, so ≤ 0.7 GB),
# and in chunks above it.
IN_MEMORY_PAIRS = 1 << 24


def pair_occurrences(row_lengths: np.ndarray) -> int:
    """``Σ L (L - 1) / 2``: the pairs listed by counting playlists of these lengths (an upper bound on the
    distinct pairs)."""
    lens = np.asarray(row_lengths, np.int64)
    return int((lens * (lens - 1) // 2).sum())


def choose_chunk(row_lengths: np.ndarray, minsup: int, chunk_pairs: int | None) -> int:
    """The chunk size to count with: 0 (in memory) or pair occurrences per chunk.

    ``chunk_pairs`` None is auto: in memory when the frequent pairs cannot exceed ``IN_MEMORY_PAIRS`` (pair
    occurrences / ``minsup``), else chunks of ``DEFAULT_CHUNK_PAIRS``; 0 forces memory, a positive number chunks
    of that size."""
    if chunk_pairs is not None:
        return int(chunk_pairs)
    bound = pair_occurrences(row_lengths) / max(int(minsup), 1)
    return 0 if bound <= IN_MEMORY_PAIRS else DEFAULT_CHUNK_PAIRS


def chunk_bounds(row_lengths: np.ndarray, chunk_pairs: int) -> np.ndarray:
    """Row boundaries ``[0, ..., n]`` of consecutive chunks of at most ``chunk_pairs`` pair occurrences each (a
    playlist with more gets a chunk of its own)."""
    lens = np.asarray(row_lengths, np.int64)
    cum = np.cumsum(lens * (lens - 1) // 2)
    bounds, start, n = [0], 0, len(lens)
    while start < n:
        base = cum[start - 1] if start else 0
        end = int(np.searchsorted(cum, base + chunk_pairs, side="right"))
        end = min(n, max(end, start + 1))
        bounds.append(end)
        start = end
    return np.asarray(bounds, np.int64)


def _listed_pairs(indptr: np.ndarray, indices: np.ndarray, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``(a, b)``, ``a < b``, of the playlists ``r0 .. r1 - 1`` (columns sorted within each row), one
    gather per playlist length, written into two preallocated arrays."""
    lens = np.diff(indptr[r0:r1 + 1])
    starts = indptr[r0:r1]
    a = np.empty(pair_occurrences(lens), indices.dtype)
    b = np.empty(len(a), indices.dtype)
    at = 0
    for length in np.unique(lens[lens >= 2]).tolist():
        s = starts[lens == length].astype(np.int64)[:, None]
        iu, ju = np.triu_indices(length, 1)
        k = len(s) * len(iu)
        a[at:at + k] = indices[(s + iu).ravel()]
        b[at:at + k] = indices[(s + ju).ravel()]
        at += k
    return a, b


class _Run:
    """One chunk's counts on disk: a raw file of its row pointers (int64, ``n_items + 1``), columns (int32) and
    counts (``uint16`` or int32), read back by ranges with ``os.pread``: no memory map, so the pages read are the
    page cache's, not this process's resident memory."""

    def __init__(self, path: Path, counts: sparse.csr_matrix, data_dtype):
        self.path, self.nnz, self.data_dtype = path, int(counts.nnz), np.dtype(data_dtype)
        self.n_ptr = len(counts.indptr)
        with open(path, "wb") as fh:
            for arr in (counts.indptr.astype(np.int64), counts.indices.astype(np.int32),
                        counts.data.astype(self.data_dtype)):
                fh.write(arr.tobytes())
        self.bytes = path.stat().st_size
        self.fd: int | None = None

    def _read(self, offset: int, dtype, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        buf = os.pread(self.fd, dtype.itemsize * count, offset)
        return np.frombuffer(buf, dtype, count)

    def rows(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row pointers (from 0), columns and counts of rows ``r0 .. r1 - 1``."""
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDONLY)
        ptr = self._read(8 * r0, np.int64, r1 - r0 + 1)
        lo, hi = int(ptr[0]), int(ptr[-1])
        cols = self._read(8 * self.n_ptr + 4 * lo, np.int32, hi - lo)
        vals = self._read(8 * self.n_ptr + 4 * self.nnz + self.data_dtype.itemsize * lo, self.data_dtype, hi - lo)
        return ptr - lo, cols, vals

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Spill:
    """The chunks' sorted partial counts in a temporary folder (deleted on ``close``)."""

    def __init__(self, n_items: int, spill_dir=None):
        self.n_items = n_items
        self.dir = Path(tempfile.mkdtemp(prefix="rule-pairs-", dir=spill_dir))
        self.runs: list[_Run] = []
        self.row_entries = np.zeros(n_items, np.int64)  # entries of each row a, summed over the chunks
        self.bytes = 0

    def write(self, counts: sparse.csr_matrix, max_count: int) -> None:
        try:
            run = _Run(self.dir / f"chunk-{len(self.runs):05d}.bin", counts,
                       np.uint16 if max_count < 1 << 16 else np.int32)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            # hours into a train, a bare ENOSPC names neither the folder nor the way out
            raise RulesError(
                f"the pair counts spilled to {self.dir} filled its disk after {len(self.runs)} chunks "
                f"({self.bytes / 2**30:.1f} GiB written; the folder is removed). Free space there, or spill to a "
                "larger disk: `rules --spill-dir DIR`, or the TMPDIR environment variable for `train` (a million "
                "MPD-shaped playlists spill ~22 GiB; docs/rules.md)") from e
        self.runs.append(run)
        self.bytes += run.bytes
        self.row_entries += np.diff(counts.indptr)

    def merged(self, minsup: int, merge_entries: int, show_progress: bool = False
               ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(a, b, count)`` of the pairs with ``count >= minsup``, summed over the chunks, in key order, by
        ranges of rows of about ``merge_entries`` entries."""
        cum = np.cumsum(self.row_entries)
        total = int(cum[-1]) if len(cum) else 0
        bar = tqdm(total=total, desc="merge pairs", unit="entry", unit_scale=True, disable=not show_progress,
                   mininterval=1.0)
        r0 = 0
        while r0 < self.n_items:
            done = int(cum[r0 - 1]) if r0 else 0
            r1 = min(self.n_items, max(r0 + 1, int(np.searchsorted(cum, done + merge_entries, side="right"))))
            if cum[r1 - 1] > done:
                yield self._sum_rows(r0, r1, minsup)
                bar.update(int(cum[r1 - 1]) - done)
            r0 = r1
        bar.close()

    def _sum_rows(self, r0: int, r1: int, minsup: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ptrs, cols, vals = [], [], []
        for run in self.runs:
            ptr, c, v = run.rows(r0, r1)
            if len(c):
                ptrs.append(ptr)
                cols.append(c)
                vals.append(v.astype(np.int32))
        shape = (r1 - r0, self.n_items)
        if len(ptrs) == 1:  # one chunk holds this range: already sorted and summed
            m = sparse.csr_matrix((vals[0], cols[0], ptrs[0]), shape=shape)
        else:
            rows = np.concatenate([np.repeat(np.arange(r1 - r0, dtype=np.int32), np.diff(p)) for p in ptrs])
            m = sparse.coo_matrix((np.concatenate(vals), (rows, np.concatenate(cols))), shape=shape).tocsr()
            del rows, cols, vals
            m.sum_duplicates()  # canonical: each row's columns sorted, each pair once
        hit = np.flatnonzero(m.data >= minsup)
        a = np.searchsorted(m.indptr, hit, side="right").astype(np.int64) - 1 + r0
        return a, m.indices[hit].astype(np.int64), m.data[hit].astype(np.int64)

    def close(self) -> None:
        for run in self.runs:
            run.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def chunked_pair_counts(xf_csr: sparse.csr_matrix, minsup: int, chunk_pairs: int = DEFAULT_CHUNK_PAIRS, *,
                        merge_entries: int | None = None, spill_dir=None, show_progress: bool = False
                        ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The pairs ``(a, b, count)`` (columns of ``xf_csr``, ``a < b``, ``count >= minsup``) of the playlists
    (rows of ``xf_csr``), counted in chunks of ``chunk_pairs`` pair occurrences, spilled to a temporary folder
    in ``spill_dir`` (default: the system's) and merged; yielded in blocks, in ``(a, b)`` order. The folder is
    deleted when the generator ends or is closed."""
    if chunk_pairs < 1:
        raise ValueError(f"chunk_pairs must be positive (got {chunk_pairs})")
    t0 = time.perf_counter()
    xf = xf_csr if xf_csr.has_sorted_indices else xf_csr.sorted_indices()
    n, n1 = xf.shape
    row_lengths = np.diff(xf.indptr)
    bounds = chunk_bounds(row_lengths, chunk_pairs)
    spill = _Spill(n1, spill_dir)
    try:
        listed = 0
        for r0, r1 in tqdm(list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)), desc="pair chunks",
                           unit="chunk", disable=not show_progress, mininterval=1.0):
            a, b = _listed_pairs(xf.indptr, xf.indices, r0, r1)
            listed += len(a)
            counts = sparse.coo_matrix((np.ones(len(a), np.int32), (a, b)), shape=(n1, n1)).tocsr()
            del a, b
            counts.sum_duplicates()
            spill.write(counts, max_count=r1 - r0)
            del counts
        spilled = int(spill.row_entries.sum())
        log.info("pairs: %d playlists in %d chunks of <= %d pair occurrences (%d listed), %d partial counts "
                 "spilled (%.0f MiB in %s) in %.1f s", n, len(bounds) - 1, chunk_pairs, listed, spilled,
                 spill.bytes / 2**20, spill.dir, time.perf_counter() - t0)
        t1 = time.perf_counter()
        kept = 0
        for block in spill.merged(minsup, merge_entries or max(1, chunk_pairs // MERGE_SHARE), show_progress):
            kept += len(block[2])
            yield block
        log.info("pairs: merged %d partial counts into %d pairs of count >= %d in %.1f s", spilled, kept, minsup,
                 time.perf_counter() - t1)
    finally:
        spill.close()
