"""The hybrid's rules on Spark: the evidence filter chosen on validation (``tune_evidence_spark``) or as given
(``fit_rule_model_spark``), from transactions that stay on Spark.

``modules.rules.tuning.tune_evidence`` needs three things from the training playlists: the tracks by popularity
(to fill the rules' answers), the number of pair rules of every (min count, cap) of the grid (``pair_rule_degrees``,
to plan within the rule budget) and the rules mined at the smallest min count left. Here all three are computed by
Spark from ``SparkTransactions`` (``transactions.py``), with the same definitions: the degrees from the pair rules
of ``mine_spark``'s own pairs and rule rows, the popularity as ``np.lexsort((uris, -counts))`` orders it (count
down, then URI; Spark orders strings by their UTF-8 bytes, which is code-point order, as Python's). The driver
gets counts, the top tracks and the rule table, and scores the grid's settings on the validation playlists with
``tuning.py``'s own functions, so the choice, the report and the rule table are the local engine's
(``tests/test_spark_train.py`` compares the rule tables of both engines).
"""

from __future__ import annotations

import logging
import time

from modules.metrics import SUBMISSION_SIZE
from modules.rules.evidence import Evidence, apply_evidence, check_evidence
from modules.rules.mining import mine_rules
from modules.rules.scoring import RuleModel
from modules.rules.tuning import (
    DEFAULT_MAX_RULES,
    GRID_CAPS,
    GRID_MIN_COUNTS,
    GRID_SMOOTHING,
    LADDER_MIN_COUNTS,
    _validation_playlists,
    check_max_rules,
    ladder_to_count,
    plan_counts,
    score_grid,
)
from modules.spark.rules import _counts, _rule_rows
from modules.spark.transactions import SparkTransactions, spark_transactions

log = logging.getLogger(__name__)


def popular_tracks_spark(tx: SparkTransactions, k: int) -> list[str]:
    """The ``k`` most frequent tracks of ``tx`` (ties by URI; unplayed tracks of the store last, by URI)."""
    from pyspark.sql import functions as F

    counts = tx.entries.groupBy("track_uri").count()
    top = (tx.tracks.join(counts, "track_uri", "left").fillna(0, ["count"])
           .orderBy(F.col("count").desc(), F.col("track_uri").asc()).limit(k).toArrow())
    return [str(u) for u in top.column("track_uri").to_pylist()]


def grid_rule_counts_spark(spark, tx: SparkTransactions, min_confidence: float, min_counts=GRID_MIN_COUNTS,
                           caps=GRID_CAPS) -> dict[tuple[int, int | None], int]:
    """``tuning.grid_rule_counts`` on Spark: ``{(min_count, cap): number of pair rules}``. The pairs in at least
    the smallest min count of playlists (mined as ``mine_spark`` mines them at that support), their rules both
    ways at ``min_confidence``, counted per antecedent at each min count; the driver gets one row."""
    from pyspark.sql import functions as F

    min_counts = sorted(int(c) for c in min_counts)
    n = tx.n_playlists
    # as pair_rule_degrees: the tracks frequent at this support; mine_spark keeps the pairs in at least
    # min_itemset_count(support, n)[1] playlists, which is min_counts[0] (the half playlist absorbs the rounding)
    support = (min_counts[0] - 0.5) / n
    items, pairs, _, cached = _counts(spark, tx.entries, n, support, 2, float("inf"))
    try:
        if pairs is None:
            return {(mc, cap): 0 for mc in min_counts for cap in caps}
        rules = _rule_rows(spark, items, pairs, None, n, min_confidence)
        degrees = rules.groupBy("a1").agg(*[F.sum((F.col("cac") >= mc).cast("long")).alias(f"d{mc}")
                                            for mc in min_counts])
        sums = [F.sum(F.col(f"d{mc}") if cap is None else F.least(F.col(f"d{mc}"), F.lit(cap))).alias(f"{mc}_{cap}")
                for mc in min_counts for cap in caps]
        row = degrees.agg(*sums).first()
    finally:
        for frame in cached:
            frame.unpersist()
    return {(mc, cap): int(row[f"{mc}_{cap}"] or 0) for mc in min_counts for cap in caps}


