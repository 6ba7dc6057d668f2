"""``ingest_spark``: MPD slices into the same Parquet store as ``modules.store.ingest``, read by Spark.

Spark's JSON reader reads each slice whole (``multiLine``) with each playlist kept as its JSON text; the executors
validate every playlist with ``modules.mpd.validate_playlist`` (the local ingest's rules, artist and album stand-ins
included) and turn it into rows with the local ingest's own helpers (``_playlist_row``, ``_track_row``), so the
rows are the same. Problems are gathered rather than raised on the executors, and the driver raises the one the
local ingest would raise first (file order, then playlist order; a pid seen twice after its file's own checks),
with the same ``MPDFormatError`` message. A slice Spark cannot take apart (not JSON, no ``playlists`` list, an
``info`` that is not an object, a value Spark and orjson read differently) is read again on the driver by
``read_slice``, which says what is wrong: that is the error path only.

The three tables are written by Spark as one Parquet file each (sorted as the local ingest writes them: slices,
playlists and positions in file order; tracks by URI with their first entry's names), inside a temporary folder
that replaces ``out`` only when everything is written (``atomic_directory``).
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import orjson
import pyarrow as pa

from modules import __version__
from modules.atomic import atomic_directory, check_output_folder
from modules.errors import MPDFormatError
from modules.mpd import _duplicate_pid, find_slices, read_slice, read_slices, validate_playlist
from modules.store import (
    MANIFEST,
    PLAYLIST_SCHEMA,
    STORE_FORMAT,
    STORE_KIND,
    TRACK_COLUMNS,
    PlaylistStore,
    _fingerprint,
    _playlist_row,
    _track_row,
    open_store,
)

log = logging.getLogger(__name__)

_TRACK_FIELDS = [pa.field("track_uri", pa.string()), pa.field("track_name", pa.string()),
                 pa.field("artist_uri", pa.string()), pa.field("artist_name", pa.string()),
                 pa.field("album_uri", pa.string()), pa.field("album_name", pa.string()),
                 pa.field("duration_ms", pa.int64())]
# one row per playlist out of the executors: where it is, its problem (if any), its columns and its tracks
_ROW_SCHEMA = pa.schema([
    pa.field("file_no", pa.int32()), pa.field("index", pa.int32()),
    pa.field("err_message", pa.string()), pa.field("err_pid", pa.string()), pa.field("err_field", pa.string()),
    pa.field("err_index", pa.int32()), pa.field("suspect", pa.bool_()),
    *PLAYLIST_SCHEMA, pa.field("tracks", pa.list_(pa.struct(_TRACK_FIELDS))),
])


def _message_of(err: MPDFormatError) -> str:
    """The ``message`` an ``MPDFormatError`` was made with (its text without the "file, playlist, ...: " part)."""
    prefix = str(MPDFormatError(err.file, "", index=err.index, pid=err.pid, field=err.field))
    return str(err)[len(prefix):]


def _validate_batches(batches, paths: list[str]):
    """``mapInArrow``'s function: ``(file_no, index, text)`` rows in, ``_ROW_SCHEMA`` rows out."""
    names = _ROW_SCHEMA.names
    for batch in batches:
        out = {name: [] for name in names}
        d = batch.to_pydict()
        for file_no, index, text in zip(d["file_no"], d["index"], d["text"]):
            row = dict.fromkeys(names)
            row.update(file_no=file_no, index=index, suspect=False, tracks=[])
            pl = text
            if text is not None:
                try:
                    pl = orjson.loads(text)
                except orjson.JSONDecodeError:
                    # a string in the list comes as its value; anything else orjson refuses is for read_slice to name
                    row["suspect"] = text.lstrip()[:1] in ("{", "[")
            if not row["suspect"]:
                try:
                    validate_playlist(paths[file_no], index, pl)
                except MPDFormatError as err:
                    row.update(err_message=_message_of(err), err_pid=None if err.pid is None else str(err.pid),
                               err_field=err.field, err_index=err.index)
                else:
                    row.update(zip(PLAYLIST_SCHEMA.names, _playlist_row(pl)))
                    row["tracks"] = [dict(zip(("track_uri", *TRACK_COLUMNS), (t["track_uri"], *_track_row(t))))
                                     for t in pl["tracks"]]
            for name in names:
                out[name].append(row[name])
        yield pa.RecordBatch.from_pydict(out, schema=_ROW_SCHEMA)


