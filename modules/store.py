"""The playlist store: MPD slices ingested once into Parquet, read fast by every later stage.

Layout of a store directory::

    store.json            format, source files and sizes, fingerprint, counts
    playlists.parquet     pid, name, collaborative, modified_at, num_* fields, duration_ms, description
    playlist_tracks.parquet   pid, pos, track_uri (one row per playlist entry, in slice order)
    tracks.parquet        track_uri, track_name, artist_uri, artist_name, album_uri, album_name,
                          duration_ms, count (number of playlist entries)

Ingest streams slice by slice: playlist rows go to Parquet as each slice is read; only the table of unique
tracks grows with the data (it is bounded by the catalog, not by the number of slices). The store is
written to a temporary sibling directory and renamed into place at the end, so a failure leaves either the
previous store or nothing.

Read back, the entries are held compactly (``PlaylistStore.playlist_tracks``): ``track_uri`` as a categorical
over the tracks table's URIs, so its codes are rows of ``tracks`` and no entry holds a string of its own.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy import sparse
from tqdm import tqdm

from modules import __version__
from modules.atomic import FolderKind, atomic_directory, check_output_folder
from modules.errors import StoreError
from modules.mpd import find_slices, read_slices

log = logging.getLogger(__name__)

STORE_FORMAT = "playlist-store/1"
MANIFEST = "store.json"
STORE_KIND = FolderKind("playlist store", MANIFEST, "playlist-store/")

PLAYLIST_SCHEMA = pa.schema([
    ("pid", pa.int64()), ("name", pa.string()), ("collaborative", pa.bool_()), ("modified_at", pa.int64()),
    ("num_tracks", pa.int32()), ("num_albums", pa.int32()), ("num_followers", pa.int32()),
    ("num_edits", pa.int32()), ("duration_ms", pa.int64()), ("num_artists", pa.int32()),
    ("description", pa.string()),
])
ENTRY_SCHEMA = pa.schema([("pid", pa.int64()), ("pos", pa.int32()), ("track_uri", pa.string())])
TRACK_COLUMNS = ("track_name", "artist_uri", "artist_name", "album_uri", "album_name", "duration_ms")


def _int(v, default=0):
    try:
        return int(v) if v is not None else default
    except (TypeError, ValueError):
        return default


def _playlist_row(pl: dict) -> tuple:
    """The values of one validated playlist in ``PLAYLIST_SCHEMA`` order (``num_tracks`` recounted; missing
    counts filled from its tracks). Shared with the Spark ingest, so both write the same rows."""
    tr = pl["tracks"]
    return (pl["pid"], pl.get("name"), str(pl.get("collaborative", "false")).lower() == "true",
            _int(pl.get("modified_at")), len(tr), _int(pl.get("num_albums"), len({t["album_uri"] for t in tr})),
            _int(pl.get("num_followers"), 1), _int(pl.get("num_edits"), 1), _int(pl.get("duration_ms")),
            _int(pl.get("num_artists"), len({t["artist_uri"] for t in tr})), pl.get("description"))


def _track_row(t: dict) -> tuple:
    """The ``TRACK_COLUMNS`` values of one validated track (its first entry's are the ones a store keeps)."""
    return (str(t.get("track_name") or ""), t["artist_uri"], str(t.get("artist_name") or ""), t["album_uri"],
            str(t.get("album_name") or ""), _int(t.get("duration_ms")))


def _slice_columns(playlists: list[dict], tracks: dict) -> tuple[pa.Table, pa.Table, list[str]]:
    """Columns of one validated slice; new tracks are added to ``tracks``.

    Returns the playlists table, the entries table and the entries' track URIs (for counting).
    """
    rows = [_playlist_row(pl) for pl in playlists]
    e_pid, e_pos, e_uri = [], [], []
    for pl in playlists:
        pid = pl["pid"]
        tr = pl["tracks"]
        n = len(tr)
        e_pid.extend([pid] * n)
        e_pos.extend(range(n))  # order in the file is the playlist order, whatever `pos` says
        for t in tr:
            uri = t["track_uri"]
            e_uri.append(uri)
            if uri not in tracks:
                tracks[uri] = _track_row(t)
    columns = list(zip(*rows)) if rows else [[] for _ in PLAYLIST_SCHEMA.names]
    ptab = pa.table(dict(zip(PLAYLIST_SCHEMA.names, map(list, columns))), schema=PLAYLIST_SCHEMA)
    etab = pa.table({"pid": e_pid, "pos": e_pos, "track_uri": e_uri}, schema=ENTRY_SCHEMA)
    return ptab, etab, e_uri


def _fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.name}\0{st.st_size}\0".encode())
        with open(f, "rb") as fh:  # head and tail: cheap, and catches edits that keep the size
            h.update(fh.read(65536))
            if st.st_size > 65536:
                fh.seek(-65536, os.SEEK_END)
                h.update(fh.read(65536))
    return h.hexdigest()[:16]


