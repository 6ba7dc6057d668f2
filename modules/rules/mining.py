"""``mine_rules``: association rules of playlists from either engine, with its parameters checked first.

This is the one entry point (the ``rules`` command, ``RuleRecommender.fit``, notebooks): it validates the
thresholds with messages that say what to change, loads the transactions, runs ``engine="sparse"``
(``sparse_miner``, scales to a million playlists, ``max_len`` 2 or 3) or ``engine="mlxtend"``
(``mlxtend_engine``, the reference, small data only) or ``engine="spark"`` (``modules.spark.rules``, the sparse
miner's counts by Spark SQL, for data past one machine; imported only then) and records the parameters in
``RuleSet.meta``. The engines give the same rules, number for number.
"""

from __future__ import annotations

import logging
import time
from numbers import Integral, Real

from modules.errors import RulesError
from modules.rules.mlxtend_engine import mine_mlxtend
from modules.rules.ruleset import RuleSet
from modules.rules.sparse_miner import mine_sparse
from modules.rules.transactions import _as_transactions

log = logging.getLogger(__name__)

ENGINES = ("mlxtend", "sparse", "spark")


def check_params(min_support, min_confidence, max_len, engine: str = "sparse") -> None:
    """Validate thresholds once, at the boundary, with messages that say what to do."""
    if engine not in ENGINES:
        raise RulesError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r}).")
    checks = (("min_support (--min-support)", min_support,
               "e.g. 0.001 keeps itemsets found in at least 0.1% of the playlists"),
              ("min_confidence (--min-confidence)", min_confidence,
               "e.g. 0.1 keeps rules that hold at least 10% of the time"))
    for name, value, hint in checks:
        if isinstance(value, bool) or not isinstance(value, Real) or not (0.0 < float(value) <= 1.0):
            raise RulesError(f"{name} must be a number in (0, 1] (got {value!r}); {hint}.")
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, Integral) or max_len < 2):
        raise RulesError(f"max_len (--max-len) must be an integer of at least 2 (got {max_len!r}): a rule needs "
                         "one item on each side. Use 2 for A -> C rules, 3 to add {A, B} -> C.")
    if engine in ("sparse", "spark") and (max_len is None or max_len > 3):
        raise RulesError(f"the {engine} engine mines itemsets of at most 3 tracks (max_len 2 or 3, got "
                         f"{max_len!r}); use --engine mlxtend for longer rules (on small data), or --max-len 3.")


def check_chunk_pairs(chunk_pairs) -> None:
    """``RulesError`` unless ``chunk_pairs`` is None (auto) or an integer >= 0."""
    if chunk_pairs is not None and (isinstance(chunk_pairs, bool) or not isinstance(chunk_pairs, Integral)
                                    or chunk_pairs < 0):
        raise RulesError(f"chunk_pairs (--chunk-pairs) must be an integer >= 0 or left out for auto (got "
                         f"{chunk_pairs!r}): 0 counts pairs in memory, N counts them in chunks of playlists of N "
                         "pair occurrences each, spilled to disk, e.g. 33554432.")


def mine_rules(data, *, engine: str = "sparse", min_support: float = 0.005, min_confidence: float = 0.1,
               max_len: int | None = 3, pids=None, memory_budget: float | None = None,
               max_candidate_triples: float = 2e9, n_jobs: int = 1, show_progress: bool = False,
               spark=None, chunk_pairs: int | None = None, spill_dir=None) -> RuleSet:
    """Association rules of playlists, from either engine.

    Parameters
    ----------
    data : PlaylistStore, Transactions, or path (store directory or MPD slices)
        The playlists (transactions); tracks are the items.
    engine : {"sparse", "mlxtend", "spark"}, default="sparse"
        ``"sparse"`` scales to a million playlists (max_len 2 or 3); ``"mlxtend"`` is the reference; ``"spark"``
        counts on Spark (max_len 2 or 3), reading a store's Parquet files there.
    min_support : float in (0, 1], default=0.005
        Keep itemsets found in at least this share of the playlists.
    min_confidence : float in (0, 1], default=0.1
        Keep rules whose confidence reaches this.
    max_len : int >= 2, default=3
        Largest itemset (antecedent plus consequent).
    pids : array-like, default=None
        Mine only these playlists (e.g. training pids).
    memory_budget : float, default=None
        Bytes the mlxtend engine may use (default 80% of the available memory).
    max_candidate_triples : float, default=2e9
        The sparse engine's bound on the triples it examines (its time and memory).
    n_jobs : int, default=1
        Threads for the sparse engine's products (scipy releases the GIL there).
    spark : SparkSession or str, default=None
        The spark engine's session, or its master (``local[*]`` when None).
    chunk_pairs : int, default=None
        How the sparse engine counts pairs: None (auto) in memory
        while the frequent pairs are bounded by ``pair_chunks.IN_MEMORY_PAIRS`` (pair occurrences / minimum
        count), else in chunks of playlists spilled to disk and merged; 0 always in memory; a positive number,
        chunks of that many pair occurrences (``sparse_miner.count_itemsets``). The rules do not depend on it.
    spill_dir : path, default=None
        Where chunked counting makes its temporary folder (default: the system's temporary directory).

    Returns
    -------
    RuleSet
        Sorted by lift (ties by confidence, support, then URIs); ``meta`` records the parameters.
    """
    check_params(min_support, min_confidence, max_len, engine)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral) or n_jobs < 1:
        raise RulesError(f"n_jobs (--jobs) must be a positive integer (got {n_jobs!r}).")
    check_chunk_pairs(chunk_pairs)
    t0 = time.perf_counter()
    if engine == "spark":  # Spark reads the store itself: nothing is loaded here
        from modules.spark.rules import mine_spark

        rs = mine_spark(data, float(min_support), float(min_confidence), int(max_len), spark=spark, pids=pids,
                        max_candidate_triples=max_candidate_triples)
        rs.meta = {"engine": engine, "min_support": float(min_support), "min_confidence": float(min_confidence),
                   "max_len": max_len, "n_playlists": rs.n_playlists, "rules": len(rs), "load_seconds": 0.0,
                   "seconds": round(time.perf_counter() - t0, 3)}
        return rs
    tx = _as_transactions(data, pids)
    load_s = time.perf_counter() - t0
    log.info("loaded %d playlists, %d entries in %.1f s", tx.n_playlists, tx.matrix.nnz, load_s)
    if engine == "sparse":
        rs = mine_sparse(tx, float(min_support), float(min_confidence), int(max_len),
                         max_candidate_triples=max_candidate_triples, n_jobs=n_jobs, show_progress=show_progress,
                         chunk_pairs=chunk_pairs, spill_dir=spill_dir)
    else:
        rs = mine_mlxtend(tx, float(min_support), float(min_confidence), max_len, memory_budget=memory_budget,
                          show_progress=show_progress)
    rs.meta = {"engine": engine, "min_support": float(min_support), "min_confidence": float(min_confidence),
               "max_len": max_len, "n_playlists": tx.n_playlists, "rules": len(rs),
               "load_seconds": round(load_s, 3), "seconds": round(time.perf_counter() - t0, 3)}
    return rs