def _single_file(frame, folder: Path, target: Path) -> None:
    """Write ``frame`` (already in its final order) as the one Parquet file ``target``."""
    frame.coalesce(1).write.mode("overwrite").parquet(str(folder))
    parts = sorted(folder.glob("part-*.parquet"))
    if len(parts) != 1:  # coalesce(1) writes one part; zero rows may write none
        raise RuntimeError(f"Spark wrote {len(parts)} Parquet parts for {target.name}, expected 1")
    parts[0].rename(target)
    shutil.rmtree(folder)


def _first_problem(spark, raw, rows, files: list[Path]) -> None:
    """Raise the ``MPDFormatError`` the local ingest would raise first, if any."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # slices Spark could not take apart as {"info": {...}, "playlists": [...]} ("broken"), or whose info is not an
    # object (falsy values are allowed): read_slice says what is wrong, or that nothing is
    per_file = raw.groupBy("file_no").agg(
        F.count(F.lit(1)).alias("docs"),
        F.max(F.col("_corrupt").isNotNull() | F.col("playlists").isNull()).alias("broken"),
        F.max(F.col("info").isNotNull() & ~F.ltrim(F.col("info")).startswith("{")).alias("odd_info"))
    seen = {r["file_no"]: r for r in per_file.collect()}
    broken = {k for k in range(len(files)) if k not in seen or seen[k]["docs"] != 1 or seen[k]["broken"]}
    broken |= {r["file_no"] for r in rows.filter("suspect").select("file_no").distinct().collect()}
    odd_info = {k for k, r in seen.items() if r["odd_info"]}
    first_err = {r["file_no"]: r["e"] for r in rows.filter(F.col("err_message").isNotNull()).groupBy("file_no")
                 .agg(F.min_by(F.struct("err_message", "err_pid", "err_field", "err_index"), "index").alias("e"))
                 .collect()}
    w = Window.partitionBy("pid").orderBy("file_no", "index")
    dup = (rows.filter(F.col("err_message").isNull() & ~F.col("suspect"))
           .withColumn("seen", F.row_number().over(w)).filter(F.col("seen") > 1)
           .agg(F.min("file_no")).first()[0])
    for k, file in enumerate(files):
        if k in broken or k in odd_info:
            _on_driver(spark, [file], lambda local: read_slice(local[0]))  # raises what is wrong, as locally
            if k in broken:
                raise MPDFormatError(file, "Spark's JSON reader cannot read this slice as the local ingest does; "
                                     "ingest it without --engine spark.")
        if k in first_err:
            e = first_err[k]
            raise MPDFormatError(file, e["err_message"], index=e["err_index"],
                                 pid=None if e["err_pid"] is None else int(e["err_pid"]), field=e["err_field"])
        if k == dup:  # the error path only: the earlier slices are read again to say where
            _on_driver(spark, files[: k + 1], _raise_duplicate)


def _raise_duplicate(files: list[Path]) -> None:
    raise _duplicate_pid(files, read_slice(files[-1])[1])


def _uri_path(uri: str) -> str:
    """The path of a file's URI (how Spark's ``input_file_name`` and the listed URIs are matched)."""
    return unquote(urlparse(uri).path)


def _remote_slices(spark, uri: str) -> list[str]:
    """``find_slices`` for a folder (or one slice) at a URI: the slices' URIs in pid order."""
    from modules.errors import MissingInputError
    from modules.mpd import SLICE_NAME
    from modules.spark.storage import list_folder, uri_exists

    listed = list_folder(spark, uri)
    if listed is None:
        return [uri]
    files = [u for u, _ in listed if SLICE_NAME.match(u.rsplit("/", 1)[-1])]
    if not files:
        data = f"{uri.rstrip('/')}/data"
        if uri_exists(spark, data):  # the MPD archive unpacks to <root>/data/mpd.slice.*.json
            return _remote_slices(spark, data)
        raise MissingInputError(f"{uri} holds no mpd.slice.*.json files.")
    return sorted(files, key=lambda u: int(SLICE_NAME.match(u.rsplit("/", 1)[-1]).group(1)))


