"""A real Spark standalone cluster, not local mode: a master and two workers on 127.0.0.1, started from the installed
pyspark's ``bin/spark-class`` (the pip package has no ``start-master.sh``), run rules, ALS and batch recommend
through ``spark://127.0.0.1:PORT``; each output is checked against the local engine's. The processes are killed by
the fixture's finaliser, whatever happens. ``slow``: three more JVMs on a two-core machine take minutes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from modules.rules import load_transactions, mine_rules
from tests.conftest import ROOT
from tests.test_rules import assert_same_rules

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, procs, seconds: float = 180) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a Spark process exited with {p.returncode} before the master listened")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise TimeoutError(f"the Spark master did not listen on 127.0.0.1:{port} in {seconds} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``spark://127.0.0.1:PORT`` with two workers of one core and 1 GB each; every process killed at the end."""
    from modules.spark.session import java_problem, pyspark_problem

    for problem in (java_problem(), pyspark_problem()):
        if problem:
            pytest.skip(f"Spark tests skipped: {problem}")
    import pyspark

    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    work = tmp_path_factory.mktemp("spark-cluster")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(work), "SPARK_WORKER_DIR": str(work),
           "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(ROOT), "TF_USE_LEGACY_KERAS": "1",
           "SPARK_HOME": str(spark_class.parent.parent)}
    port = _free_port()
    master = f"spark://127.0.0.1:{port}"
    procs = []

    def start(*args, log: str):
        out = open(work / log, "wb")
        # a session of its own: the finaliser kills the process group it started, and nothing else
        procs.append(subprocess.Popen([str(spark_class), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True))

    try:
        start("org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
              "--webui-port", "0", log="master.log")
        _wait_for_port(port, procs)
        for i in range(2):
            start("org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1", "--cores", "1",
                  "--memory", "1g", "--webui-port", "0", "--work-dir", str(work / f"worker{i}"), log=f"worker{i}.log")
        yield master
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture(scope="module")
def spark(cluster):
    from modules.spark.session import spark_session

    session = spark_session(cluster, shuffle_partitions=4, driver_memory="1g", app_name="playlist-engine-cluster",
                            conf={"spark.executor.memory": "640m", "spark.executor.cores": "1",
                                  "spark.executorEnv.PYTHONPATH": str(ROOT),
                                  "spark.executorEnv.TF_USE_LEGACY_KERAS": "1",
                                  "spark.sql.adaptive.enabled": "false"})
    try:
        end = time.monotonic() + 180  # both workers' executors registered (the driver is the first entry)
        while session.sparkContext._jsc.sc().getExecutorMemoryStatus().size() < 3:
            if time.monotonic() > end:
                raise TimeoutError("the two workers' executors did not register in 180 s")
            time.sleep(1)
        yield session
    finally:
        session.stop()


def test_the_cluster_has_two_executors(spark, cluster):
    assert spark.sparkContext.master == cluster
    hosts = spark.sparkContext.parallelize(range(8), 8).map(lambda _: os.getpid()).distinct().count()
    assert hosts == 2  # one Python worker per executor (one core each)


def test_rules_on_the_cluster_equal_the_sparse_miner(spark, store):
    s = mine_rules(load_transactions(store), engine="sparse", min_support=0.01, min_confidence=0.1)
    k = mine_rules(store, engine="spark", min_support=0.01, min_confidence=0.1, spark=spark)
    assert len(s) > 1000
    assert_same_rules(s, k)


def test_als_on_the_cluster_recalls_as_implicit_does(spark, train_store, split_dir):
    from modules.base import recommend_challenge
    from modules.baselines import ALSRecommender
    from modules.challenge import read_truth
    from modules.metrics import evaluate
    from modules.mpd import read_challenge
    from modules.spark.als import SparkALSRecommender

    params = {"factors": 32, "iterations": 8, "seed": 0}
    challenge = read_challenge(split_dir / "challenge_set.json")
    truth = read_truth(split_dir / "truth.json")
    recall = {}
    for name, rec in (("implicit", ALSRecommender(**params)), ("mllib", SparkALSRecommender(spark=spark, **params))):
        rec.fit(train_store)
        rows = recommend_challenge(rec, challenge, show_progress=False)
        recall[name] = evaluate(rows, truth).summary()["ALL"]["recall"]
    assert recall["implicit"] > 0.2
    assert abs(recall["mllib"] - recall["implicit"]) <= 0.05 * recall["implicit"], recall


def test_batch_recommend_on_the_cluster_writes_the_local_file(spark, tiny_bundle, split_dir, tmp_path):
    from modules.mpd import read_challenge, write_submission
    from modules.recommender import Recommender
    from modules.spark.recommend import recommend_spark

    playlists = read_challenge(split_dir / "challenge_set.json")["playlists"]
    frames = Recommender.load(tiny_bundle).recommend_batch(playlists, 500)
    write_submission(tmp_path / "local.csv", ((p["pid"], f["track_uri"].tolist()) for p, f in zip(playlists, frames)))
    rows, done = recommend_spark(spark, tiny_bundle, playlists, 500, partitions=4, ship=True)  # addArchive to each
    write_submission(tmp_path / "cluster.csv", rows)
    assert done["workers"] == 2 and done["loads"] == 1
    assert (tmp_path / "cluster.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert np.all([len(u) == 500 for _, u in rows])
