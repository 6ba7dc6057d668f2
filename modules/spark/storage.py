"""Stores and bundles at URIs (``file://``, ``hdfs://``, ``s3a://``), through Hadoop's ``FileSystem`` in the Spark
session's JVM: the file systems Spark's readers use, with the same configuration (``spark.hadoop.*``).

What runs on Spark reads a URI where it is (the rules' transactions, MLlib's ALS entries, a bundle sent to the
executors with ``addFile``). What runs on the driver needs files: ``fetch_store`` copies a store into a temporary
folder that lives as long as the process (the hybrid's two-tower, content and fusion, and ALS's fold-in read it)
and remembers its URI (``store_uri``), so the Spark stages still read the original. ``publish_folder`` puts a
folder written here (``ingest --out URI``) at a URI, replacing what was there only once the copy is complete.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from modules.atomic import refusal
from modules.errors import InputError

log = logging.getLogger(__name__)

URI_ATTRIBUTE = "source_uri"  # set on a PlaylistStore fetched from a URI


def _path(spark, uri: str):
    """Hadoop's ``(FileSystem, Path)`` for ``uri``; a scheme without a file system is named."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    try:
        return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path
    except Exception as err:  # Py4JJavaError: UnsupportedFileSystemException
        raise InputError(f"{uri}: Spark has no file system for this scheme ({str(err).splitlines()[0][:160]}); "
                         "use file://, hdfs:// or s3a:// (with hadoop-aws on the classpath).") from None


def uri_exists(spark, uri: str) -> bool:
    fs, path = _path(spark, uri)
    return bool(fs.exists(path))


def _scratch(prefix: str) -> Path:
    """A local folder for copies, removed when this process ends."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, tmp, True)
    return tmp


def _copy_here(spark, fs, path, local: Path) -> Path:
    # useRawLocalFileSystem: no .crc files beside the copies
    fs.copyToLocalFile(False, path, spark.sparkContext._jvm.org.apache.hadoop.fs.Path(local.as_uri()), True)
    return local


def fetch_folder(spark, uri: str, prefix: str = "playlist-uri-") -> Path:
    """A local copy of the folder at ``uri`` (removed when this process ends)."""
    fs, path = _path(spark, uri)
    t0 = time.perf_counter()
    local = _copy_here(spark, fs, path, _scratch(prefix) / (uri.rstrip("/").rsplit("/", 1)[-1] or "folder"))
    log.info("%s copied to %s in %.1f s", uri, local, time.perf_counter() - t0)
    return local


def list_folder(spark, uri: str) -> list[tuple[str, int]] | None:
    """``(URI, bytes)`` of the files in the folder at ``uri`` (named below ``uri`` as given), None when ``uri`` is
    a file; ``MissingInputError`` when nothing is there."""
    from modules.errors import MissingInputError

    fs, path = _path(spark, uri)
    if not fs.exists(path):
        raise MissingInputError(f"{uri} does not exist: pass the URI of an MPD folder or of one mpd.slice.*.json.")
    if fs.getFileStatus(path).isFile():
        return None
    base = uri.rstrip("/")
    return [(f"{base}/{s.getPath().getName()}", int(s.getLen())) for s in fs.listStatus(path) if s.isFile()]


def fetch_files(spark, uris: list[str]) -> list[Path]:
    """Local copies of the files at ``uris`` (their names kept; removed when this process ends)."""
    tmp = _scratch("playlist-files-")
    out = []
    for uri in uris:
        fs, path = _path(spark, uri)
        out.append(_copy_here(spark, fs, path, tmp / path.getName()))
    return out


def fetch_store(spark, uri: str):
    """The ``PlaylistStore`` at ``uri``, copied here for the driver's parts; ``store_uri`` gives the URI back."""
    from modules.store import MANIFEST, PlaylistStore

    base = uri.rstrip("/")
    if not uri_exists(spark, f"{base}/{MANIFEST}"):
        raise InputError(f"{uri} is not a playlist store ({MANIFEST} is missing there); give the URI of a store "
                         "made by `ingest` (MPD slices are read from URIs by `ingest --engine spark` only).")
    store = PlaylistStore(fetch_folder(spark, base, "playlist-store-"))
    setattr(store, URI_ATTRIBUTE, base)
    return store


def store_uri(store) -> str | None:
    """The URI a store was fetched from (``fetch_store``), or None."""
    return getattr(store, URI_ATTRIBUTE, None)


def check_destination(spark, uri: str, kind: tuple[str, str]) -> None:
    """``InputError`` unless ``uri`` is new, an empty folder or a folder of ``kind`` (``(marker file, what it
    is)``, e.g. ``("store.json", "playlist store")``): called before the work. The rule and its messages are
    ``atomic.refusal``, the local folders' (``atomic.check_output_folder``); here the file system is Hadoop's."""
    marker, what = kind
    base = uri.rstrip("/")
    fs, dest = _path(spark, base)
    exists = bool(fs.exists(dest))
    is_dir = exists and bool(fs.getFileStatus(dest).isDirectory())
    why = refusal(uri, what, marker, is_file=exists and not is_dir,
                  holds_files=lambda: is_dir and bool(fs.listStatus(dest)),
                  is_kind=lambda: bool(fs.exists(_path(spark, f"{base}/{marker}")[1])))
    if why is not None:
        raise InputError(why)


def publish_folder(spark, local: Path, uri: str, kind: tuple[str, str]) -> None:
    """Put the folder ``local`` at ``uri`` (checked by ``check_destination``): it is copied beside it first and
    renamed into place, so a failed copy leaves what was there."""
    check_destination(spark, uri, kind)
    fs, dest = _path(spark, uri.rstrip("/"))
    what = kind[1]
    jvm = spark.sparkContext._jvm
    staging = jvm.org.apache.hadoop.fs.Path(f"{uri.rstrip('/')}.partial-{os.getpid()}-{time.time_ns()}")
    moved = False
    try:
        fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(Path(local).resolve().as_uri()), staging)
        if fs.exists(dest):
            fs.delete(dest, True)
        moved = fs.rename(staging, dest)
    finally:
        if fs.exists(staging):  # a failed copy, or a rename that did not happen
            fs.delete(staging, True)
    if not moved:
        raise InputError(f"could not move the new {what} into {uri}; check the file system's permissions there.")
    log.info("%s published at %s", local, uri)


def check_uri_engine(name: str, value, engine: str) -> None:
    """``InputError`` when the argument ``name`` is a URI and the command does not run on Spark."""
    from modules.spark.session import is_uri

    if is_uri(value) and engine != "spark":
        raise InputError(f"{name} {value} is a URI, which only Spark reads: add --engine spark (or --spark MASTER), "
                         "or give a local path.")