def _remote_fingerprint(spark, uris: list[str]) -> tuple[list[int], str]:
    """The slices' sizes and ``store._fingerprint`` of slices at URIs: names, sizes, the first and last 64 KiB of
    each (the executors read the files; only those bytes come here)."""
    import hashlib

    from pyspark.sql import functions as F

    edge = 65536
    rows = (spark.read.format("binaryFile").load(uris)
            .select("path", "length", F.substring("content", 1, edge).alias("head"),
                    F.when(F.col("length") > edge, F.substring("content", -edge, edge)).alias("tail"))
            .collect())
    by_path = {_uri_path(r["path"]): r for r in rows}
    h = hashlib.sha256()
    sizes = []
    for uri in uris:
        r = by_path[_uri_path(uri)]
        sizes.append(int(r["length"]))
        h.update(f"{uri.rsplit('/', 1)[-1]}\0{r['length']}\0".encode() + bytes(r["head"]) + bytes(r["tail"] or b""))
    return sizes, h.hexdigest()[:16]


def _on_driver(spark, files: list, call, folder: str | None = None):
    """``call(files)`` for an error path that reads slices here: local slices as they are; slices at URIs copied
    here first, and an ``MPDFormatError`` about a copy (or their folder: ``folder``) then names the URI."""
    from modules.spark.session import is_uri
    from modules.spark.storage import fetch_files

    if not files or not is_uri(str(files[0])):
        return call(list(files))
    local = fetch_files(spark, [str(f) for f in files])
    names = {str(copy): str(f) for copy, f in zip(local, files)}
    if folder is not None:
        names[str(local[0].parent)] = folder
    try:
        return call(local)
    except MPDFormatError as err:
        if err.file not in names:
            raise
        raise MPDFormatError(names[err.file], _message_of(err), index=err.index, pid=err.pid,
                             field=err.field) from None


