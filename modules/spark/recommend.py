"""``recommend_spark``: a challenge file (or a Spark table of playlists) scored on the executors, the same answers as
``recommend --challenge``.

Each playlist travels as its JSON text with its place in the input; ``mapInPandas`` hands each Python worker its
partition in Arrow batches, and the worker answers them with ``Recommender.recommend_batch`` (the local engine's own
code) on a bundle it loads once and keeps for every later task (``spark.python.worker.reuse``, Spark's default, keeps
the worker alive between tasks). A playlist's answer does not depend on which other playlists share its batch
(``modules.scan``), so however Spark cuts the input the 500 URIs of each playlist are the local engine's; the driver
puts them back in the file's order and writes them with ``modules.mpd.write_submission``, the writer of
``recommend --challenge``, so the two files are equal byte for byte.

The bundle is read where the executors are: in local mode and on a cluster whose workers see the same path (NFS) it
is read in place; otherwise ``ship=True`` sends it to every executor as a zip archive with
``SparkContext.addArchive``, unpacked there (a copy per executor; ``addFile`` takes no local folder on a cluster).
A bundle given as a URI (``hdfs://…``, ``s3a://…``; ``file://…`` in local mode) is added with ``addFile(uri,
recursive=True)``: each executor fetches the folder from there itself.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import time
from functools import partial
from pathlib import Path

import orjson
import pyarrow as pa

from modules.errors import InputError

log = logging.getLogger(__name__)

# what each worker sends back: the playlist's place, its pid, its URIs, and which worker process answered and how
# many times that process had loaded a bundle (the driver checks "once per worker")
OUTPUT_SCHEMA = "order long, pid long, track_uris array<string>, worker long, loads long"
_MODELS: dict[str, object] = {}  # a Python worker's bundles, by path: loaded on its first task, kept for the rest
_LOADS: dict[str, int] = {}


def _worker_model(path: str, shipped: bool):
    """The bundle at ``path`` (the archive's name given to ``addArchive`` when ``shipped``), loaded once in this
    Python worker."""
    if path not in _MODELS:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported by the two-tower part
        from modules.recommender import Recommender

        where = path
        if shipped:
            from pyspark import SparkFiles

            where = SparkFiles.get(path)
        _MODELS[path] = Recommender.load(where)
        _LOADS[path] = _LOADS.get(path, 0) + 1
        log.info("worker %d loaded the bundle %s", os.getpid(), where)
    return _MODELS[path]


def _answer(frames, path: str, shipped: bool, k: int):
    """``mapInPandas``'s function (with ``functools.partial``): ``(order, pid, playlist)`` frames in,
    ``OUTPUT_SCHEMA`` frames out. Module level, so that Spark pickles it by name and the worker's ``_MODELS`` is this
    module's (a nested function would carry a copy of the globals it names)."""
    import pandas as pd

    rec = _worker_model(path, shipped)
    for frame in frames:
        playlists = [orjson.loads(text) for text in frame["playlist"]]
        answers = rec.recommend_batch(playlists, k)
        yield pd.DataFrame({"order": frame["order"].to_numpy(), "pid": frame["pid"].to_numpy(),
                            "track_uris": [a["track_uri"].tolist() for a in answers],
                            "worker": os.getpid(), "loads": _LOADS[path]})


def _answer_batches(path: str, shipped: bool, k: int):
    return partial(_answer, path=path, shipped=shipped, k=k)


def _bundle_on_executors(spark, model: str | Path, ship: bool) -> tuple[str, bool]:
    """The bundle's path as the executors will name it, and whether it was shipped: as a zip archive (stored, not
    compressed: its arrays and Parquet are compressed already) that ``addArchive`` sends to every executor and
    unpacks there (``addFile`` takes no folder on a cluster)."""
    import tempfile
    import zipfile

    from modules.bundle import MANIFEST, Bundle
    from modules.spark.session import is_uri

    if is_uri(model) and model.startswith("file:") and not spark.sparkContext.master.startswith("local"):
        from urllib.parse import unquote, urlparse

        model = unquote(urlparse(model).path)  # Spark's addFile takes no local folder on a cluster: a path, then
    if is_uri(model):  # each executor fetches the folder from where it is (Hadoop's file systems)
        from modules.spark.storage import uri_exists

        base = model.rstrip("/")
        if not uri_exists(spark, f"{base}/{MANIFEST}"):
            raise InputError(f"--model {model} is not a bundle ({MANIFEST} is missing there); give the URI of a "
                             "folder written by `train`.")
        spark.sparkContext.addFile(base, recursive=True)
        log.info("bundle %s added for the executors to fetch", base)
        return base.rsplit("/", 1)[-1], True
    path = Path(model).resolve()
    Bundle(path).check()  # a missing or stale bundle is named here, not in a task's traceback
    if not ship:
        return str(path), False
    folder = Path(tempfile.mkdtemp(prefix="playlist-bundle-"))
    atexit.register(shutil.rmtree, folder, True)  # the executors fetch it while jobs run: kept until this process ends
    archive = folder / f"{path.name}-{os.getpid()}-{time.time_ns()}.zip"  # a new name: Spark refuses a name twice
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(path).as_posix())
    spark.sparkContext.addArchive(str(archive))
    log.info("bundle %s shipped to the executors as %s (%.1f MB)", path, archive.name, archive.stat().st_size / 1e6)
    return archive.name, True


