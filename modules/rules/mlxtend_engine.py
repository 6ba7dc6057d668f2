"""The mlxtend engine: ``fpgrowth`` + ``association_rules`` on a sparse one-hot frame, and its memory guard.

It is the reference implementation (any ``max_len``) but pure Python, so it fits a few tens of thousands of
playlists. Before it runs, ``check_mlxtend_budget`` predicts its memory (first from item counts alone, then
from the sparse miner's exact counts of frequent pairs and triples) and refuses (``MemoryBudgetError``)
instead of being OOM-killed. The byte constants below are calibrated in docs/rules.md ("memory guard").
"""

from __future__ import annotations

import logging
import time

import numpy as np

from modules.errors import MemoryBudgetError, RulesError
from modules.rules.ruleset import RuleSet, _compact, _empty_ruleset
from modules.rules.sparse_miner import _Counts, _forward_neighbours, _frequent_items, _rules_from_counts, count_itemsets
from modules.rules.transactions import Transactions

log = logging.getLogger(__name__)

# Calibrated bytes per object of mlxtend's pure-Python structures (see docs/rules.md, "memory guard"):
# an FP-tree node (FPNode + its children dict + list slot), a frequent itemset (frozenset + float + row)
# and a rule (two frozensets + a row of eight floats + the result frame).
_FP_NODE_BYTES = 420
_ITEMSET_BYTES = 420
_RULE_BYTES = 900