def ingest_spark(mpd_path: str | Path, out: str | Path, *, spark=None) -> dict:
    """``modules.store.ingest`` on Spark: the same store (tables, counts, fingerprint) and the same errors.

    Parameters
    ----------
    mpd_path : path
        A directory of ``mpd.slice.*.json`` files, or one slice.
    out : path or URI
        The store to write (new, empty or a store; replaced only once complete). A URI (``hdfs://…``) is written
        here first and copied there whole.
    spark : SparkSession or str, default=None
        A session, or a master for ``spark_session`` (None: ``local[*]``).

    Returns the summary written into ``store.json`` (with ``"engine": "spark"``).
    """
    from pyspark.sql import functions as F

    from modules.spark.session import DEFAULT_MASTER, is_uri, spark_session

    if spark is None or isinstance(spark, str):
        spark = spark_session(spark or DEFAULT_MASTER)
    if is_uri(out):  # written here, then copied there whole (storage.publish_folder)
        from modules.spark.storage import check_destination, publish_folder

        kind = (MANIFEST, "playlist store")
        check_destination(spark, out, kind)
        tmp = Path(tempfile.mkdtemp(prefix="playlist-store-"))
        try:
            summary = ingest_spark(mpd_path, tmp / "store", spark=spark)
            publish_folder(spark, tmp / "store", out, kind)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return summary
    t0 = time.perf_counter()
    remote = is_uri(mpd_path)
    files = _remote_slices(spark, mpd_path) if remote else find_slices(mpd_path)
    out = check_output_folder(out, STORE_KIND, inputs=[] if remote else [mpd_path])
    paths = [str(f) for f in files]
    uris = paths if remote else [Path(p).resolve().as_uri() for p in paths]
    number = {_uri_path(u): k for k, u in enumerate(uris)}
    file_no = F.udf(lambda uri: number.get(_uri_path(uri), -1), "int")
    raw = (spark.read.schema("info string, playlists array<string>, _corrupt string")
           .option("multiLine", True).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", "_corrupt")
           .json(uris)
           .withColumn("file_no", file_no(F.input_file_name())).cache())
    texts = raw.filter(F.col("_corrupt").isNull()).select("file_no", F.posexplode("playlists").alias("index", "text"))
    from pyspark.sql.pandas.types import from_arrow_schema

    rows = texts.mapInArrow(lambda batches: _validate_batches(batches, paths), from_arrow_schema(_ROW_SCHEMA)).cache()
    try:
        _first_problem(spark, raw, rows, files)
        good = rows.filter(F.col("err_message").isNull())
        n_playlists = good.count()
        if n_playlists == 0:  # raises the local ingest's "holds no playlists" message
            _on_driver(spark, files, lambda local: list(read_slices(local[0].parent if remote else mpd_path)),
                       folder=str(mpd_path))
        entries = good.select("file_no", "index", "pid", F.posexplode("tracks").alias("pos", "t"))
        with atomic_directory(out) as tmp:
            _single_file(good.orderBy("file_no", "index").select(
                *[F.col(f.name).cast(_spark_type(f.type)) for f in PLAYLIST_SCHEMA]),
                tmp / "_playlists", tmp / "playlists.parquet")
            _single_file(entries.orderBy("file_no", "index", "pos").select(
                "pid", _nullable(F.col("pos").cast("int")).alias("pos"), F.col("t.track_uri").alias("track_uri")),
                tmp / "_entries", tmp / "playlist_tracks.parquet")
            first = F.min_by(F.col("t"), F.struct("file_no", "index", "pos"))
            tracks = (entries.groupBy(F.col("t.track_uri").alias("track_uri"))
                      .agg(first.alias("t"), F.count(F.lit(1)).alias("count"))
                      .orderBy("track_uri")
                      .select("track_uri", *[F.col(f"t.{c}").alias(c) for c in TRACK_COLUMNS],
                              _nullable(F.col("count")).alias("count")))
            _single_file(tracks, tmp / "_tracks", tmp / "tracks.parquet")
            counts = spark.read.parquet(str(tmp / "tracks.parquet")).agg(
                F.count(F.lit(1)), F.sum("count"), F.countDistinct("artist_uri"), F.countDistinct("album_uri")).first()
            sizes, fingerprint = (_remote_fingerprint(spark, paths) if remote
                                  else ([f.stat().st_size for f in files], _fingerprint(files)))
            n_bytes = sum(sizes)
            seconds = time.perf_counter() - t0
            summary = {
                "format": STORE_FORMAT, "created_with": __version__, "fingerprint": fingerprint,
                "source": [{"file": p.rsplit("/", 1)[-1], "bytes": b} for p, b in zip(paths, sizes)],
                "playlists": int(n_playlists), "tracks": int(counts[1] or 0), "unique_tracks": int(counts[0]),
                "unique_artists": int(counts[2]), "unique_albums": int(counts[3]),
                "seconds": round(seconds, 3), "mb_per_s": round(n_bytes / 1e6 / max(seconds, 1e-9), 1),
                "json_bytes": n_bytes, "engine": "spark",
            }
            (tmp / MANIFEST).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    finally:
        rows.unpersist()
        raw.unpersist()
    log.info("ingest on Spark: %d playlists from %d slices in %.1f s", n_playlists, len(files), summary["seconds"])
    return summary


def open_store_spark(path: str | Path, spark) -> PlaylistStore:
    """``open_store`` for the spark engine: a store directory as it is, a store's URI copied here for the
    driver's parts (Spark's stages read the URI: ``storage.fetch_store``), MPD slices ingested by Spark into a
    temporary store that lives as long as this process."""
    from modules.spark.session import is_uri

    if is_uri(path):
        from modules.spark.storage import fetch_store

        return fetch_store(spark, path)
    path = Path(path)
    if (path / MANIFEST).exists():
        return open_store(path)
    tmp = Path(tempfile.mkdtemp(prefix="playlist-store-"))
    atexit.register(shutil.rmtree, tmp, True)
    ingest_spark(path, tmp / "store", spark=spark)
    return PlaylistStore(tmp / "store")


def _nullable(col):
    """``col`` marked nullable, as the local ingest's Arrow columns are (Spark marks counts and positions not null,
    and the Parquet schema would say so)."""
    from pyspark.sql import functions as F

    return F.nullif(col, F.lit(-1))  # never -1 (a position, a count): the values stay, the column is nullable


def _spark_type(t: pa.DataType) -> str:
    return {pa.int64(): "long", pa.int32(): "int", pa.bool_(): "boolean", pa.string(): "string"}[t]
