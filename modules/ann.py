"""An inverted-file index over a catalog matrix: a query scores a few clusters of rows, not every row.

Serving scores every playlist against every track twice (the two-tower's candidate table, ALS's item factors). At
2.28 M tracks each scan reads 0.6-1.2 GB per query: ~140 ms a playlist. ``ClusterIndex`` groups the rows into
``nlist`` clusters (k-means in NumPy, seeded, Euclidean: assigning rows by inner product instead sends most of
them to the few longest centroids); a query ranks the clusters by its inner product with their centroids and
scores the rows of the ``nprobe`` best exactly. The rows are held once, in the index, as float16
(faiss' ``IndexIVFScalarQuantizer`` with ``QT_fp16``, not by residual: decoding gives back the float16 values
exactly, and the parts keep their vectors float16-rounded anyway), so a returned track's score is its exact float32
inner product (summed in faiss' order, within a float32 rounding of the exact scan's). What the index may miss is a
track of the exact top-N whose cluster was not probed: its recall is measured against the exact scan (docs/scale.md,
"Serving at 1M: latency"). The index also stands in for the matrix (``index[rows]``, ``np.asarray(index)``), so a
part with one keeps no other copy of its vectors. Catalogs below ``MIN_ROWS`` rows get no index and are scanned
exactly, as before. Everything is deterministic: a seeded sample and initialization, BLAS on one thread while
building, faiss on one thread, ties broken by row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from modules.errors import BundleError

log = logging.getLogger(__name__)

ANN_FORMAT = "ivf-fp16/1"
ANN_FILE = "ann.npz"  # in the part's folder (two_tower/, als/)
MIN_ROWS = 500_000  # catalogs with fewer rows are scanned exactly (the index is not built)
ROWS_PER_LIST = 1024  # default nlist: rows / ROWS_PER_LIST, a power of two
DEFAULT_PROBE_SHARE = 1 / 32  # default nprobe: this share of the lists
KMEANS_ITERATIONS = 10
KMEANS_SAMPLE_PER_LIST = 32  # k-means runs on a sample of this many rows per list (at most the whole matrix)
CHUNK = 1 << 14  # rows per assignment step while building (with 2,048 lists: 128 MiB of scores)


def _faiss():
    import faiss

    faiss.omp_set_num_threads(1)  # one query at a time, one thread: nothing depends on the machine's cores
    return faiss


def fingerprint(matrix) -> str:
    """What an index must match: the matrix's shape and a hash of every ~n/4096-th row as float16 (the parts
    keep their vectors float16-rounded, so the float32 and float16 copies of one matrix give the same)."""
    n = len(matrix)
    sample = np.ascontiguousarray(matrix[np.arange(0, n, max(1, n // 4096))], dtype=np.float16)
    h = hashlib.blake2b(repr((n, int(matrix.shape[1]))).encode(), digest_size=12)
    h.update(sample.tobytes())
    return h.hexdigest()


def default_nlist(n_rows: int) -> int:
    """``n_rows / ROWS_PER_LIST`` rounded down to a power of two (at least 1)."""
    return 1 << max(0, int(math.log2(max(1, n_rows // ROWS_PER_LIST))))


class ClusterIndex:
    """The rows of a matrix in ``nlist`` clusters, searchable by inner product and readable as the matrix.

    Build one with ``ClusterIndex.build(matrix)``; ``search(q, n)`` answers; ``index[rows]`` and
    ``np.asarray(index)`` give the rows back (float32)."""

    def __init__(self, index, nprobe: int, fingerprint: str, seed: int = 0):
        self.index = index
        self.nprobe = int(nprobe)
        self.fingerprint = fingerprint
        self.seed = int(seed)
        index.make_direct_map()  # index[rows]: a row's place in its list

    # -- the matrix it stands for --------------------------------------------------------------------------
    @property
    def nlist(self) -> int:
        return int(self.index.nlist)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.index.ntotal), int(self.index.d)

    dtype = np.dtype(np.float32)
    ndim = 2

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def __getitem__(self, rows) -> np.ndarray:
        """Rows (an int, an array of ints or a slice) as float32, exactly the float16 values the index holds."""
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(len(self)))
        rows = np.asarray(rows, np.int64)
        d = self.shape[1]
        out = self.index.reconstruct_batch(rows.ravel()) if rows.size else np.zeros((0, d), np.float32)
        return out.reshape(*rows.shape, d)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.index.reconstruct_n(0, len(self))
        return out if dtype is None else out.astype(dtype)

    def astype(self, dtype) -> np.ndarray:
        return np.asarray(self).astype(dtype)

    @property
    def centroids(self) -> np.ndarray:
        return self.index.quantizer.reconstruct_n(0, self.nlist)

    def list_sizes(self) -> np.ndarray:
        return np.array([self.index.invlists.list_size(c) for c in range(self.nlist)], np.int64)

    # -- building and searching ----------------------------------------------------------------------------
    @classmethod
    def build(cls, matrix, *, nlist: int | None = None, nprobe: int | None = None,
              seed: int = 0, iterations: int = KMEANS_ITERATIONS) -> ClusterIndex:
        """k-means (Euclidean) on a seeded sample of ``matrix``'s rows, then every row to its nearest centroid.
        ``nlist`` defaults to ``default_nlist``, ``nprobe`` to ``nlist / 32``."""
        from threadpoolctl import threadpool_limits

        faiss = _faiss()
        n, dim = matrix.shape
        nlist = default_nlist(n) if nlist is None else int(nlist)
        if not 1 <= nlist <= max(1, n):
            raise ValueError(f"nlist must be between 1 and the {n} rows; got {nlist}")
        nprobe = max(1, round(nlist * DEFAULT_PROBE_SHARE)) if nprobe is None else int(nprobe)
        if not 1 <= nprobe <= nlist:
            raise ValueError(f"nprobe must be between 1 and nlist ({nlist}); got {nprobe}")
        rng = np.random.default_rng(seed)
        with threadpool_limits(1, "blas"):  # one thread: the sums, hence the clusters, never depend on the machine
            m = min(n, nlist * KMEANS_SAMPLE_PER_LIST)
            sample = np.asarray(matrix[np.sort(rng.choice(n, m, replace=False))], np.float32)
            centroids = sample[np.sort(rng.choice(m, nlist, replace=False))].copy()
            for _ in range(iterations):
                centroids = _means(sample, _assign(sample, centroids), centroids)
            del sample
            quantizer = faiss.IndexFlatIP(dim)
            quantizer.add(centroids)
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                                  faiss.METRIC_INNER_PRODUCT)
            index.by_residual = False  # the codes are the rows themselves (float16), decoded exactly
            index.train(centroids)  # the fp16 quantizer has nothing to learn; the coarse one is given
            index.own_fields = False
            for a in range(0, n, CHUNK):
                x = np.ascontiguousarray(matrix[a:a + CHUNK], np.float32)
                assign = _assign(x, centroids)
                index.add_core(len(x), faiss.swig_ptr(x), None, faiss.swig_ptr(assign))
        out = cls(index, nprobe, fingerprint(matrix), seed)
        out._quantizer = quantizer  # the IVF index points at it without owning it
        return out

    def search(self, q: np.ndarray, n: int, exclude=None, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best rows of the probed clusters for query ``q`` (``exclude``'s rows left out) and their
        float32 scores, best first, ties by row: a function of ``q`` and the index only."""
        if n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        _faiss()
        exclude = np.zeros(0, np.int64) if exclude is None else np.unique(np.asarray(exclude, np.int64))
        self.index.nprobe = min(self.nprobe if nprobe is None else int(nprobe), self.nlist)
        m = min(int(n) + len(exclude) + 1, len(self))  # one more: a tie at the n-th place is seen
        scores, rows = self.index.search(np.asarray(q, np.float32).reshape(1, -1), m)
        scores, rows = scores[0], rows[0]
        keep = (rows >= 0) & ~np.isin(rows, exclude) & np.isfinite(scores)
        scores, rows = scores[keep], rows[keep]
        order = np.lexsort((rows, -scores))[:int(n)]
        return rows[order].astype(np.int64), scores[order].astype(np.float32)

    def check(self, matrix, where: str) -> None:
        """Raise ``BundleError`` unless this index was built from ``matrix``."""
        if self.shape != tuple(matrix.shape) or fingerprint(matrix) != self.fingerprint:
            raise BundleError(f"{where}: the index ({self.shape[0]} rows x {self.shape[1]}) was not built from this "
                              f"part's vectors ({matrix.shape[0]} x {matrix.shape[1]}); rebuild it with "
                              "`python -m modules bundle index BUNDLE --force`, or delete the file to scan exactly.")

    # -- the file ------------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``folder/ann.npz`` (through a temporary file: a reader never sees half of it)."""
        faiss = _faiss()
        path = Path(folder) / ANN_FILE
        meta = {"format": ANN_FORMAT, "nprobe": self.nprobe, "fingerprint": self.fingerprint, "seed": self.seed}
        tmp = path.with_name(f".{ANN_FILE}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, faiss=faiss.serialize_index(self.index), meta=np.array(json.dumps(meta, sort_keys=True)))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, folder: str | Path, matrix=None) -> ClusterIndex | None:
        """The index saved in ``folder`` (``None`` when there is none), checked against ``matrix`` if given."""
        path = Path(folder) / ANN_FILE
        if not path.exists():
            return None
        faiss = _faiss()
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != ANN_FORMAT:
                    raise BundleError(f"{path} holds index format {meta.get('format')!r}; this version reads "
                                      f"{ANN_FORMAT!r}: rebuild it with `python -m modules bundle index BUNDLE "
                                      "--force`.")
                index = cls(faiss.deserialize_index(z["faiss"]), int(meta["nprobe"]), str(meta["fingerprint"]),
                            int(meta.get("seed", 0)))
        except BundleError:
            raise
        except (KeyError, ValueError, OSError, RuntimeError) as err:
            raise BundleError(f"{path} is not an index this package wrote ({err}); rebuild it with "
                              "`python -m modules bundle index BUNDLE --force`.") from None
        if matrix is not None:
            index.check(matrix, str(path))
        return index


def ensure_index(matrix, current: ClusterIndex | None, min_rows: int | None = MIN_ROWS,
                 **build) -> ClusterIndex | None:
    """The index a part should hold for ``matrix``: ``current`` when it has one and ``build`` (``nlist``,
    ``nprobe``, ``seed`` of ``ClusterIndex.build``) asks for no other, or when ``matrix`` has fewer than
    ``min_rows`` rows (``None``: never build); otherwise one built from ``matrix``. The one rule ``save``,
    ``add_index`` and ``bundle index`` share, so a part is indexed, kept or rebuilt the same way by each."""
    if min_rows is None or len(matrix) < min_rows or (current is not None and not build):
        return current
    log.info("building the %d x %d index (%d lists)", len(matrix), matrix.shape[1],
             build.get("nlist") or default_nlist(len(matrix)))
    return ClusterIndex.build(np.asarray(matrix), **build)


def _assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Each row's nearest centroid (Euclidean; the first on a tie). Assigning by the largest inner product
    instead sends most rows to the few longest centroids (at 1M: 918 of 1,024 lists empty)."""
    half = 0.5 * np.einsum("ij,ij->i", centroids, centroids)
    return np.argmax(x @ centroids.T - half, axis=1).astype(np.int64)


def _means(x: np.ndarray, assign: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Each cluster's mean row (an empty cluster keeps its centroid)."""
    order = np.argsort(assign, kind="stable")
    counts = np.bincount(assign, minlength=len(old))
    full = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[full]
    out = old.astype(np.float64).copy()
    out[full] = np.add.reduceat(x[order].astype(np.float64), starts, axis=0) / counts[full, None]
    return out.astype(np.float32)
