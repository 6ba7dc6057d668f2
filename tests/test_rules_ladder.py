"""The evidence grid's min counts extend above 10 when the data needs them (``tuning.search_min_counts``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from modules.rules import Transactions
from modules.rules.tuning import (
    GRID_CAPS,
    GRID_MIN_COUNTS,
    LADDER_MIN_COUNTS,
    MINING_FACTOR,
    count_and_plan,
    grid_rule_counts,
    search_min_counts,
    tune_evidence,
)

COUNTED = GRID_MIN_COUNTS + (20, 50, 100, 200, 500, 1000)


def zipf_lists(seed: int, n: int = 1500, tracks: int = 250) -> list[list[str]]:
    """Playlists whose popular tracks meet in hundreds of them: pairs reach the ladder's rungs."""
    rng = np.random.default_rng(seed)
    return [[f"spotify:track:{int(t):04d}" for t in rng.zipf(1.4, int(rng.integers(2, 35))) % tracks]
            for _ in range(n)]


def brute_force_counts(tx: Transactions, min_confidence: float, min_counts, caps) -> dict:
    """Pair rules by a dense co-occurrence matrix: ``a -> b`` when the pair is in ``mc`` playlists and
    ``count(a, b) / count(a)`` reaches ``min_confidence``; a cap keeps ``min(cap, rules of a)`` per track."""
    x = tx.matrix.toarray().astype(np.int64)
    co = x.T @ x
    item = np.diag(co).copy()
    np.fill_diagonal(co, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        conf = co / item[:, None]
    out = {}
    for mc in min_counts:
        deg = ((co >= mc) & (conf >= min_confidence)).sum(axis=1)
        for cap in caps:
            out[(mc, cap)] = int(deg.sum() if cap is None else np.minimum(deg, cap).sum())
    return out


@pytest.fixture(scope="module")
def tx():
    return Transactions.from_lists(zipf_lists(3))


@pytest.fixture(scope="module")
def counts(tx):
    return grid_rule_counts(tx, 0.02, COUNTED)


@pytest.mark.parametrize("chunk_pairs", [0, 3_000])
def test_counts_at_the_ladder_rungs_equal_a_brute_force_count(tx, counts, chunk_pairs):
    got = grid_rule_counts(tx, 0.02, COUNTED, chunk_pairs=chunk_pairs)
    assert got == counts == brute_force_counts(tx, 0.02, COUNTED, GRID_CAPS)
    assert counts[(100, None)] > counts[(500, None)] > 0  # the high rungs really count something


def test_the_grid_stays_put_while_min_count_ten_is_within_reach(counts):
    assert search_min_counts(counts, counts[(10, None)]) == GRID_MIN_COUNTS
    # over the budget but within the mining budget, with a cap that fits: still the grid as it was
    assert search_min_counts(counts, counts[(10, 50)]) == GRID_MIN_COUNTS
    assert search_min_counts(counts, counts[(10, None)], ladder=()) == GRID_MIN_COUNTS


@pytest.mark.parametrize("max_rules", [None, 40, 3])
def test_the_grid_extends_while_its_highest_min_count_is_out_of_reach(counts, max_rules):
    max_rules = max_rules or counts[(10, None)] // MINING_FACTOR - 1  # only the mining budget is exceeded at 10

    def out_of_reach(mc):
        return (counts[(mc, None)] > MINING_FACTOR * max_rules
                or min(counts[(mc, cap)] for cap in GRID_CAPS) > max_rules)

    got = search_min_counts(counts, max_rules)
    assert got[:len(GRID_MIN_COUNTS)] == GRID_MIN_COUNTS and len(got) > len(GRID_MIN_COUNTS)
    assert list(got[len(GRID_MIN_COUNTS):]) == list(LADDER_MIN_COUNTS[:len(got) - len(GRID_MIN_COUNTS)])
    assert all(out_of_reach(mc) for mc in got[len(GRID_MIN_COUNTS) - 1:-1])
    assert not out_of_reach(got[-1])  # stops at the first rung within reach
    # ladder rungs that were not counted are never searched
    assert search_min_counts({k: v for k, v in counts.items() if k[0] <= 20}, 3)[-1] == 20


def fake_split(lists: list[list[str]], n_validation: int = 60):
    """What ``tune_evidence`` reads of a split: the challenge's seeds and the held-out tracks."""
    playlists, truth = [], {}
    for pid, tracks in enumerate(lists[:n_validation]):
        half = len(tracks) // 2
        playlists.append({"pid": pid, "tracks": [{"track_uri": t} for t in tracks[:half]]})
        truth[str(pid)] = {"tracks": tracks[half:]}
    return SimpleNamespace(challenge={"playlists": playlists}, truth=truth)


def test_tuning_with_a_small_budget_mines_above_ten_and_keeps_within_it():
    lists = zipf_lists(4, n=1200)
    tx, split = Transactions.from_lists(lists[60:]), fake_split(lists)
    budget = grid_rule_counts(tx, 0.02, [10])[(10, None)] // (2 * MINING_FACTOR)
    chosen, model, report = tune_evidence(tx, split, max_rules=budget)
    assert report["mined_min_count"] > 10 and chosen.min_count > 10
    assert len(model.rules) == report["chosen"]["rules"] <= budget
    searched = sorted({r["min_count"] for r in report["grid"]})
    assert searched[:len(GRID_MIN_COUNTS)] == list(GRID_MIN_COUNTS) and searched[-1] == report["mined_min_count"]
    # without the ladder the same budget ends in the loud fallback: a table over the budget
    _, old, old_report = tune_evidence(tx, split, max_rules=budget, ladder=())
    assert old_report["mined_min_count"] == 10 and len(old.rules) > budget


def test_tuning_is_unchanged_where_min_count_ten_is_within_reach():
    lists = zipf_lists(5, n=800)
    tx, split = Transactions.from_lists(lists[60:]), fake_split(lists)
    _, model, report = tune_evidence(tx, split)
    _, old, old_report = tune_evidence(tx, split, ladder=())
    report.pop("seconds"), old_report.pop("seconds")
    assert report == old_report and sorted({r["min_count"] for r in report["grid"]}) == list(GRID_MIN_COUNTS)
    assert model.rules.to_frame().equals(old.rules.to_frame())


def test_count_and_plan_counts_only_rungs_some_pair_could_reach(tx):
    counts, searched, rows, base = count_and_plan(tx, 0.02, 10**9)
    assert {mc for mc, _ in counts} == set(GRID_MIN_COUNTS) | {r for r in LADDER_MIN_COUNTS if r <= tx.n_playlists}
    assert searched == GRID_MIN_COUNTS and base == 1 and len(rows) == len(GRID_MIN_COUNTS) * 3 * 2
