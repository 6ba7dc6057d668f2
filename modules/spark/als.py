"""``SparkALSRecommender``: the ALS baseline (and the hybrid's ALS part) with its item factors fitted by MLlib's
implicit ALS on Spark.

The heavy part of ALS is the alternating solves over every (playlist, track) entry; here they run on Spark
(``pyspark.ml.recommendation.ALS(implicitPrefs=True)``), reading the store's ``playlist_tracks.parquet`` there. The
item factors come back to the driver (tracks × factors floats) and everything after is ``ALSRecommender``'s: a new
playlist is folded in from its seeds against the item factors, the model is saved in the same ``als-arrays/1``
folder (a bundle's ``als/`` part reads it), and it answers by the same code.

The parameters mean what they mean for implicit's ALS, mapped onto MLlib's:

* confidence of an observed pair: implicit's is ``alpha`` (its solver weighs an entry of value ``alpha`` by
  ``alpha``); MLlib's is ``1 + alpha_mllib * r`` with ``r = 1``, so ``alpha_mllib = alpha - 1``;
* regularization: implicit adds ``regularization * I`` to every solve; MLlib adds ``regParam * n`` where ``n`` is
  the row's number of entries (ALS-WR), so ``regParam = regularization / (mean entries per playlist)`` puts the same
  penalty on a typical playlist (``reg_scale="mean"``, the default; ``"none"`` passes ``regularization`` as it is);
* factors (``rank``), iterations (``maxIter``) and the seed as they are. The initial factors differ (MLlib draws
  them from its own generator), so the factors are not implicit's, only as good: docs/scale.md has the recall of
  both on the same split.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from modules.baselines import ALSRecommender
from modules.baselines.als import FACTORS_DTYPE
from modules.baselines.shared import _check_param

log = logging.getLogger(__name__)

REG_SCALES = ("mean", "none")


def mllib_params(factors: int, regularization: float, alpha: float, iterations: int, mean_entries: float,
                 reg_scale: str = "mean") -> dict:
    """MLlib ``ALS`` parameters that mean implicit's ``factors, regularization, alpha, iterations`` (module doc)."""
    reg = float(regularization) / max(float(mean_entries), 1.0) if reg_scale == "mean" else float(regularization)
    return {"rank": int(factors), "regParam": reg, "alpha": max(float(alpha) - 1.0, 0.0), "maxIter": int(iterations)}


