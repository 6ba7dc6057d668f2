"""Refuse a pair-rule table that would not fit in memory, before mining it.

The rules baseline mines at min count 1 by default: on small data the best setting, on a long tail every pair of
every one-off playlist. On the 100,000-playlist MPD-shaped world that is 331 M rules and the process was killed by
the kernel at 22 GB (docs/benchmarks.md). ``check_rule_table`` bounds the table first and, only when the bound is
over the budget, counts its pair rules exactly without keeping any pair (``sparse_miner.pair_rule_degrees``); a
table over the budget is refused with the smallest min count that fits, as the mlxtend engine's guard does.
"""

from __future__ import annotations

import logging

import numpy as np

from modules.errors import MemoryBudgetError
from modules.rules.mlxtend_engine import available_memory
from modules.rules.sparse_miner import pair_rule_degrees
from modules.rules.transactions import Transactions

log = logging.getLogger(__name__)

# Resident bytes per rule of RuleRecommender.fit (mining, the evidence filter, the RuleModel's index), calibrated
# with `python -m benchmarks.rule_counts STORE --fit`: 15.8 GiB for 94.1 M rules (20,000-playlist MPD-shaped
# world), 2.1 GiB for 12.9 M (3,000-playlist world).
RULE_BYTES = 170
# the min counts offered instead when the asked one does not fit
LADDER = (2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def check_rule_table(tx: Transactions, min_count: int, min_confidence: float,
                     memory_budget: float | None = None) -> int | None:
    """Raise ``MemoryBudgetError`` when the pair rules at ``min_count`` would take more than ``memory_budget``
    bytes (default 80 % of the memory available now); else return their number, or ``None`` when a bound alone
    showed they fit (every ordered pair seen in ``min_count`` playlists or more is counted ``min_count`` times
    among the playlists' ordered pairs, so there are at most ``sum(n * (n - 1)) / min_count`` of them)."""
    budget = 0.8 * available_memory() if memory_budget is None else float(memory_budget)
    min_count = max(int(min_count), 1)
    n = np.diff(tx.matrix.indptr).astype(np.float64)
    if float((n * (n - 1.0)).sum()) / min_count * RULE_BYTES <= budget:
        return None
    rungs = [min_count] + [c for c in LADDER if c > min_count]
    deg = pair_rule_degrees(tx, rungs, min_confidence)
    rules = {c: int(deg[:, i].sum()) for i, c in enumerate(rungs)}
    log.info("rules: %d pair rules at min count %d (%.1f GB; budget %.1f GB)", rules[min_count], min_count,
             rules[min_count] * RULE_BYTES / 1e9, budget / 1e9)
    if rules[min_count] * RULE_BYTES <= budget:
        return rules[min_count]
    fits = next((c for c in rungs[1:] if 0 < rules[c] * RULE_BYTES <= budget), None)  # one that keeps rules
    hint = (f"min count {fits} gives {rules[fits]:,} ({rules[fits] * RULE_BYTES / 1e9:.1f} GB): pass "
            f"--params '{{\"min_count\": {fits}}}'" if fits is not None else "no min count up to "
            f"{rungs[-1]:,} keeps rules within it: raise min_confidence")
    raise MemoryBudgetError(
        f"the rules at min count {min_count} would not fit: {rules[min_count]:,} pair rules on {tx.n_playlists:,} "
        f"playlists, about {rules[min_count] * RULE_BYTES / 1e9:.1f} GB against a budget of {budget / 1e9:.1f} GB "
        f"(80 % of the memory available, or memory_budget). Nothing was mined; {hint}, or a larger memory_budget.")
