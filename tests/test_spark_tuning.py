"""The hybrid's rules with the spark engine (``modules.spark.tuning``): the evidence filter chosen on the same
validation playlists as the local engine chooses it (every setting's rule count and NDCG, the choice) and the same
rule tables, tuned and as given, with the transactions on Spark: the driver never loads them (``load_transactions``
is made to fail)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.spark_support import module_spark  # noqa: F401 (the fixture spark)

GIVEN = {"min_count": 2, "max_consequents": 50}


@pytest.fixture(scope="module")
def local(train_store):
    """The local engine's answers: tuned on the validation split and refit on every playlist."""
    from modules.hybrid.sources.rules import fit_rules
    from modules.validation import carve_validation

    pids = train_store.playlists["pid"].to_numpy()
    split = carve_validation(train_store, pids, per_category=2, seed=0).split
    tuned, report = fit_rules(train_store, split.train_pids, None, split)
    refit, _ = fit_rules(train_store, pids, None, tuning=report)
    return {"split": split, "tuned": tuned, "report": report, "refit": refit}


def no_driver_transactions(monkeypatch) -> None:
    import modules.rules.recommender
    import modules.rules.transactions

    def refuse(*args, **kwargs):
        raise AssertionError("transactions loaded on the driver")

    for module in (modules.rules.transactions, modules.rules.recommender):
        monkeypatch.setattr(module, "load_transactions", refuse)


def same_rules(got, want) -> None:
    assert len(want.rules) > 100
    pd.testing.assert_frame_equal(got.rules.to_frame(), want.rules.to_frame(), check_exact=False, rtol=1e-9, atol=0)


def without_seconds(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "seconds"}


@pytest.mark.slow  # the tuning mines and scores the grid on both engines: minutes on a busy machine
def test_tuned_on_spark_as_on_the_local_engine(spark, train_store, local, monkeypatch):
    from modules.hybrid.sources.rules import fit_rules

    no_driver_transactions(monkeypatch)
    split = local["split"]
    tuned, report = fit_rules(train_store, split.train_pids, {"engine": "spark"}, split)
    assert without_seconds(report) == without_seconds(local["report"]) and len(report["grid"]) > 10
    same_rules(tuned, local["tuned"])
    refit, _ = fit_rules(train_store, train_store.playlists["pid"].to_numpy(), {"engine": "spark"}, tuning=report)
    same_rules(refit, local["refit"])


def test_a_given_setting_mines_on_spark_as_locally(spark, train_store, monkeypatch):
    from modules.hybrid.sources.rules import fit_rules

    pids = train_store.playlists["pid"].to_numpy()[::2]
    want, _ = fit_rules(train_store, pids, GIVEN)
    no_driver_transactions(monkeypatch)
    got, report = fit_rules(train_store, pids, {**GIVEN, "engine": "spark"})
    assert report is None
    same_rules(got, want)


def test_the_ladders_rule_counts_on_spark_as_locally(spark, train_store):
    """The rule counts by which ``plan_counts`` extends the grid past its min counts (``search_min_counts``) are
    the local engine's on Spark too, so both engines search the same min counts under the same budget. The tiny
    world has no pair in 10 playlists, so the grid here starts at min count 1 and its ladder is 2, 3, 5, 10."""
    from modules.rules.transactions import load_transactions
    from modules.rules.tuning import GRID_CAPS, GRID_SMOOTHING, grid_rule_counts, ladder_to_count, plan_counts
    from modules.spark.transactions import spark_transactions
    from modules.spark.tuning import grid_rule_counts_spark

    grid, ladder = (1,), (2, 3, 5, 10)
    local_tx = load_transactions(train_store)
    counted = ladder_to_count(local_tx.n_playlists, grid, ladder)
    want = grid_rule_counts(local_tx, 0.02, counted, GRID_CAPS)
    tx = spark_transactions(spark, train_store)
    try:
        got = grid_rule_counts_spark(spark, tx, 0.02, counted, GRID_CAPS)
    finally:
        tx.release()
    assert got == want and want[(2, None)] > want[(3, None)] > want[(5, None)] > 0
    budget = want[(3, None)] - 1  # min counts 1, 2 and 3 out of reach; 5 fits
    assert plan_counts(got, budget, grid, GRID_CAPS, GRID_SMOOTHING, ladder)[0] == (1, 2, 3, 5)
    assert plan_counts(got, 10**9, grid, GRID_CAPS, GRID_SMOOTHING, ladder)[0] == (1,)