def recommend_frame(spark, model: str | Path, playlists, k: int = 500, *, ship: bool = False):
    """Recommendations for a Spark DataFrame of playlists, computed on the executors.

    ``playlists`` has a ``pid`` column and the playlist as ``recommend_batch`` takes it: ``tracks`` (an array of
    structs with ``track_uri``, the MPD form) or ``seed_track_uris`` (an array of URIs), and optionally ``name`` or
    ``title``. The result has ``order`` (the row's place, from ``monotonically_increasing_id`` unless the input has
    an ``order`` column), ``pid`` and ``track_uris`` (the ``k`` URIs, best first), plus ``worker`` and ``loads``
    (the Python worker's process id and how many bundles it has loaded: 1 when it loaded this one once).
    """
    from pyspark.sql import functions as F

    if "pid" not in playlists.columns:
        raise InputError(f"the playlists table needs a 'pid' column (it has {', '.join(playlists.columns)}).")
    keys = [c for c in ("tracks", "seed_track_uris", "name", "title") if c in playlists.columns]
    if not keys:
        raise InputError("the playlists table needs 'tracks' (MPD form) or 'seed_track_uris', and/or 'name' or "
                         f"'title' (it has {', '.join(playlists.columns)}).")
    path, shipped = _bundle_on_executors(spark, model, ship)
    order = F.col("order") if "order" in playlists.columns else F.monotonically_increasing_id()
    rows = playlists.select(order.cast("long").alias("order"), F.col("pid").cast("long").alias("pid"),
                            F.to_json(F.struct(*keys)).alias("playlist"))
    return rows.mapInPandas(_answer_batches(path, shipped, k), OUTPUT_SCHEMA)


def recommend_spark(spark, model: str | Path, playlists: list[dict], k: int = 500, *, partitions: int | None = None,
                    ship: bool = False) -> tuple[list[tuple[int, list[str]]], dict]:
    """``(pid, URIs)`` for each playlist of a challenge set (in its order), scored on the executors.

    Parameters
    ----------
    spark : SparkSession
    model : path or URI of a bundle (``train``)
    playlists : the challenge's playlists, as ``read_challenge`` gives them
    partitions : int, default=None
        Spark partitions (tasks) of the input; None: the session's default parallelism, at most one per 32
        playlists (the local engine's batch).
    ship : bool, default=False
        Send the bundle to the executors as a zip archive (``addArchive``, unpacked on each executor) instead of
        reading it at its path (local mode, or a cluster whose workers see the path).

    Returns
    -------
    The rows for ``write_submission`` and a summary: ``workers`` (Python processes that answered), ``loads`` (the
    most bundles one of them loaded), ``seconds``.
    """
    from modules.recommender import BATCH

    t0 = time.perf_counter()
    n = len(playlists)
    if n == 0:
        return [], {"workers": 0, "loads": 0, "seconds": 0.0}
    if partitions is None:
        partitions = max(1, min(spark.sparkContext.defaultParallelism, -(-n // BATCH)))
    table = pa.table({"order": pa.array(range(n), pa.int64()),
                      "pid": pa.array([int(p["pid"]) for p in playlists], pa.int64()),
                      "playlist": pa.array([orjson.dumps(p).decode() for p in playlists], pa.string())})
    path, shipped = _bundle_on_executors(spark, model, ship)
    frame = spark.createDataFrame(table).repartitionByRange(partitions, "order")
    # the playlists go out as JSON text already, so the worker function is used directly (no to_json round trip)
    out = frame.mapInPandas(_answer_batches(path, shipped, k), OUTPUT_SCHEMA).toArrow().sort_by("order")
    if out.num_rows != n:
        raise RuntimeError(f"Spark answered {out.num_rows} of {n} playlists")
    pids = out.column("pid").to_pylist()
    uris = out.column("track_uris").to_pylist()
    workers = set(out.column("worker").to_pylist())
    summary = {"workers": len(workers), "loads": max(out.column("loads").to_pylist()), "partitions": partitions,
               "seconds": time.perf_counter() - t0}
    log.info("%d playlists scored on Spark in %.1f s by %d Python workers (%d partitions)", n, summary["seconds"],
             len(workers), partitions)
    return list(zip(pids, uris)), summary
