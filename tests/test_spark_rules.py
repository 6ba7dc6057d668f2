"""``--engine spark`` for rules: the sparse miner's rules, number for number (1e-9), counted by Spark SQL.

The default suite checks pairs and triples on the world through the command line, pairs only on the world, and
the five-playlist known answer; ``slow`` adds a denser threshold (4,499 triples), a pid subset and the Spark-side
rule frame (about two minutes more on a busy two-core machine).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from modules.rules import RULE_COLUMNS, Transactions, load_transactions, mine_rules, read_rules
from tests.spark_support import spark_or_skip
from tests.test_rules import FIVE, assert_same_rules


@pytest.fixture(scope="module")
def spark():
    session = spark_or_skip()
    yield session
    session.stop()


@pytest.mark.parametrize("min_support,min_confidence,max_len", [
    pytest.param(0.0075, 0.3, 3, marks=pytest.mark.slow), (0.0125, 0.05, 2)])
def test_spark_equals_sparse_on_world(spark, store, min_support, min_confidence, max_len):
    s = mine_rules(load_transactions(store), engine="sparse", min_support=min_support,
                   min_confidence=min_confidence, max_len=max_len)
    k = mine_rules(store, engine="spark", min_support=min_support, min_confidence=min_confidence, max_len=max_len,
                   spark=spark)
    assert len(s) > 0 and k.meta["engine"] == "spark" and k.n_playlists == 400
    assert_same_rules(s, k)


def test_known_answers_given_as_transactions(spark):
    five = Transactions.from_lists(FIVE)  # 0.4 * 5 = 2 playlists at least, triples included
    assert_same_rules(mine_rules(five, min_support=0.4, min_confidence=0.5),
                      mine_rules(five, engine="spark", min_support=0.4, min_confidence=0.5, spark=spark))


@pytest.mark.slow
def test_spark_equals_sparse_on_a_pid_subset(spark, train_store):
    rng = np.random.default_rng(7)
    pids = rng.choice(train_store.playlists["pid"].to_numpy(), size=150, replace=False)
    s = mine_rules(load_transactions(train_store, pids), engine="sparse", min_support=0.02, min_confidence=0.2)
    k = mine_rules(train_store, engine="spark", min_support=0.02, min_confidence=0.2, pids=pids, spark=spark)
    assert len(s) > 0 and k.n_playlists == 150
    assert_same_rules(s, k)


@pytest.mark.slow
def test_rule_frame_metrics_match_the_rule_table(spark, store):
    from modules.spark.rules import rule_frame

    rs = mine_rules(load_transactions(store), min_support=0.01, min_confidence=0.1).to_frame()
    before = {r.id() for r in spark.sparkContext._jsc.getPersistentRDDs().values()}
    with rule_frame(spark, store, 0.01, 0.1, 3) as rules:
        frame = rules.toArrow().to_pandas()
        assert len(spark.sparkContext._jsc.getPersistentRDDs()) > len(before)  # the counts are cached while used
    assert {r.id() for r in spark.sparkContext._jsc.getPersistentRDDs().values()} == before  # and released after
    assert len(frame) == len(rs) > 0
    key = {(tuple(a), tuple(c)): i for i, (a, c) in enumerate(zip(rs["antecedents"], rs["consequents"]))}
    rows = [key[(tuple(a), tuple(c))] for a, c in zip(frame["antecedents"], frame["consequents"])]
    for col in ("antecedent_count", "consequent_count", "count", "support", "confidence", "lift"):
        np.testing.assert_allclose(frame[col].to_numpy(float), rs[col].to_numpy(float)[rows], rtol=0, atol=1e-9,
                                   err_msg=col)


def test_cli_spark_on_slices_writes_the_sparse_engines_file(spark, world_dir, tmp_path):
    from modules.cli import main

    args = ["rules", "--mpd", str(world_dir), "--min-support", "0.01", "--min-confidence", "0.1", "--min-count", "5",
            "--max-consequents", "3"]
    assert main([*args, "--out", str(tmp_path / "sparse.parquet")]) == 0
    assert main([*args, "--out", str(tmp_path / "spark.parquet"), "--spark", "local[2]"]) == 0  # ingest on Spark
    assert spark.sparkContext._jsc is not None  # the test's session was left running
    s, k = read_rules(tmp_path / "sparse.parquet"), read_rules(tmp_path / "spark.parquet")
    assert 0 < len(k) < k.meta["n_playlists"] * 10 and k.meta["evidence"] == s.meta["evidence"]
    assert any(len(a) == 2 for a in k.uri_lists("antecedents"))  # triples' rules are in
    assert_same_rules(s, k)
    assert list(k.to_frame().columns) == list(RULE_COLUMNS)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "modules", "-q", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args,match", [
    (["--spark", "yarn-ish"], "error: --spark 'yarn-ish' is not a Spark master; give local[*]"),
    (["--engine", "sparse", "--spark", "local[2]"], "error: --spark local[2] runs the spark engine, not --engine"),
    (["--engine", "spark", "--max-len", "4"], "error: the spark engine mines itemsets of at most 3 tracks"),
])
def test_cli_spark_bad_options_are_one_line_without_a_jvm(store, tmp_path, args, match):
    res = run_cli("rules", "--mpd", str(store.path), "--out", str(tmp_path / "r.parquet"), *args)
    assert res.returncode == 2, res.stderr
    assert match in res.stderr and "Traceback" not in res.stderr


def test_the_local_engine_imports_no_spark():
    code = ("import sys, modules.rules, modules.cli, modules.store, modules.recommender; "
            "sys.exit('pyspark' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