def ingest(mpd_path: str | Path, out: str | Path, *, show_progress: bool = True) -> dict:
    """Ingest every ``mpd.slice.*.json`` under ``mpd_path`` (or one slice file) into a store at ``out``.

    Returns the summary written into ``store.json`` (counts, seconds, MB/s).

    Raises
    ------
    MPDFormatError
        For malformed slices (a bad field, a pid seen twice, no playlists at all), naming the file, playlist
        and field; ``out`` is left as it was.
    OutputError
        When ``out`` exists and is neither empty nor a store, or overlaps ``mpd_path`` (nothing is written).
    """
    t0 = time.perf_counter()
    files = find_slices(mpd_path)
    out = check_output_folder(out, STORE_KIND, inputs=[mpd_path])
    tracks: dict[str, tuple] = {}
    counts: Counter = Counter()
    n_playlists = n_entries = n_bytes = 0
    with atomic_directory(out) as tmp:
        pw = pq.ParquetWriter(tmp / "playlists.parquet", PLAYLIST_SCHEMA)
        ew = pq.ParquetWriter(tmp / "playlist_tracks.parquet", ENTRY_SCHEMA, use_dictionary=["track_uri"])
        bar = tqdm(read_slices(mpd_path), total=len(files), unit="slice", desc="ingest",
                   disable=not show_progress or len(files) < 2)
        for f, _, playlists in bar:
            n_bytes += f.stat().st_size
            ptab, etab, uris = _slice_columns(playlists, tracks)
            counts.update(uris)
            pw.write_table(ptab)
            ew.write_table(etab)
            n_playlists += ptab.num_rows
            n_entries += len(uris)
            bar.set_postfix(playlists=n_playlists)
        pw.close()
        ew.close()
        uris = sorted(tracks)
        tcols = list(zip(*(tracks[u] for u in uris))) if uris else [[] for _ in TRACK_COLUMNS]
        ttab = pa.table({"track_uri": uris, **{c: list(v) for c, v in zip(TRACK_COLUMNS, tcols)},
                         "count": [counts[u] for u in uris]})
        pq.write_table(ttab, tmp / "tracks.parquet")
        seconds = time.perf_counter() - t0
        summary = {
            "format": STORE_FORMAT, "created_with": __version__, "fingerprint": _fingerprint(files),
            "source": [{"file": f.name, "bytes": f.stat().st_size} for f in files],
            "playlists": n_playlists, "tracks": n_entries, "unique_tracks": len(uris),
            "unique_artists": len(set(ttab.column("artist_uri").to_pylist())),
            "unique_albums": len(set(ttab.column("album_uri").to_pylist())),
            "seconds": round(seconds, 3), "mb_per_s": round(n_bytes / 1e6 / max(seconds, 1e-9), 1),
            "json_bytes": n_bytes,
        }
        (tmp / MANIFEST).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return summary


@dataclass
class Interactions:
    """Playlists × tracks as a sparse 0/1 matrix with its index maps.

    ``matrix`` is CSR float32 of shape ``[n_playlists, n_tracks]``; row ``i`` is ``pids[i]``, column ``j`` is
    ``track_uris[j]`` (sorted, so the same data always gives the same columns).
    """

    matrix: sparse.csr_matrix
    pids: np.ndarray
    track_uris: np.ndarray

    @cached_property
    def track_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.track_uris.tolist())}