def available_memory() -> int:
    """Bytes the kernel says a new allocation can use (``MemAvailable``; 8 GiB where /proc is missing): the
    default budget of the mlxtend engine is 80 % of it."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def _mlxtend_parts(n: int, n_items: int, entries: int, itemsets: float, rules: float) -> dict:
    """Bytes of mlxtend's structures: ``df.values`` (dense bool), the sparse frame and its CSR copy, the
    FP-tree (at most one node per entry), the frequent itemsets and the rules."""
    return {"dense_values": float(n) * n_items, "sparse_frame": entries * 24.0 + n_items * 2000.0,
            "fp_tree": entries * float(_FP_NODE_BYTES), "itemsets": itemsets * _ITEMSET_BYTES,
            "rules": rules * _RULE_BYTES}


def estimate_mlxtend(tx: Transactions, min_support: float, max_len: int | None = 3,
                     counts: _Counts | None = None, min_confidence: float | None = None) -> dict:
    """Predict the memory mlxtend's ``fpgrowth`` + ``association_rules`` need on these transactions.

    Exact parts: frequent tracks ``n1`` and frequent pairs (sparse counts, fast), and the dense
    ``n_playlists x n1`` boolean array fpgrowth makes internally (``df.values``). Bounded parts: FP-tree nodes
    (at most one per playlist entry of a frequent track) and itemsets of 3+ tracks (for ``max_len`` 3, the
    exact number of frequent triples when ``counts`` includes them; otherwise the number of sets whose pairs
    are all frequent, an upper bound). Rules: exact when the itemsets are (``max_len`` <= 3 with
    ``min_confidence`` given), else every split of every itemset.
    """
    n = tx.n_playlists
    if counts is None:
        counts = count_itemsets(tx, min_support, max_len=2)
    n1, n2 = len(counts.items), len(counts.pair_counts)
    nnz = int(counts.item_counts[counts.items].sum())
    if max_len is not None and max_len <= 2:
        bigger, bigger_rules, exact = 0.0, 0.0, True
    elif max_len == 3 and counts.max_len >= 3:
        bigger, bigger_rules, exact = float(len(counts.triple_counts)), 6.0 * len(counts.triple_counts), True
    else:
        from scipy.special import comb

        pos = np.searchsorted(counts.items, counts.pairs) if n2 else np.zeros((0, 2), np.int64)
        indptr, _ = _forward_neighbours(pos, counts.item_counts[counts.items]) if n2 else (np.zeros(n1 + 1), None)
        degree = np.diff(indptr).astype(np.float64)
        top = int(degree.max()) + 1 if len(degree) and max_len is None else (max_len or 2)
        bigger = bigger_rules = 0.0
        with np.errstate(over="ignore"):
            for k in range(3, top + 1):  # a k-itemset is its rarest track plus k-1 of that track's partners
                nk = float(comb(degree, k - 1).sum())
                bigger += nk
                bigger_rules += nk * (2.0 ** k - 2)
        exact = False
    itemsets = n1 + n2 + bigger
    rules = 2.0 * n2 + bigger_rules
    if exact and min_confidence is not None:
        rules = float(len(_rules_from_counts(counts, min_confidence)))
    parts = _mlxtend_parts(n, n1, nnz, itemsets, rules)
    return {"playlists": n, "frequent_tracks": n1, "frequent_pairs": n2, "entries": nnz,
            "larger_itemsets": bigger, "larger_itemsets_exact": exact, "itemsets": itemsets, "rules": rules,
            "bytes": float(sum(parts.values())), "parts": parts}


def check_mlxtend_budget(tx: Transactions, min_support: float, min_confidence: float, max_len: int | None,
                         memory_budget: float | None = None) -> tuple[dict, _Counts]:
    """Refuse (``MemoryBudgetError``) when the mlxtend engine would not fit; else its estimate and the counts.

    First a floor from item counts alone (the dense array inside fpgrowth and the FP-tree), so data far too
    large is refused in seconds; then the full estimate from exact pair (and, for ``max_len`` 3, triple) counts.
    ``memory_budget`` defaults to 80% of the memory available now.
    """
    n = tx.n_playlists
    if n == 0:
        raise RulesError("there are no playlists to mine; check the --mpd path (slices or a store).")
    budget = float(memory_budget) if memory_budget is not None else 0.8 * available_memory()
    # cheap floor first (item counts only): the dense array inside fpgrowth and the FP-tree
    item_counts, items = _frequent_items(tx, min_support)
    entries = int(item_counts[items].sum())
    floor = _mlxtend_parts(n, len(items), entries, 0, 0)
    if sum(floor.values()) > budget:
        raise MemoryBudgetError(
            f"the mlxtend engine would need at least {sum(floor.values()) / 1e9:.1f} GB for {n:,} playlists at "
            f"min_support {min_support:g} (a dense {n:,} x {len(items):,} array of the frequent tracks inside "
            f"fpgrowth, and an FP-tree of up to {entries:,} nodes), before any itemset; the budget is "
            f"{budget / 1e9:.1f} GB. Use --engine sparse (exact, same rules for max_len <= 3), or raise "
            "--min-support.")
    try:  # exact triples are cheap to count and make the estimate exact for max_len <= 3
        base = count_itemsets(tx, min_support, max_len=3 if max_len == 3 else 2, max_candidate_triples=5e7)
    except MemoryBudgetError:
        base = count_itemsets(tx, min_support, max_len=2)
    est = estimate_mlxtend(tx, min_support, max_len, counts=base, min_confidence=min_confidence)
    log.info("mlxtend estimate: %.2f GB for %d frequent tracks, %d pairs, %.3g larger itemsets (budget %.2f GB)",
             est["bytes"] / 1e9, est["frequent_tracks"], est["frequent_pairs"], est["larger_itemsets"], budget / 1e9)
    if est["bytes"] > budget:
        raise MemoryBudgetError(
            f"the mlxtend engine would need about {est['bytes'] / 1e9:.1f} GB for {n:,} playlists at min_support "
            f"{min_support:g} ({est['frequent_tracks']:,} frequent tracks, {est['entries']:,} of their playlist "
            f"entries, {est['frequent_pairs']:,} frequent pairs, "
            f"{'' if est['larger_itemsets_exact'] else 'up to '}{est['larger_itemsets']:.3g} larger itemsets); "
            f"the budget is {budget / 1e9:.1f} GB. Use --engine sparse (exact, same rules for max_len <= 3), "
            f"or raise --min-support, or lower --max-len.")
    return est, base


def mine_mlxtend(tx: Transactions, min_support: float, min_confidence: float, max_len: int | None = 3, *,
                 memory_budget: float | None = None, show_progress: bool = False) -> RuleSet:
    """Rules from mlxtend's ``fpgrowth`` + ``association_rules`` on a sparse one-hot frame.

    Only the columns of frequent tracks go into the frame (a track below ``min_support`` is in no frequent
    itemset, and the row count, hence every support, is unchanged): fpgrowth densifies its input
    (``df.values``), so this keeps that array at ``n_playlists x n_frequent`` booleans.

    ``show_progress`` is accepted for symmetry with the sparse engine; mlxtend has no progress bar (its
    ``verbose`` prints one line per conditional tree).

    Raises
    ------
    MemoryBudgetError
        When ``check_mlxtend_budget`` predicts more than ``memory_budget`` bytes (default: 80% of the memory
        available now); nothing is run.
    """
    import pandas as pd
    from mlxtend.frequent_patterns import association_rules, fpgrowth

    n = tx.n_playlists
    est, base = check_mlxtend_budget(tx, min_support, min_confidence, max_len, memory_budget)
    items = base.items
    if len(items) == 0:
        return _empty_ruleset(n)
    xf = tx.matrix[:, items].astype(bool).tocsc()
    frame = pd.DataFrame.sparse.from_spmatrix(xf, columns=[str(u) for u in tx.track_uris[items]])
    t0 = time.perf_counter()
    itemsets = fpgrowth(frame, min_support=min_support, use_colnames=True, max_len=max_len)
    log.info("fpgrowth: %d itemsets in %.1f s", len(itemsets), time.perf_counter() - t0)
    if itemsets.empty:
        return _empty_ruleset(n)
    rules = association_rules(itemsets, num_itemsets=n, metric="confidence", min_threshold=min_confidence)
    if rules.empty:
        return _empty_ruleset(n)
    index = {u: i for i, u in enumerate(tx.track_uris.tolist())}

    def encode(sets) -> np.ndarray:
        rows = [sorted(index[u] for u in s) for s in sets]
        width = max(len(r) for r in rows)
        return np.array([r + [-1] * (width - len(r)) for r in rows], dtype=np.int64)

    def to_count(s) -> np.ndarray:
        return np.rint(np.asarray(s, dtype=np.float64) * n).astype(np.int64)

    rs = RuleSet(encode(rules["antecedents"]), encode(rules["consequents"]), to_count(rules["antecedent support"]),
                 to_count(rules["consequent support"]), to_count(rules["support"]), n, np.zeros(0, object))
    return _compact(rs, tx.track_uris).sorted()
