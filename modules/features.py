"""The song feature store: one SQLite file (WAL mode) keyed by track URI.

It holds, per track, the audio features, genres, popularity, names, album-art URL, where the row came from and
when. The original prototype kept these in a CSV read whole on every start; here a bulk import fills a table
once and every later stage (content model, Spotify cache, the app) looks rows up by URI.

Why SQLite in WAL mode (measurements in docs/content.md, ``benchmarks/features_bench.py``):

* many readers and one writer at a time, across processes: in WAL mode readers never block the writer and
  the writer never blocks readers, which is exactly the app (reading) beside a training run or the Spotify
  cache (writing). Writers take the lock up front (``BEGIN IMMEDIATE``) and wait up to ``timeout`` seconds
  for each other, so "database is locked" does not reach the caller under normal contention;
* small incremental writes (50 tracks of Spotify metadata at a time) are cheap, where a Parquet file would
  be rewritten whole;
* it is in the standard library, and a transaction makes an import all-or-nothing: a killed import leaves
  the previous content readable, and rerunning it completes it.

Readers get ``get_many(uris)``: a frame in the order asked, with a ``found`` column instead of errors for
unknown URIs.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from tqdm import tqdm

from modules.catalog import AUDIO_FEATURES
from modules.errors import FeatureStoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION = "feature-store/1"

# Numeric audio features (the catalog's 12 plus the duration), as stored.
FEATURE_COLUMNS: tuple[str, ...] = (*AUDIO_FEATURES, "duration_ms")
INT_COLUMNS = ("key", "mode", "time_signature", "duration_ms", "popularity", "explicit")
NAME_COLUMNS = ("track_name", "artist_name", "artists", "album_name", "artist_uri", "album_uri")
# Columns a catalog import writes (besides track_uri, source and fetched_at).
CATALOG_COLUMNS: tuple[str, ...] = (*NAME_COLUMNS, "genres", "popularity", "explicit", *FEATURE_COLUMNS)
# Every column of the ``tracks`` table, in order.
COLUMNS: tuple[str, ...] = ("track_uri", *CATALOG_COLUMNS, "album_art_url", "source", "fetched_at",
                            "meta_fetched_at")
_SQL_TYPES = {c: "INTEGER" for c in INT_COLUMNS} | {c: "REAL" for c in FEATURE_COLUMNS if c not in INT_COLUMNS} | {
    "fetched_at": "REAL", "meta_fetched_at": "REAL"}
# Columns the Spotify /tracks metadata refreshes (names, popularity, art); URIs only fill gaps, because the
# catalog's artist/album URIs are the ones the playlists use.
META_COLUMNS = ("track_name", "artist_name", "artists", "album_name", "popularity", "explicit", "duration_ms",
                "album_art_url")


_NUMERIC = {*FEATURE_COLUMNS, *INT_COLUMNS, "fetched_at", "meta_fetched_at"}
_NUM_COLS = [c for c in COLUMNS[1:] if c in _NUMERIC]
_OBJ_COLS = [c for c in COLUMNS[1:] if c not in _NUMERIC]
_NUM_INDEX = {c: i for i, c in enumerate(_NUM_COLS)}
_OBJ_INDEX = {c: i for i, c in enumerate(_OBJ_COLS)}


def _ddl() -> str:
    cols = ",\n  ".join(f"{c} {_SQL_TYPES.get(c, 'TEXT')}" + (" PRIMARY KEY" if c == "track_uri" else "")
                        for c in COLUMNS)
    return (f"CREATE TABLE IF NOT EXISTS tracks (\n  {cols}\n) WITHOUT ROWID;\n"
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);\n")


class FeatureStore:
    """Song features on disk, keyed by track URI (SQLite, WAL mode).

    Safe to share between threads (one connection per thread) and processes (WAL: readers see the last
    committed state while one writer writes; writers queue for up to ``timeout`` seconds).

    Parameters
    ----------
    path : path
        The database file (conventionally ``*.sqlite``).
    create : bool, default=False
        Create an empty store when ``path`` does not exist. Readers leave it ``False`` so a typo in a path is
        an error, not a new empty store.
    timeout : float, default=30.0
        Seconds a writer waits for another writer before giving up.
    cache_rows : int, default=200_000
        Rows kept in this process's read cache (``0``: no cache). The cache is dropped as soon as any
        connection, in any process, commits a change (SQLite's ``data_version``).

    Examples
    --------
    >>> fs = FeatureStore("data/features.sqlite", create=True)      # doctest: +SKIP
    >>> fs.import_catalog()                                          # doctest: +SKIP
    >>> fs.get_many(["spotify:track:4iV5W9uYEdYUVa79Axb7Rh"])[["track_name", "energy", "found"]]  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = False, timeout: float = 30.0,
                 cache_rows: int = 200_000):
        self.path = Path(path)
        self.timeout = float(timeout)
        self.cache_rows = int(cache_rows)
        self._local = threading.local()
        self._cache_lock = threading.Lock()
        self._block = _Block()
        self._generation = 0
        if not self.path.exists():
            if not create:
                raise FeatureStoreError(
                    f"no feature store at {self.path}; create one with: "
                    f"python -m modules features import CATALOG --store {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            raise FeatureStoreError(f"{self.path} is a directory; the feature store is one file, e.g. "
                                    f"{self.path / 'features.sqlite'}.")
        try:
            conn = self._conn()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as err:
            self.close()
            raise FeatureStoreError(f"{self.path} is not an SQLite feature store ({err}); pass the file written "
                                    "by `python -m modules features import`.") from None
        if "tracks" not in tables:
            if not create or tables:
                raise FeatureStoreError(f"{self.path} is an SQLite file but not a feature store (no tracks table); "
                                        "choose another --store path.")
            self._create_schema(conn)
        else:
            version = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if not version or version[0] != SCHEMA_VERSION:
                raise FeatureStoreError(f"{self.path} has feature-store format {version and version[0]!r}; this code "
                                        f"reads {SCHEMA_VERSION!r}. Re-import the catalog into a new --store.")

    # -- connections -------------------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (re-opened after a fork)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=True)
            conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: a crash never corrupts, at most loses the last txn
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA mmap_size=268435456")
            conn.execute("PRAGMA cache_size=-65536")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r})"

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        # journal_mode is stored in the file: set once by the creator; readers never need to change it.
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        with self._transaction(conn):
            for statement in _ddl().split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection):
        """One IMMEDIATE transaction: takes the write lock up front, so a busy writer is waited for (up to
        ``timeout``) instead of failing half-way; committed on success, rolled back on any error."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        with self._cache_lock:
            self._invalidate()

    # -- writing -----------------------------------------------------------------------------------------------

    def import_catalog(self, catalog: str | os.PathLike | pd.DataFrame | None = None, *,
                       column_map: Mapping[str, str] | None = None, source: str | None = None,
                       chunk_size: int = 5000, show_progress: bool = False) -> dict:
        """Bulk-load a catalog (Spotify Tracks schema) in one transaction; idempotent.

        Rows are upserted by URI: new URIs are inserted, rows whose catalog values differ are updated, equal
        rows are left alone (so a rerun changes nothing, ``fetched_at`` included). Cached Spotify metadata
        (album art, its fetch time) survives a re-import. Either the whole import commits or nothing does: a
        killed import leaves the previous content, and rerunning the command completes it.

        Parameters
        ----------
        catalog : path or DataFrame, default=None
            A Parquet/CSV file read with ``modules.catalog.read_catalog`` (``None``: the shipped catalog), or
            a frame already in its output shape.
        column_map : mapping, default=None
            ``{their_column: our_column}`` renames for catalogs with another schema (files only).
        source : str, default=None
            Recorded per row; default ``"catalog:<file name>"``.
        chunk_size : int, default=5000
            Rows per ``executemany`` batch (progress granularity; the transaction spans all batches).
        show_progress : bool, default=False
            Show a tqdm bar.

        Returns
        -------
        dict
            ``rows``, ``inserted``, ``updated``, ``unchanged``, ``total`` (rows in the store after) and
            ``seconds``.
        """
        from modules.catalog import read_catalog

        t0 = time.perf_counter()
        if isinstance(catalog, pd.DataFrame):
            frame, source = catalog, source or "catalog:frame"
        else:
            frame = read_catalog(catalog, column_map=column_map)
            source = source or f"catalog:{Path(catalog).name if catalog is not None else 'spotify_tracks.parquet'}"
        rows = _catalog_rows(frame, source, time.time())
        cols = ("track_uri", *CATALOG_COLUMNS, "source", "fetched_at")
        compared = ("source", *CATALOG_COLUMNS)
        sql = (f"INSERT INTO tracks ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
               f"ON CONFLICT(track_uri) DO UPDATE SET "
               + ", ".join(f"{c}=excluded.{c}" for c in cols[1:])
               + f" WHERE ({', '.join('tracks.' + c for c in compared)}) IS NOT "
               f"({', '.join('excluded.' + c for c in compared)})")
        conn = self._conn()
        with self._transaction(conn):
            before = conn.execute("SELECT count(*) FROM tracks").fetchone()[0]
            changes0 = conn.total_changes
            bar = tqdm(total=len(rows), unit="track", desc="features import", disable=not show_progress)
            for start in range(0, len(rows), chunk_size):
                batch = rows[start:start + chunk_size]
                conn.executemany(sql, batch)
                bar.update(len(batch))
                log.debug("features import: %d/%d rows written (not committed yet)", start + len(batch), len(rows))
            bar.close()
            after = conn.execute("SELECT count(*) FROM tracks").fetchone()[0]
            changed = conn.total_changes - changes0
        inserted = after - before
        summary = {"rows": len(rows), "inserted": inserted, "updated": changed - inserted,
                   "unchanged": len(rows) - changed, "total": after,
                   "seconds": round(time.perf_counter() - t0, 3)}
        log.info("features import %s: %s", source, summary)
        return summary

    def upsert_metadata(self, records: Iterable[Mapping], *, source: str = "spotify",
                        fetched_at: float | None = None) -> int:
        """Write track metadata fetched from Spotify (names, popularity, album art); returns rows written.

        Existing rows keep their audio features, genres and URIs (only missing URIs are filled); new URIs
        get a row with ``source`` and no audio features. ``meta_fetched_at`` is the cache's TTL clock.
        """
        now = time.time() if fetched_at is None else float(fetched_at)
        cols = ("track_uri", *META_COLUMNS, "artist_uri", "album_uri", "source", "fetched_at", "meta_fetched_at")
        rows = [tuple(r.get(c) for c in cols[:-3]) + (source, now, now) for r in records]
        if not rows:
            return 0
        sets = [f"{c}=COALESCE(excluded.{c}, tracks.{c})" for c in META_COLUMNS]
        sets += [f"{c}=COALESCE(tracks.{c}, excluded.{c})" for c in ("artist_uri", "album_uri")]
        sets += ["meta_fetched_at=excluded.meta_fetched_at"]
        sql = (f"INSERT INTO tracks ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
               f"ON CONFLICT(track_uri) DO UPDATE SET {', '.join(sets)}")
        conn = self._conn()
        with self._transaction(conn):
            conn.executemany(sql, rows)
        return len(rows)

    def upsert_features(self, records: Iterable[Mapping], *, source: str = "spotify-audio-features",
                        fetched_at: float | None = None) -> int:
        """Write audio features (e.g. from the Spotify API where still open to the app); returns rows written."""
        now = time.time() if fetched_at is None else float(fetched_at)
        cols = ("track_uri", *FEATURE_COLUMNS)
        rows = [tuple(r.get(c) for c in cols) + (source, now) for r in records]
        if not rows:
            return 0
        marks = ", ".join("?" * (len(cols) + 2))
        sql = (f"INSERT INTO tracks ({', '.join(cols)}, source, fetched_at) VALUES ({marks}) "
               f"ON CONFLICT(track_uri) DO UPDATE SET "
               + ", ".join(f"{c}=excluded.{c}" for c in (*FEATURE_COLUMNS, "source", "fetched_at")))
        conn = self._conn()
        with self._transaction(conn):
            conn.executemany(sql, rows)
        return len(rows)

    # -- reading -----------------------------------------------------------------------------------------------

    def get_many(self, uris: Sequence[str], columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows for ``uris``, in the order asked (duplicates repeated), never raising for unknown URIs.

        Rows come from the in-process row cache (columnar, so a warm lookup is a few array takes) when warm,
        otherwise from one SQL query over the unique missing URIs. The cache is emptied whenever any
        connection, in any process, commits a change, so a reader never sees data older than its last call.

        Parameters
        ----------
        uris : sequence of str
            Track URIs.
        columns : sequence of str, default=None
            Columns to return besides ``track_uri`` and ``found`` (default: all, see ``COLUMNS``).

        Returns
        -------
        DataFrame
            One row per asked URI: ``track_uri``, ``found`` (bool) and the columns. Unknown URIs have
            ``found=False`` and NaN/None values. ``genres`` is a list; numeric columns are float (NaN where
            missing, e.g. a track known from Spotify metadata only); text columns have object dtype.
        """
        if isinstance(uris, str):
            raise TypeError("uris must be a list of track URIs, not one string; wrap it in a list.")
        cols = self._check_columns(columns)
        uris = [u if isinstance(u, str) else str(u) for u in uris]
        block, pos = self._lookup(uris)
        data: dict[str, object] = {"track_uri": pd.Series(np.array(uris, dtype=object), dtype=object),
                                   "found": block.found[pos]}
        num, obj = block.num[pos], block.obj[pos]
        for c in cols:
            if c in _NUM_INDEX:
                data[c] = num[:, _NUM_INDEX[c]]
            elif c == "genres":
                data[c] = pd.Series([list(g) for g in obj[:, _OBJ_INDEX[c]]], dtype=object)
            else:
                data[c] = pd.Series(obj[:, _OBJ_INDEX[c]], dtype=object)
        return pd.DataFrame(data, copy=False)

    def _lookup(self, uris: list[str]) -> tuple[_Block, np.ndarray]:
        """A column block holding every URI of ``uris`` and their positions in it.

        Warm: the shared block (the row cache). Cold: one SQL query over the unique missing URIs, whose rows
        are added to the shared block, or to a block of this call only when the cache is off, full, or was
        invalidated by a write in the meantime.
        """
        conn = self._conn()
        with self._cache_lock:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if getattr(self._local, "data_version", version) != version:
                self._invalidate()
            self._local.data_version = version
            block, generation = self._block, self._generation
            get = block.pos.get
            pos = np.fromiter((get(u, -1) for u in uris), dtype=np.int64, count=len(uris))
        miss = pos < 0
        if not miss.any():
            return block, pos
        missing = sorted({uris[i] for i in np.flatnonzero(miss)})
        rows = self._fetch(conn, missing)
        with self._cache_lock:
            shared = (self.cache_rows > 0 and self._generation == generation
                      and block.size + len(rows) <= self.cache_rows)
            if shared:
                block.add(rows)
                get = block.pos.get
                pos[miss] = [get(uris[i]) for i in np.flatnonzero(miss)]
                return block, pos
        # this call only: all its URIs in a fresh block (the shared one is reset when it is full)
        rest = sorted(set(uris) - set(missing))
        local = _Block(len(missing) + len(rest))
        local.add(rows)
        if rest:
            local.add(self._fetch(conn, rest))
        if self.cache_rows > 0 and self._generation == generation and len(uris) <= self.cache_rows:
            with self._cache_lock:
                if self._generation == generation:
                    self._block = local
        get = local.pos.get
        return local, np.fromiter((get(u) for u in uris), dtype=np.int64, count=len(uris))

    @staticmethod
    def _fetch(conn: sqlite3.Connection, keys: list[str]) -> list[tuple]:
        """``(uri, found, *COLUMNS[1:])`` per key, probed in sorted order (neighbouring keys share B-tree pages)."""
        sql = (f"SELECT j.value, t.track_uri IS NOT NULL, {', '.join('t.' + c for c in COLUMNS[1:])} "
               "FROM json_each(?) AS j LEFT JOIN tracks AS t ON t.track_uri = j.value")
        return conn.execute(sql, (orjson.dumps(keys).decode(),)).fetchall()

    def _invalidate(self) -> None:
        """Forget cached rows (call with ``_cache_lock`` held)."""
        self._block = _Block()
        self._generation += 1

    def get(self, uri: str) -> dict | None:
        """One track's row as a dict, or ``None`` when the store does not have it."""
        row = self.get_many([uri]).iloc[0]
        return row.to_dict() if row["found"] else None

    def read_all(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Every row (sorted by URI), in the ``get_many`` layout without ``found``."""
        cols = self._check_columns(columns)
        rows = self._conn().execute(f"SELECT track_uri, 1{''.join(', ' + c for c in cols)} FROM tracks "
                                    "ORDER BY track_uri").fetchall()
        colvals = list(zip(*rows, strict=True)) if rows else [()] * (len(cols) + 2)
        return _frame(list(colvals[0]), colvals[1:], cols).drop(columns=["found"])

    def search(self, query: str, limit: int = 20) -> pd.DataFrame:
        """Tracks whose name, artists or album contain every word of ``query`` (case-insensitive), most
        popular first. The offline search behind the app's track picker."""
        words = [w for w in str(query).lower().split() if w]
        if not words:
            return self.get_many([])
        where = " AND ".join(["lower(coalesce(track_name,'') || ' ' || coalesce(artists,'') || ' ' || "
                              "coalesce(album_name,'')) LIKE ? ESCAPE '\\'"] * len(words))
        args = ["%" + _like_escape(w) + "%" for w in words]
        uris = [r[0] for r in self._conn().execute(
            f"SELECT track_uri FROM tracks WHERE {where} ORDER BY popularity DESC, track_uri LIMIT ?",
            (*args, int(limit)))]
        return self.get_many(uris)

    def __len__(self) -> int:
        return self._conn().execute("SELECT count(*) FROM tracks").fetchone()[0]

    def stats(self) -> dict:
        """Row counts: total, with audio features, with album art, per source."""
        conn = self._conn()
        total, audio, art = conn.execute(
            "SELECT count(*), count(energy), count(album_art_url) FROM tracks").fetchone()
        sources = dict(conn.execute("SELECT coalesce(source, '?'), count(*) FROM tracks GROUP BY 1 ORDER BY 1"))
        return {"tracks": total, "with_audio_features": audio, "with_album_art": art, "sources": sources,
                "bytes": self.path.stat().st_size}

    @staticmethod
    def _check_columns(columns) -> list[str]:
        if columns is None:
            return list(COLUMNS[1:])
        if isinstance(columns, str):
            columns = [columns]
        bad = [c for c in columns if c not in COLUMNS]
        if bad:
            raise FeatureStoreError(f"unknown feature-store columns {bad}; choose from {list(COLUMNS)}.")
        return [c for c in columns if c != "track_uri"]


class _write:
    """``with self._transaction(conn):`` one IMMEDIATE transaction (takes the write lock up front, so a busy writer is
    waited for instead of failing half-way), committed on success, rolled back on any error."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
        return False


class _Block:
    """Rows held column-wise for fast lookups: ``pos`` (URI → row), a float matrix of the numeric columns, an
    object matrix of the text columns (genres as tuples), and ``found``. Grows by doubling."""

    def __init__(self, capacity: int = 1024):
        capacity = max(int(capacity), 1)
        self.pos: dict[str, int] = {}
        self.num = np.empty((capacity, len(_NUM_COLS)))
        self.obj = np.empty((capacity, len(_OBJ_COLS)), dtype=object)
        self.found = np.zeros(capacity, dtype=bool)
        self.size = 0

    def add(self, rows: list[tuple]) -> None:
        """Append ``(uri, found, *COLUMNS[1:])`` rows (as ``FeatureStore._fetch`` returns them)."""
        n = len(rows)
        if not n:
            return
        end = self.size + n
        if end > len(self.found):
            cap = max(end, 2 * len(self.found))
            for name in ("num", "obj", "found"):
                old = getattr(self, name)
                new = np.empty((cap, *old.shape[1:]), dtype=old.dtype)
                new[: self.size] = old[: self.size]
                setattr(self, name, new)
        cols = list(zip(*rows, strict=True))
        sl = slice(self.size, end)
        self.found[sl] = np.array(cols[1], dtype=bool)
        for j, c in enumerate(_NUM_COLS):
            self.num[sl, j] = np.array(cols[1 + COLUMNS.index(c)], dtype=np.float64)
        for j, c in enumerate(_OBJ_COLS):
            vals = cols[1 + COLUMNS.index(c)]
            if c == "genres":
                target = self.obj[:, j]
                for i, g in enumerate(vals, start=self.size):
                    target[i] = tuple(g.split(";")) if g else ()
            else:
                self.obj[sl, j] = vals
        start = self.size
        self.size = end
        self.pos.update(zip(cols[0], range(start, end), strict=True))


def _like_escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _catalog_rows(frame: pd.DataFrame, source: str, now: float) -> list[tuple]:
    """The frame of ``read_catalog`` as upsert tuples: ``(track_uri, *CATALOG_COLUMNS, source, fetched_at)``."""
    if "track_uri" not in frame.columns:
        raise FeatureStoreError(f"the catalog frame has no track_uri column (has {list(frame.columns)}); "
                                "read it with modules.catalog.read_catalog.")
    n = len(frame)
    out: list[list] = [frame["track_uri"].astype(str).tolist()]
    for c in CATALOG_COLUMNS:
        if c not in frame.columns:
            out.append([None] * n)
        elif c == "genres":
            out.append([";".join(g) if isinstance(g, (list, tuple, np.ndarray)) else (g if isinstance(g, str) else None)
                        for g in frame[c]])
        elif c in INT_COLUMNS:
            v = pd.to_numeric(frame[c], errors="coerce")
            out.append([None if x != x else int(x) for x in v.astype(float).tolist()])
        elif c in FEATURE_COLUMNS:
            out.append([None if x != x else x for x in pd.to_numeric(frame[c], errors="coerce").astype(float).tolist()])
        else:
            out.append([None if x is None or x != x else str(x) for x in frame[c].tolist()])
    out += [[source] * n, [now] * n]
    return list(zip(*out, strict=True))


def _frame(uris: list, colvals: list[tuple], cols: list[str]) -> pd.DataFrame:
    """Columns ``(found, *cols)`` as a typed frame: floats for numbers, lists for genres, object for text
    (object, not pandas' string dtype: converting 10,000 strings per column would cost more than the query)."""
    n = len(uris)
    data: dict[str, object] = {"track_uri": pd.Series(np.array(uris, dtype=object), dtype=object),
                               "found": np.array(colvals[0], dtype=bool) if n else np.zeros(0, bool)}
    for c, vals in zip(cols, colvals[1:], strict=True):
        if c in _NUMERIC:
            data[c] = np.array(vals, dtype=np.float64) if n else np.zeros(0)
        elif c == "genres":
            data[c] = pd.Series([list(v) if isinstance(v, tuple) else (v.split(";") if v else []) for v in vals],
                                dtype=object)
        else:
            data[c] = pd.Series(np.array(vals, dtype=object), dtype=object)
    return pd.DataFrame(data, copy=False)
