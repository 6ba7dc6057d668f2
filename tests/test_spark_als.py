"""``submit als --engine spark``: MLlib's implicit ALS fits the item factors, the rest is ``ALSRecommender``'s.

On the small world's split (factors 32, 8 iterations: seconds for implicit, a minute for MLlib on a busy machine)
MLlib's recall@500 is within 5 % of implicit's (docs/scale.md has the 3,000-playlist world, within 2 %); the model
is saved in the ALS folder format and loads as ``ALSRecommender`` with the same answers.
"""

from __future__ import annotations

import numpy as np
import pytest

from modules.spark.als import mllib_params
from tests.spark_support import spark_or_skip

PARAMS = {"factors": 32, "iterations": 8, "seed": 0}


@pytest.fixture(scope="module")
def spark():
    session = spark_or_skip()
    yield session
    session.stop()


def test_parameters_mean_implicits():
    p = mllib_params(128, 0.05, 10.0, 15, mean_entries=50.0)
    assert p == {"rank": 128, "regParam": pytest.approx(0.001), "alpha": 9.0, "maxIter": 15}
    assert mllib_params(8, 0.05, 10.0, 3, 50.0, reg_scale="none")["regParam"] == 0.05


def recall(rec, split_dir) -> float:
    from modules.base import recommend_challenge
    from modules.challenge import read_truth
    from modules.metrics import evaluate
    from modules.mpd import read_challenge

    rows = recommend_challenge(rec, read_challenge(split_dir / "challenge_set.json"), show_progress=False)
    return evaluate(rows, read_truth(split_dir / "truth.json")).summary()["ALL"]["recall"]


def test_mllib_als_recalls_as_implicit_does_and_saves_as_als(spark, train_store, split_dir, tmp_path):
    from modules.baselines import ALSRecommender
    from modules.spark.als import SparkALSRecommender

    mllib = SparkALSRecommender(spark=spark, **PARAMS)
    mllib.ann_ = "an index of an earlier fit's factors"  # as after add_index: a refit must not keep it
    mllib.fit(train_store)
    assert mllib.ann_ is None
    implicit = ALSRecommender(**PARAMS).fit(train_store)
    assert mllib.model_.item_factors.shape == implicit.model_.item_factors.shape
    r_mllib, r_implicit = recall(mllib, split_dir), recall(implicit, split_dir)
    assert r_implicit > 0.2 and abs(r_mllib - r_implicit) <= 0.05 * r_implicit, (r_mllib, r_implicit)

    mllib.save(tmp_path / "als")
    loaded = ALSRecommender.load(tmp_path / "als")
    seeds = train_store.playlist_tracks["track_uri"].iloc[:5].tolist()
    (got, got_scores), (want, want_scores) = loaded.recommend(seeds, None, 50), mllib.recommend(seeds, None, 50)
    assert len(got) == 50 and got == want and np.array_equal(got_scores, want_scores)


def test_submit_spark_fits_only_als(spark, train_store, split_dir, tmp_path, capsys):
    from modules.cli import main

    args = ["submit", "rules", "--train", str(train_store.path), "--challenge", str(split_dir / "challenge_set.json"),
            "--out", str(tmp_path / "x.csv"), "--spark", "local[2]"]
    assert main(args) == 2
    assert "--engine spark fits als only, not 'rules'" in capsys.readouterr().err
