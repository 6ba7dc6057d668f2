"""``train --engine spark``: the hybrid's rules mined by the Spark miner and its ALS part fitted by MLlib, the rest
local.

Both bundles reuse the tiny bundle's two-tower (``two_tower_bundle``: trained on the same playlists), so the only
differences are the engines: the rule table and the evidence tuning's report equal the local bundle's (every column;
the rules' transactions stay on Spark), the ALS part's recall@500 on the challenge is within 5 % of implicit's (as in
``tests/test_spark_als.py``), and the bundle loads and answers. The spark bundle trains from the training store's
``file://`` URI (Spark reads it there; the driver's parts read a copy).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TINY_PARAMS
from tests.spark_support import module_spark  # noqa: F401 (the fixture spark)
from tests.test_spark_als import PARAMS as ALS_PARAMS
from tests.test_spark_als import recall

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")


def params(tiny_bundle) -> dict:
    hp = {k: v for k, v in TINY_PARAMS.items() if k != "two_tower"}
    return {**hp, "two_tower_bundle": str(tiny_bundle), "als": {k: v for k, v in ALS_PARAMS.items() if k != "seed"}}


@pytest.fixture(scope="module")
def bundles(spark, tiny_bundle, split_dir, train_store, tmp_path_factory):
    """The local bundle from the training slices; the spark bundle from the same playlists' store given as a
    ``file://`` URI (Spark reads the rules' transactions and ALS's entries there; the driver's parts a copy)."""
    import orjson

    from modules.cli import main
    from modules.recommender import train_bundle

    root = tmp_path_factory.mktemp("spark_train")
    train_bundle(split_dir / "train", root / "local", seed=0, params=params(tiny_bundle), show_progress=False)
    # through the command line, on the test's session (same master: reused, and left running)
    uri = Path(train_store.path).resolve().as_uri()
    assert main(["train", "--mpd", uri, "--out", str(root / "spark"), "--seed", "0",
                 "--params", orjson.dumps(params(tiny_bundle)).decode(), "--spark", "local[2]"]) == 0
    assert spark.sparkContext._jsc is not None
    return root / "local", root / "spark"


def rule_frame(bundle) -> pd.DataFrame:
    from modules.bundle import Bundle
    from modules.rules import RuleModel

    return RuleModel.load(Bundle(bundle).rules_file).rules.to_frame()


def test_spark_rules_equal_the_local_bundles(bundles):
    """The evidence filter chosen on the same validation playlists (every setting's rule count and NDCG), and the
    same rule table, with the transactions on Spark (``modules.spark.tuning``)."""
    from modules.recommender import Recommender

    local, spark = bundles
    want, got = rule_frame(local), rule_frame(spark)
    assert len(want) > 100
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=0)
    tuned = [Recommender.load(b).manifest["rules_evidence"]["tuning"] for b in bundles]
    for t in tuned:
        t.pop("seconds")
    assert tuned[0] == tuned[1] and len(tuned[0]["grid"]) > 10


def test_mllib_als_part_recalls_as_implicits(bundles, split_dir):
    from modules.hybrid.sources.als import load_als

    local, spark = bundles
    r_local, r_spark = recall(load_als(local), split_dir), recall(load_als(spark), split_dir)
    assert r_local > 0.2 and abs(r_spark - r_local) <= 0.05 * r_local, (r_spark, r_local)


def test_the_spark_bundle_records_its_engines_and_recommends(bundles, split_dir):
    from modules.mpd import read_challenge
    from modules.recommender import Recommender

    rec = Recommender.load(bundles[1])
    config = rec.manifest["config"]
    assert config["rules"]["engine"] == "spark" and config["als"]["engine"] == "spark"
    playlist = read_challenge(split_dir / "challenge_set.json")["playlists"][0]
    uris = rec.recommend([t["track_uri"] for t in playlist["tracks"]], playlist.get("name"), 500,
                         explain=False)["track_uri"]
    assert len(uris) == 500 and uris.is_unique


def test_engine_arguments_are_checked_before_training(tmp_path, split_dir, capsys):
    from modules.cli import main
    from modules.errors import InputError
    from modules.recommender import train_bundle

    assert main(["train", "--mpd", str(split_dir / "train"), "--out", str(tmp_path / "b"), "--engine", "local",
                 "--spark", "local[2]"]) == 2
    assert "runs the spark engine, not --engine local" in capsys.readouterr().err
    with pytest.raises(InputError, match="engine must be one of"):
        train_bundle(split_dir / "train", tmp_path / "b", engine="mapreduce")
    with pytest.raises(InputError, match="for engine='spark'"):
        train_bundle(split_dir / "train", tmp_path / "b", spark="local[2]")
    assert not (tmp_path / "b").exists()
