"""The rules baseline refuses, before mining, a pair-rule table that would not fit its memory budget."""

from __future__ import annotations

import pytest

from modules.rules import MemoryBudgetError, RuleRecommender, Transactions, load_transactions
from modules.rules.sparse_miner import pair_rule_degrees
from modules.rules.table_budget import RULE_BYTES, check_rule_table

T = "spotify:track:"
A, B, C, D, E = (T + x for x in "ABCDE")
FIVE = [[A, B, C], [A, B, D, E], [A, C], [B, C, D, E], [A, B, C]]


def pair_rules(tx, min_count, min_confidence=0.02):
    return int(pair_rule_degrees(tx, [min_count], min_confidence)[:, 0].sum())


def test_a_bound_alone_passes_small_tables():
    tx = Transactions.from_lists(FIVE)
    ordered_pairs = sum(len(p) * (len(p) - 1) for p in FIVE)
    assert check_rule_table(tx, 1, 0.02, memory_budget=ordered_pairs * RULE_BYTES) is None  # no counting needed
    # just under the bound: counted exactly, and the exact table fits
    assert check_rule_table(tx, 1, 0.02, memory_budget=ordered_pairs * RULE_BYTES - 1) == pair_rules(tx, 1)


def test_refuses_over_the_budget_and_names_a_min_count_that_fits():
    tx = Transactions.from_lists(FIVE)
    one, two = pair_rules(tx, 1), pair_rules(tx, 2)
    assert one > two > 0
    with pytest.raises(MemoryBudgetError, match=rf"{one} pair rules on 5 playlists.*min count 2 gives {two}"):
        check_rule_table(tx, 1, 0.02, memory_budget=two * RULE_BYTES)
    with pytest.raises(MemoryBudgetError, match="no min count up to"):
        check_rule_table(tx, 1, 0.02, memory_budget=1)


def test_the_baseline_refuses_before_mining_and_fits_within_the_budget(store):
    tx = load_transactions(store)
    one = pair_rules(tx, 1)
    rec = RuleRecommender(memory_budget=one * RULE_BYTES - 1)
    with pytest.raises(MemoryBudgetError, match="Nothing was mined"):
        rec.fit(store)
    assert not hasattr(rec, "model_")
    fitted = RuleRecommender(memory_budget=one * RULE_BYTES).fit(store)
    assert fitted.model_.n_rules == one  # the count is the mined table (pair rules, no evidence filter)
    # min_support is turned into the count a pair needs: the same table as the min count it means
    n = tx.n_playlists
    by_support = RuleRecommender(min_support=3 / n, memory_budget=pair_rules(tx, 3) * RULE_BYTES).fit(store)
    assert by_support.model_.n_rules == pair_rules(tx, 3)
