"""``mine_spark``: frequent pairs and triples of tracks and their rules by Spark SQL, identical to the sparse miner.

The same definitions as ``modules.rules.sparse_miner`` (mlxtend 0.25's, threshold quirks included), done as joins
and group-bys so that the playlists never have to fit in one process:

1. item counts over the distinct ``(pid, track)`` entries; a track is frequent when ``count / n >= min_support``;
   the frequent tracks (few: they are bounded by ``1 / min_support`` times the mean playlist length) come to the
   driver, numbered in URI order, and go back to the executors as a broadcast table;
2. pairs: the frequent entries joined with themselves on the playlist (``a < b``), counted, kept when the count
   reaches ``ceil(min_support * n)`` and ``count / n >= min_support`` (both, as mlxtend: see ``_itemset_ok``);
3. triples (``max_len`` 3): the frequent pairs inside each playlist joined with themselves on ``(pid, a)``
   (``a < b < c``), kept when ``{b, c}`` is a frequent pair too (apriori), counted and kept as pairs are; their
   number of candidates is bounded first (``max_candidate_triples``) with the sparse miner's count and message;
4. rules: 1→1 from each pair both ways; {i, j}→k and k→{i, j} from each triple; ``confidence`` computed term for
   term as ``rule_metrics`` does and filtered at ``min_confidence``.

The rules come to the driver as Arrow (only counts: 28 bytes a rule) and become a ``RuleSet`` sorted as the other
engines sort it. ``rule_frame`` gives the same rules as a Spark DataFrame with support, confidence and lift, for a
pipeline that stays on Spark (``with rule_frame(...) as frame:``; leaving the block releases its caches).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pyarrow as pa

from modules.errors import MemoryBudgetError
from modules.rules.ruleset import RuleSet, _compact, _empty_ruleset
from modules.rules.sparse_miner import _min_count
from modules.spark.transactions import spark_transactions

log = logging.getLogger(__name__)


def min_itemset_count(min_support: float, n: int) -> tuple[int, int]:
    """The smallest counts that pass mlxtend's tests: ``(single track, itemset of two or more)``.

    A track is frequent when ``count / n >= min_support``; a larger itemset also needs ``count >=
    ceil(min_support * n)`` (``_itemset_ok``). ``count / n`` grows with ``count``, so each test is one integer
    bound, found here with the same float division the sparse miner does; Spark then compares integers only.
    """
    c = max(0, math.floor(min_support * n) - 2)
    while c / float(n) < min_support:
        c += 1
    return c, max(c, _min_count(min_support, n))


def _candidate_triples(pairs, items: pa.Table, spark) -> int:
    """The sparse miner's bound (``_triple_counts``): pairs of forward partners, summed over tracks, the pair graph
    oriented from the rarer track to the more common one (ties by URI order)."""
    from pyspark.sql import functions as F

    ids = items.column("id").to_numpy()
    counts = items.column("count").to_numpy()
    rank = np.empty(len(ids), np.int64)
    rank[np.lexsort((ids, counts))] = np.arange(len(ids))
    ranks = F.broadcast(spark.createDataFrame(pa.table({"id": pa.array(ids), "rank": pa.array(rank)})))
    ra, rb = ranks.withColumnRenamed("id", "a").withColumnRenamed("rank", "ra"), \
        ranks.withColumnRenamed("id", "b").withColumnRenamed("rank", "rb")
    degree = (pairs.join(ra, "a").join(rb, "b")
              .select(F.when(F.col("ra") < F.col("rb"), F.col("a")).otherwise(F.col("b")).alias("src"))
              .groupBy("src").count())
    total = degree.select(F.sum(F.col("count") * (F.col("count") - 1) / 2).cast("long")).first()[0]
    return int(total or 0)


def _counts(spark, entries, n: int, min_support: float, max_len: int, max_candidate_triples: float):
    """Frequent tracks (an Arrow table ``id, track_uri, count``, ids in URI order), the Spark DataFrames of
    frequent pairs ``(a, b, count)`` and triples ``(a, b, c, count)`` (None for ``max_len`` 2), and the frames
    cached on the way (to ``unpersist`` when done)."""
    from pyspark.sql import functions as F

    min_item, min_set = min_itemset_count(min_support, n)
    freq = entries.groupBy("track_uri").count().filter(F.col("count") >= min_item).toArrow()
    freq = freq.sort_by("track_uri")
    items = pa.table({"id": pa.array(np.arange(freq.num_rows, dtype=np.int32)),
                      "track_uri": freq.column("track_uri").combine_chunks(),
                      "count": freq.column("count").cast(pa.int64()).combine_chunks()})
    log.info("%d playlists: %d frequent tracks (min count %d)", n, items.num_rows, min_item)
    if items.num_rows < 2:
        return items, None, None, []
    ids = F.broadcast(spark.createDataFrame(items.select(["track_uri", "id"])))
    fb = entries.join(ids, "track_uri").select("pid", "id").cache()  # the frequent entries, used twice or more
    x, y = fb.alias("x"), fb.alias("y")
    # the frequent tracks two by two inside each playlist (a < b)
    inside = (x.join(y, (F.col("x.pid") == F.col("y.pid")) & (F.col("x.id") < F.col("y.id")))
              .select(F.col("x.pid").alias("pid"), F.col("x.id").alias("a"), F.col("y.id").alias("b")))
    pairs = inside.groupBy("a", "b").count().filter(F.col("count") >= min_set).cache()
    if max_len < 3 or pairs.isEmpty():
        return items, pairs, None, [fb, pairs]
    candidates = _candidate_triples(pairs.select("a", "b"), items, spark)
    if candidates > max_candidate_triples:
        fb.unpersist()
        pairs.unpersist()
        raise MemoryBudgetError(
            f"the spark engine would examine {candidates:,} candidate triples (pairs of frequent partners of "
            f"one track), more than the bound of {int(max_candidate_triples):,}; raise --min-support, or use "
            "--max-len 2 (pair rules only).")
    keys = pairs.select("a", "b")
    # the frequent pairs inside each playlist, then two of them sharing their first track: {a, b, c}
    inside = inside.join(keys, ["a", "b"], "left_semi")
    p, q = inside.alias("p"), inside.alias("q")
    bc = keys.select(F.col("a").alias("b"), F.col("b").alias("c"))
    triples = (p.join(q, (F.col("p.pid") == F.col("q.pid")) & (F.col("p.a") == F.col("q.a"))
                      & (F.col("p.b") < F.col("q.b")))
               .select(F.col("p.a").alias("a"), F.col("p.b").alias("b"), F.col("q.b").alias("c"))
               .join(bc, ["b", "c"], "left_semi")
               .groupBy("a", "b", "c").count()
               .filter(F.col("count") >= min_set))
    return items, pairs, triples, [fb, pairs]


def _rule_rows(spark, items: pa.Table, pairs, triples, n: int, min_confidence: float):
    """Every rule as ``a1, a2, c1, c2`` (track ids, -1 pads), its three counts, support, confidence and lift,
    computed as ``rule_metrics`` computes them, filtered at ``min_confidence``."""
    from pyspark.sql import functions as F

    counts = F.broadcast(spark.createDataFrame(items.select(["id", "count"])))

    def item_count(col: str, name: str):
        return counts.select(F.col("id").alias(col), F.col("count").alias(name))

    none = F.lit(-1)
    pair_rules = pairs.join(item_count("a", "na"), "a").join(item_count("b", "nb"), "b")
    parts = [pair_rules.select(F.col("a").alias("a1"), none.alias("a2"), F.col("b").alias("c1"), none.alias("c2"),
                               F.col("na").alias("ca"), F.col("nb").alias("cc"), F.col("count").alias("cac")),
             pair_rules.select(F.col("b").alias("a1"), none.alias("a2"), F.col("a").alias("c1"), none.alias("c2"),
                               F.col("nb").alias("ca"), F.col("na").alias("cc"), F.col("count").alias("cac"))]
    if triples is not None:
        pc = pairs.select(F.col("a").alias("i"), F.col("b").alias("j"), F.col("count").alias("pc"))
        for i, j, k in (("a", "b", "c"), ("a", "c", "b"), ("b", "c", "a")):  # {i, j} -> k and k -> {i, j}
            t = (triples.select(F.col(i).alias("i"), F.col(j).alias("j"), F.col(k).alias("k"), "count")
                 .join(pc, ["i", "j"]).join(item_count("k", "nk"), "k"))
            parts.append(t.select(F.col("i").alias("a1"), F.col("j").alias("a2"), F.col("k").alias("c1"),
                                  none.alias("c2"), F.col("pc").alias("ca"), F.col("nk").alias("cc"),
                                  F.col("count").alias("cac")))
            parts.append(t.select(F.col("k").alias("a1"), none.alias("a2"), F.col("i").alias("c1"),
                                  F.col("j").alias("c2"), F.col("nk").alias("ca"), F.col("pc").alias("cc"),
                                  F.col("count").alias("cac")))
    rules = parts[0]
    for part in parts[1:]:
        rules = rules.unionByName(part)
    nn = F.lit(float(n))
    s_a, s_c, s_ac = F.col("ca") / nn, F.col("cc") / nn, F.col("cac") / nn
    confidence = (s_ac * nn) / (s_a * nn)  # term for term as rule_metrics (and mlxtend) computes it
    return (rules.withColumn("support", s_ac).withColumn("confidence", confidence)
            .withColumn("lift", F.col("confidence") / s_c)
            .filter(F.col("confidence") >= F.lit(float(min_confidence))))


@contextmanager
def rule_frame(spark, data, min_support: float, min_confidence: float, max_len: int = 3, *, pids=None,
               max_candidate_triples: float = 2e9) -> Iterator:
    """The rules as a Spark DataFrame (antecedents and consequents as arrays of URIs, the three counts, support,
    confidence, lift), for a pipeline that stays on Spark; ``mine_spark`` brings the same rules to the driver.
    A context manager: the frame reads the frequent entries and pairs cached in the session, and leaving the
    ``with`` block releases them (use the frame inside it)."""
    from pyspark.sql import functions as F

    tx = spark_transactions(spark, data, pids)
    cached = []
    try:
        items, pairs, triples, cached = _counts(spark, tx.entries, tx.n_playlists, min_support, max_len,
                                                max_candidate_triples)
        if pairs is None:
            yield spark.createDataFrame([], "antecedents array<string>, consequents array<string>, "
                                            "antecedent_count long, consequent_count long, count long, "
                                            "support double, confidence double, lift double")
            return
        rows = _rule_rows(spark, items, pairs, triples, tx.n_playlists, min_confidence)
        uris = F.broadcast(spark.createDataFrame(items.select(["id", "track_uri"])))
        for side in ("a1", "a2", "c1", "c2"):
            rows = rows.join(uris.select(F.col("id").alias(side), F.col("track_uri").alias(f"{side}_uri")), side,
                             "left")

        def uri_list(first: str, second: str):
            return F.filter(F.array(F.col(f"{first}_uri"), F.col(f"{second}_uri")), lambda u: u.isNotNull())

        yield rows.select(uri_list("a1", "a2").alias("antecedents"), uri_list("c1", "c2").alias("consequents"),
                          F.col("ca").alias("antecedent_count"), F.col("cc").alias("consequent_count"),
                          F.col("cac").alias("count"), "support", "confidence", "lift")
    finally:
        for frame in cached:
            frame.unpersist()
        if tx is not data:  # built here: released here (given transactions stay the caller's)
            tx.release()


def mine_spark(data, min_support: float, min_confidence: float, max_len: int = 3, *, spark=None, pids=None,
               max_candidate_triples: float = 2e9) -> RuleSet:
    """Rules of up to three tracks counted by Spark: the sparse miner's rules, number for number.

    Parameters
    ----------
    data : PlaylistStore, path or URI of a store, Transactions or SparkTransactions
        A store is read by Spark straight from its Parquet files (``spark_transactions``).
    spark : SparkSession or str, default=None
        A session, or a master for ``spark_session`` (None: the session running in this process, e.g. the one
        ``train --engine spark`` started, else ``local[*]``).
    pids, max_candidate_triples
        As for ``mine_sparse`` (only these playlists; the bound on the triples examined).
    """
    from modules.spark.session import active_session

    spark = active_session(spark)
    t0 = time.perf_counter()
    tx = spark_transactions(spark, data, pids)
    n, cached = tx.n_playlists, []
    try:
        items, pairs, triples, cached = _counts(spark, tx.entries, n, min_support, max_len, max_candidate_triples)
        if pairs is None:
            return _empty_ruleset(n)
        table = (_rule_rows(spark, items, pairs, triples, n, min_confidence)
                 .select("a1", "a2", "c1", "c2", "ca", "cc", "cac").toArrow())
    finally:
        for frame in cached:
            frame.unpersist()
        if tx is not data:  # built here: released here (given transactions stay the caller's)
            tx.release()
    if table.num_rows == 0:
        return _empty_ruleset(n)

    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy().astype(np.int64)

    rs = RuleSet(np.column_stack([col("a1"), col("a2")]), np.column_stack([col("c1"), col("c2")]), col("ca"),
                 col("cc"), col("cac"), n, np.zeros(0, object))
    uris = items.column("track_uri").to_numpy(zero_copy_only=False).astype(object)
    rs = _compact(rs, uris).sorted()
    log.info("%d rules from %d playlists by Spark in %.1f s", len(rs), n, time.perf_counter() - t0)
    return rs