def item_factors_spark(spark, store, pids: np.ndarray, uris: np.ndarray, *, factors: int,
                       regularization: float, alpha: float, iterations: int, seed: int,
                       reg_scale: str = "mean", blocks: int | None = None) -> np.ndarray:
    """MLlib implicit ALS on the entries of ``pids`` in ``store`` (a path, URI or ``PlaylistStore``, read by Spark
    where it is: ``transactions.store_base``) over the tracks ``uris``: item factors, ``[tracks,
    factors]`` float32, row ``j`` for ``uris[j]`` (a track with no entry keeps zeros)."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    from modules.spark.transactions import store_base

    users = F.broadcast(spark.createDataFrame(pa.table({"pid": pa.array(np.asarray(pids, np.int64)),
                                                        "user": pa.array(np.arange(len(pids), dtype=np.int32))})))
    items = F.broadcast(spark.createDataFrame(pa.table({"track_uri": pa.array(np.asarray(uris, object).tolist(),
                                                                              pa.string()),
                                                        "item": pa.array(np.arange(len(uris), dtype=np.int32))})))
    entries = (spark.read.parquet(f"{store_base(store)}/playlist_tracks.parquet")
               .select(F.col("pid").cast("long").alias("pid"), "track_uri").distinct()
               .join(users, "pid").join(items, "track_uri")
               .select("user", "item", F.lit(1.0).cast("float").alias("rating")))
    if blocks is None:
        blocks = max(1, spark.sparkContext.defaultParallelism)
    entries = entries.repartition(blocks, "user").cache()
    n = entries.count()
    params = mllib_params(factors, regularization, alpha, iterations, n / max(len(pids), 1), reg_scale)
    log.info("MLlib ALS on %d entries (%d playlists, %d tracks): %s, %d blocks", n, len(pids), len(uris), params,
             blocks)
    als = ALS(userCol="user", itemCol="item", ratingCol="rating", implicitPrefs=True, nonnegative=False,
              seed=int(seed), numUserBlocks=blocks, numItemBlocks=blocks, coldStartStrategy="drop", **params)
    try:
        model = als.fit(entries)
        table = model.itemFactors.toArrow()
    finally:
        entries.unpersist()
    out = np.zeros((len(uris), int(factors)), np.float32)
    ids = table.column("id").to_numpy()
    vectors = table.column("features").combine_chunks()
    out[ids] = vectors.flatten().to_numpy().astype(np.float32).reshape(len(ids), int(factors))
    return out


class SparkALSRecommender(ALSRecommender):
    """``ALSRecommender`` whose item factors are fitted by MLlib's implicit ALS on Spark (module doc).

    Parameters
    ----------
    factors, regularization, alpha, iterations, seed
        As for ``ALSRecommender`` (implicit's meaning; mapped onto MLlib's by ``mllib_params``).
    spark : str or SparkSession, default=None
        The master to run on (a session is started for ``fit`` and stopped after, unless one was running), or a
        session; None: the session running in this process (the hybrid's ALS part under ``train --engine
        spark``), else ``local[*]``.
    reg_scale : {"mean", "none"}, default="mean"
        How ``regularization`` becomes MLlib's ``regParam`` (divided by the mean playlist length, or as it is).
    num_threads, show_progress
        Used by the fold-in only (as for ``ALSRecommender``).
    """

    def __init__(self, *, factors: int = 128, regularization: float = 0.05, alpha: float = 10.0,
                 iterations: int = 15, num_threads: int = 0, show_progress: bool = False, seed: int = 0,
                 spark=None, reg_scale: str = "mean"):
        super().__init__(factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
                         num_threads=num_threads, show_progress=show_progress, seed=seed)
        self.spark = spark
        self.reg_scale = reg_scale

    def fit(self, store, pids=None):
        from contextlib import nullcontext

        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        from modules.spark.session import is_uri, session_for, session_or_master
        from modules.spark.storage import fetch_store
        from modules.store import open_store

        for name in ("factors", "iterations"):
            v = getattr(self, name)
            _check_param("SparkALSRecommender", name, v, isinstance(v, int) and v > 0, "a positive int")
        _check_param("SparkALSRecommender", "reg_scale", self.reg_scale, self.reg_scale in REG_SCALES,
                     f"one of {REG_SCALES}")
        t0 = time.perf_counter()
        on = session_or_master(self.spark)
        with (session_for(on) if isinstance(on, str) else nullcontext(on)) as spark:
            if is_uri(store):  # MLlib reads the URI; the fold-in's matrix is built from a copy here
                store = fetch_store(spark, store)
            elif isinstance(store, (str, Path)):
                store = open_store(store)
            self._fit_common(store, pids)  # the matrix, fallback and title popularity, as ALSRecommender's
            m = self.matrix_
            Y = item_factors_spark(spark, store, m.pids, m.uris, factors=self.factors,
                                   regularization=self.regularization, alpha=self.alpha, iterations=self.iterations,
                                   seed=self.seed, reg_scale=self.reg_scale)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=self.factors, regularization=float(self.regularization),
                                            alpha=float(self.alpha), iterations=self.iterations,
                                            num_threads=self.num_threads, random_state=self.seed)
        # as ALSRecommender.fit: float16-rounded factors, so the model and its saved copy answer the same
        model.item_factors = Y.astype(FACTORS_DTYPE).astype(np.float32)
        model.user_factors = None
        self.model_ = model
        self._YtY = None
        self.ann_ = None  # an index of earlier factors would answer for these: built again by save or add_index
        self.fitted_ = True
        log.info("ALS on Spark: %d playlists x %d tracks in %.1f s", m.X.shape[0], m.X.shape[1],
                 time.perf_counter() - t0)
        return self
