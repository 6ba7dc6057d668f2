"""Playlists as transactions: the sparse 0/1 playlist × track matrix both miners start from.

A playlist is a transaction and its tracks are the items; ``load_transactions`` reads a ``PlaylistStore``'s
Parquet file straight into CSR (a million playlists in about 15 s) so that nothing above it needs pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy import sparse


@dataclass
class Transactions:
    """Playlists as a sparse 0/1 matrix: the input of both miners.

    ``matrix`` is CSR int32 of shape ``[n_playlists, n_tracks]`` (row ``i`` is ``pids[i]``, column ``j`` is
    ``track_uris[j]``, URIs sorted); a track listed twice in a playlist counts once. Playlists without tracks
    are kept as empty rows: they are transactions too and lower every support.
    """

    matrix: sparse.csr_matrix
    pids: np.ndarray
    track_uris: np.ndarray

    @property
    def n_playlists(self) -> int:
        return int(self.matrix.shape[0])

    @classmethod
    def from_lists(cls, playlists: list[list[str]], pids=None) -> Transactions:
        """Transactions from lists of track URIs (tests, notebooks, small examples)."""
        uris = np.array(sorted({u for pl in playlists for u in pl}), dtype=object)
        index = {u: i for i, u in enumerate(uris.tolist())}
        rows = np.repeat(np.arange(len(playlists)), [len(pl) for pl in playlists])
        cols = np.array([index[u] for pl in playlists for u in pl], dtype=np.int64)
        pids = np.arange(len(playlists)) if pids is None else np.asarray(pids)
        return cls(_binary_csr(rows, cols, (len(playlists), len(uris))), pids, uris)


def _binary_csr(rows, cols, shape) -> sparse.csr_matrix:
    m = sparse.coo_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=shape).tocsr()
    m.sum_duplicates()
    m.data[:] = 1
    return m


def load_transactions(store, pids=None) -> Transactions:
    """The playlists of a ``PlaylistStore`` (all, or those in ``pids``) as ``Transactions``.

    Reads ``playlist_tracks.parquet`` one row group at a time with Arrow dictionary encoding, so a million
    playlists (64 M entries) load in about 15 s and 1.5 GB, without one Python string per entry
    (``PlaylistStore.interactions`` makes a pandas string column of all entries: fine for small stores).
    """
    all_pids = np.sort(store.playlists["pid"].to_numpy().astype(np.int64))
    row_pids = all_pids if pids is None else np.intersect1d(all_pids, np.asarray(pids, dtype=np.int64))
    uris = store.tracks["track_uri"].to_numpy().astype(object)
    uri_array = pa.array(uris, pa.string())
    pf = pq.ParquetFile(store.path / "playlist_tracks.parquet", read_dictionary=["track_uri"])
    run_pids, run_lengths, col_parts = [], [], []
    batch = 64  # row groups (slices) read together; their dictionaries are unified and mapped once
    for g in range(0, pf.num_row_groups, batch):
        part = pf.read_row_groups(range(g, min(g + batch, pf.num_row_groups)), columns=["pid", "track_uri"])
        part = part.unify_dictionaries()
        pid_arr = part.column("pid").to_numpy()
        # the entries of one playlist are contiguous (ingest writes them so): one run per playlist
        starts = np.flatnonzero(np.r_[True, pid_arr[1:] != pid_arr[:-1]]) if len(pid_arr) else np.zeros(0, int)
        run_pids.append(pid_arr[starts])
        run_lengths.append(np.diff(np.r_[starts, len(pid_arr)]))
        mapping = None
        for chunk in part.column("track_uri").chunks:
            if mapping is None:
                mapping = pc.index_in(chunk.dictionary, value_set=uri_array).to_numpy().astype(np.int32)
            col_parts.append(mapping[chunk.indices.to_numpy()])
        del part
    run_pid = np.concatenate(run_pids) if run_pids else np.zeros(0, np.int64)
    length = np.concatenate(run_lengths).astype(np.int64) if run_lengths else np.zeros(0, np.int64)
    cols = np.concatenate(col_parts) if col_parts else np.zeros(0, np.int32)
    del col_parts
    pos = np.searchsorted(row_pids, run_pid)
    ok = (pos < len(row_pids)) & (row_pids[np.minimum(pos, max(len(row_pids) - 1, 0))] == run_pid) \
        if len(row_pids) else np.zeros(len(run_pid), bool)
    if not ok.all():
        cols = cols[np.repeat(ok, length)]
        pos, length = pos[ok], length[ok]
    shape = (len(row_pids), len(uris))
    if len(np.unique(pos)) != len(pos):  # a playlist in several runs: not written by ingest; take the slow path
        return Transactions(_binary_csr(np.repeat(pos, length), cols, shape), row_pids, uris)
    if np.any(np.diff(pos) < 0):  # runs out of pid order: move them into row order
        order = np.argsort(pos, kind="stable")
        run_start = np.r_[0, np.cumsum(length)[:-1]]
        new_start = np.r_[0, np.cumsum(length[order])[:-1]]
        cols = cols[np.repeat(run_start[order] - new_start, length[order]) + np.arange(len(cols))]
        pos, length = pos[order], length[order]
    per_row = np.zeros(len(row_pids), np.int64)
    per_row[pos] = length
    indptr = np.r_[0, np.cumsum(per_row)]
    m = sparse.csr_matrix((np.ones(len(cols), np.int32), cols, indptr), shape=shape)
    m.sum_duplicates()  # sorts each row; a track listed twice in a playlist counts once
    m.data[:] = 1
    return Transactions(m, row_pids, uris)


def _as_transactions(data, pids=None) -> Transactions:
    if isinstance(data, Transactions):
        return data
    if isinstance(data, (str, Path)):
        from modules.store import open_store

        data = open_store(data)
    return load_transactions(data, pids)