class PlaylistStore:
    """Read access to a store written by ``ingest``; tables load lazily as pandas frames."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.exists():
            raise StoreError(f"{self.path} is not a playlist store (no {MANIFEST}); "
                             f"create one with: python -m modules ingest MPD_DIR --out {self.path}")
        self.manifest = orjson.loads(manifest.read_bytes())
        if self.manifest.get("format") != STORE_FORMAT:
            raise StoreError(f"{self.path} has store format {self.manifest.get('format')!r}, this code reads "
                             f"{STORE_FORMAT!r}; re-run ingest.")

    @cached_property
    def playlists(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "playlists.parquet")

    @cached_property
    def playlist_tracks(self) -> pd.DataFrame:
        """One row per playlist entry (``pid``, ``pos``, ``track_uri``) in slice order, compact: ``track_uri`` is a
        categorical whose categories are ``tracks["track_uri"]`` (``.cat.codes`` are rows of ``tracks``), ``pid``
        int32 and ``pos`` int16 when their values fit. About 10 bytes an entry instead of the 56 of string
        columns (docs/scale.md, "The store's entries in memory")."""
        uris = self.__dict__["tracks"]["track_uri"] if "tracks" in self.__dict__ else pq.read_table(
            self.path / "tracks.parquet", columns=["track_uri"]).column(0)
        return read_entries(self.path / "playlist_tracks.parquet", uris)

    @cached_property
    def tracks(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "tracks.parquet")

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    def interactions(self, pids=None) -> Interactions:
        """The playlist × track matrix, over all tracks of the store, for all playlists or the given pids."""
        entries = self.playlist_tracks
        uris = self.tracks["track_uri"].to_numpy()
        if pids is not None:
            entries = entries.loc[entries["pid"].isin(np.asarray(pids))]
        row_pids, rows = np.unique(entries["pid"].to_numpy(), return_inverse=True)
        cols = entries["track_uri"].cat.codes.to_numpy()  # rows of ``tracks``: its columns, no string looked up
        m = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(row_pids), len(uris)))
        m.sum_duplicates()
        m.data[:] = 1.0
        return Interactions(m, row_pids.astype(np.int64), uris)

    def stats(self) -> dict:
        """Dataset statistics comparable with the MPD's published ``stats.txt``."""
        pl, tr = self.playlists, self.tracks
        lengths = pl["num_tracks"].to_numpy()
        names = pl["name"].fillna("")
        normalized = names.str.lower().str.replace(r"[^\w\s]", "", regex=True).str.split().str.join(" ")
        counts = tr["count"].to_numpy()
        return {
            "playlists": int(len(pl)),
            "tracks": int(lengths.sum()),
            "unique_tracks": int(len(tr)),
            "unique_albums": int(tr["album_uri"].nunique()),
            "unique_artists": int(tr["artist_uri"].nunique()),
            "unique_titles": int(names.nunique()),
            "unique_normalized_titles": int(normalized.nunique()),
            "playlists_with_descriptions": int(pl["description"].notna().sum()),
            "avg_playlist_length": float(lengths.mean()) if len(lengths) else 0.0,
            "median_playlist_length": float(np.median(lengths)) if len(lengths) else 0.0,
            "avg_artists_per_playlist": float(pl["num_artists"].mean()) if len(pl) else 0.0,
            "avg_albums_per_playlist": float(pl["num_albums"].mean()) if len(pl) else 0.0,
            "share_tracks_seen_once": float((counts == 1).mean()) if len(counts) else 0.0,
            "share_entries_top_1pct_tracks": _top_share(counts, 0.01),
            "top_track_share": float(counts.max() / len(pl)) if len(counts) and len(pl) else 0.0,
            "top_titles": normalized.value_counts().head(20).to_dict(),
        }


# entries are read a bunch of row groups at a time: a bunch's dictionaries (one per row group, i.e. per slice) are
# unified and looked up among the store's track URIs at once; the look-up costs about the size of the tracks
# table, so a bunch is large, and the bunch's strings are the only ones held while reading
ENTRY_BUNCH = 1 << 22


def _narrowest(values: np.ndarray, dtypes) -> np.dtype:
    """The first of ``dtypes`` that holds every value (the last one otherwise)."""
    lo, hi = (int(values.min()), int(values.max())) if len(values) else (0, 0)
    for dt in dtypes:
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return np.dtype(dtypes[-1])