def tune_evidence_spark(data, split, *, spark=None, pids=None, min_confidence: float = 0.02, max_len: int = 2,
                        aggregation: str = "sum_confidence", max_rules: int = DEFAULT_MAX_RULES,
                        min_counts=GRID_MIN_COUNTS, caps=GRID_CAPS, smoothings=GRID_SMOOTHING,
                        ladder=LADDER_MIN_COUNTS, show_progress: bool = False, **ignored
                        ) -> tuple[Evidence, RuleModel, dict]:
    """``tuning.tune_evidence`` with the training playlists on Spark (``data``: a store, its URI, or
    ``SparkTransactions``; ``pids``: the playlists outside the validation ``split``). Returns the same choice,
    ``RuleModel`` and report. ``ignored``: the local engine's ``engine``, ``n_jobs`` and ``chunk_pairs``."""
    from modules.spark.session import active_session

    max_rules = check_max_rules(max_rules)
    spark = active_session(spark)
    t0 = time.perf_counter()
    tx = spark_transactions(spark, data, pids)
    try:
        playlists = _validation_playlists(split)
        popular = popular_tracks_spark(tx, SUBMISSION_SIZE * 4)
        counts = grid_rule_counts_spark(spark, tx, min_confidence, ladder_to_count(tx.n_playlists, min_counts, ladder),
                                        caps)
        _, rows, base = plan_counts(counts, max_rules, min_counts, caps, smoothings, ladder)
        rules = mine_rules(tx, engine="spark", spark=spark, min_support=min(1.0, (base - 0.5) / tx.n_playlists),
                           min_confidence=min_confidence, max_len=max_len)
    finally:
        if tx is not data:
            tx.release()
    log.info("rules on Spark: tuning the evidence filter on %d validation playlists: %d rules mined at min count %d",
             len(playlists), len(rules), base)
    return score_grid(rules, rows, base, playlists, popular, aggregation=aggregation, max_rules=max_rules, t0=t0,
                      show_progress=show_progress)


def fit_rule_model_spark(data, pids=None, *, spark=None, min_count: int = 1, max_consequents: int | None = None,
                         smoothing: float = 0.0, min_support: float | None = None, min_confidence: float = 0.02,
                         max_len: int = 2, aggregation: str = "sum_confidence", **ignored) -> RuleModel:
    """``RuleRecommender(...).fit(store, pids).model_`` with the playlists on Spark: the rules of ``data``'s
    ``pids`` at ``min_support`` (or at ``min_count``), kept by the evidence filter. ``ignored``: ``engine``,
    ``n_jobs``."""
    from modules.errors import RulesError
    from modules.rules.scoring import AGGREGATIONS
    from modules.spark.session import active_session

    if aggregation not in AGGREGATIONS:
        raise RulesError(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {aggregation!r}).")
    evidence = check_evidence(min_count, max_consequents, smoothing)
    if min_support is not None:
        evidence = Evidence(1, evidence.max_consequents, evidence.smoothing)  # min_count is ignored
    spark = active_session(spark)
    tx = spark_transactions(spark, data, pids)
    try:
        n = tx.n_playlists
        support = float(min_support) if min_support is not None else min(1.0, (min_count - 0.5) / n)
        rules = mine_rules(tx, engine="spark", spark=spark, min_support=support, min_confidence=min_confidence,
                           max_len=max_len)
    finally:
        if tx is not data:
            tx.release()
    rules = apply_evidence(rules, evidence)
    log.info("rules on Spark: %d rules from %d playlists", len(rules), n)
    return RuleModel(rules, aggregation)
