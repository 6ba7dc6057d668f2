"""``spark_transactions``: playlists as transactions on Spark, built from the store where it is.

The local engine loads a store into ``Transactions`` (``modules.rules.transactions``: one CSR row a playlist, the
store's playlists, or those among ``pids``, empty ones kept, a track listed twice counted once). Here the same
transactions are a Spark DataFrame of distinct ``(pid, track_uri)`` entries read from the store's Parquet files by
the executors, with the same filtering: the store's playlists (``playlists.parquet``, so empty playlists still
count in ``n_playlists``) semi-joined with ``pids``. The driver holds the number of playlists and, later, counts
and rules: never the entries. ``mine_spark`` and ``tune_evidence_spark`` take them (the hybrid's rules under
``train --engine spark``); ``Transactions`` already on the driver are sent to Spark as they are (tests, notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from modules.errors import RulesError
from modules.rules.transactions import Transactions
from modules.spark.session import is_uri


@dataclass
class SparkTransactions:
    """Transactions on Spark: ``entries`` (distinct ``pid long, track_uri string``), ``n_playlists`` (the empty
    playlists included) and ``tracks`` (every track of the store, ``track_uri``: the columns of the local
    ``Transactions``, which the popularity order ranks, unplayed ones last). ``cached`` says whether ``entries``
    is persisted by ``spark_transactions`` (``release`` unpersists it)."""

    entries: object
    n_playlists: int
    tracks: object
    cached: bool = False

    def release(self) -> None:
        if self.cached:
            self.entries.unpersist()
            self.cached = False


def read_table(spark, base: str, name: str):
    """A store's table read by Spark from ``base`` (a folder or a URI); a missing one names the store."""
    try:
        return spark.read.parquet(f"{base}/{name}")
    except Exception as err:  # AnalysisException: PATH_NOT_FOUND, or no file system for the scheme
        if "PATH_NOT_FOUND" in str(err) or "No FileSystem for scheme" in str(err):
            raise RulesError(f"{base} is not a playlist store Spark can read ({name}: "
                             f"{str(err).splitlines()[0][:200]}); give a store made by `ingest` (slices are "
                             "ingested from local paths only).") from None
        raise


def store_base(data) -> str:
    """Where Spark reads a store: a URI as it is (not opened here), a folder or ``PlaylistStore`` by its path (a
    store fetched from a URI by its URI: ``storage.fetch_store``)."""
    from modules.spark.storage import store_uri

    if is_uri(data):
        return data.rstrip("/")
    if store_uri(data):
        return store_uri(data)
    if isinstance(data, (str, Path)):
        from modules.store import open_store

        data = open_store(data)
    return str(Path(data.path))


def spark_transactions(spark, data, pids=None, *, cache: bool = True) -> SparkTransactions:
    """The playlists of ``data`` (a store's path, URI or ``PlaylistStore``, or ``Transactions``), all or those in
    ``pids``, as ``SparkTransactions``; ``cache`` persists the entries (several jobs read them)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    if isinstance(data, SparkTransactions):
        return data
    if isinstance(data, Transactions):
        coo = data.matrix.tocoo()
        entries = _frame(spark, {"pid": pa.array(np.asarray(data.pids)[coo.row].astype(np.int64)),
                                 "track_uri": pa.array(data.track_uris[coo.col].tolist(), pa.string())})
        playlists = _frame(spark, {"pid": pa.array(np.asarray(data.pids).astype(np.int64))})
        tracks = _frame(spark, {"track_uri": pa.array(data.track_uris.tolist(), pa.string())})
    else:
        base = store_base(data)
        playlists = read_table(spark, base, "playlists.parquet").select("pid")
        entries = read_table(spark, base, "playlist_tracks.parquet").select("pid", "track_uri")
        tracks = read_table(spark, base, "tracks.parquet").select("track_uri")
    if pids is not None:
        keep = spark.createDataFrame(pa.table({"pid": pa.array(np.unique(np.asarray(pids, np.int64)))}))
        playlists = playlists.join(keep, "pid", "left_semi")
        entries = entries.join(keep, "pid", "left_semi")
    n = playlists.distinct().count()
    if n == 0:
        raise RulesError("there are no playlists to mine; check the --mpd path (slices or a store).")
    entries = entries.select(F.col("pid").cast("long"), "track_uri").distinct()
    if cache:
        entries = entries.persist(StorageLevel.MEMORY_AND_DISK)
    return SparkTransactions(entries, n, tracks, cached=cache)


def _frame(spark, columns: dict):
    """A Spark DataFrame of Arrow columns (Spark infers no schema from zero rows: it is given then)."""
    table = pa.table(columns)
    if table.num_rows:
        return spark.createDataFrame(table)
    types = {pa.int64(): "long", pa.string(): "string"}
    return spark.createDataFrame([], ", ".join(f"{f.name} {types[f.type]}" for f in table.schema))