def read_entries(path: str | Path, uris) -> pd.DataFrame:
    """``playlist_tracks.parquet`` as ``PlaylistStore.playlist_tracks`` holds it: ``track_uri`` a categorical over
    ``uris`` (the tracks table's URIs, unique), ``pid`` int32 and ``pos`` int16 where the values fit.

    The strings are never materialized: each bunch of row groups is read dictionary-encoded and only its
    dictionary is looked up in ``uris``, so memory holds the final columns plus one bunch.

    Raises ``StoreError`` when an entry's track is not among ``uris`` or ``uris`` lists one twice (a store whose
    files do not belong together).
    """
    path = Path(path)
    pf = pq.ParquetFile(path, read_dictionary=["track_uri"])
    n = pf.metadata.num_rows
    value_set = uris if isinstance(uris, pa.Array | pa.ChunkedArray) else pa.array(uris)
    if isinstance(value_set, pa.ChunkedArray):
        value_set = value_set.combine_chunks()
    value_set = value_set.cast(pa.string())
    # a store's tracks are sorted (``ingest``), hence unique, which is quick to see; others are counted
    if not (len(value_set) < 2 or pc.all(pc.less(value_set[:-1], value_set[1:])).as_py()
            or pc.count_distinct(value_set).as_py() == len(value_set)):
        raise StoreError(f"{path.parent / 'tracks.parquet'} lists a track URI twice; re-run ingest.")
    columns = {"pid": np.empty(n, np.int32), "pos": np.empty(n, np.int16),
               "track_uri": np.empty(n, np.int32)}
    at, bunch, size = 0, [], 0
    groups = list(range(pf.metadata.num_row_groups))
    for g in groups:
        bunch.append(g)
        size += pf.metadata.row_group(g).num_rows
        if size < ENTRY_BUNCH and g != groups[-1]:
            continue
        table = pf.read_row_groups(bunch).unify_dictionaries()
        k = table.num_rows
        uri = table.column("track_uri")
        codes = np.zeros(0, np.int32)
        if uri.num_chunks:
            found = pc.index_in(uri.chunk(0).dictionary, value_set=value_set)
            if found.null_count:
                missing = uri.chunk(0).dictionary.filter(found.is_null())[0].as_py()
                raise StoreError(f"{path} holds entries of tracks missing from tracks.parquet (e.g. {missing}); "
                                 "the store's files do not belong together: re-run ingest.")
            lookup = found.to_numpy().astype(np.int32)
            codes = np.concatenate([lookup[c.indices.to_numpy(zero_copy_only=False)] for c in uri.chunks])
        for name, values in (("pid", table.column("pid").to_numpy()), ("pos", table.column("pos").to_numpy()),
                             ("track_uri", codes)):
            col = columns[name]
            dt = _narrowest(values, (col.dtype, np.int32, np.int64))
            if dt.itemsize > col.itemsize:  # a value the compact type cannot hold: widen the whole column
                columns[name] = col = col.astype(dt)
            col[at:at + k] = values
        at += k
        bunch, size = [], 0
    categories = pd.Index(value_set.to_pandas())
    try:  # uniqueness is checked above, in Arrow: pandas' own check would keep a hash table of every URI
        dtype = pd.CategoricalDtype._from_fastpath(categories, ordered=False)
    except AttributeError:  # a pandas without it: the public path
        dtype = pd.CategoricalDtype(categories, ordered=False)
    track_uri = pd.Categorical.from_codes(columns.pop("track_uri"), dtype=dtype, validate=False)
    pa.default_memory_pool().release_unused()  # the bunches' buffers: Arrow's pool would keep them resident
    return pd.DataFrame({**columns, "track_uri": track_uri}, copy=False)


def _top_share(counts: np.ndarray, frac: float) -> float:
    if len(counts) == 0:
        return 0.0
    k = max(1, int(len(counts) * frac))
    return float(np.sort(counts)[::-1][:k].sum() / counts.sum())


_TEMP_STORES: list[Path] = []


def open_store(path: str | Path, *, show_progress: bool = False) -> PlaylistStore:
    """A store from a store directory, or from MPD slices (ingested into a temporary store for this process).

    Raises ``StoreError`` for a store without playlists, and what ``ingest`` raises for slices.
    """
    path = Path(path)
    if (path / MANIFEST).exists():
        store = PlaylistStore(path)
        if store.manifest.get("playlists") == 0:  # ingest refuses this now; a store made before could hold none
            raise StoreError(f"{path} holds no playlists; re-run ingest on slices that hold playlists: "
                             f"python -m modules ingest MPD_DIR --out {path}")
        return store
    tmp = Path(tempfile.mkdtemp(prefix="playlist-store-"))
    if not _TEMP_STORES:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _TEMP_STORES])
    _TEMP_STORES.append(tmp)
    ingest(path, tmp / "store", show_progress=show_progress)
    return PlaylistStore(tmp / "store")
