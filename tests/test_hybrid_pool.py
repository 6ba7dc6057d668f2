"""A pool sized to the request's ``k`` (``HybridRecommender.candidates_per_k``): checked, smaller for small ``k``,
the full pool's answer when ``k`` needs it, the same features for the candidates it keeps."""

import numpy as np
import pytest

from modules.hybrid import HybridError, HybridRecommender
from modules.hybrid.sources import Retrieved
from modules.mpd import read_challenge
from modules.recommender import Recommender


@pytest.fixture(scope="module")
def rec(tiny_bundle):
    return Recommender.load(tiny_bundle)


@pytest.fixture(scope="module")
def playlists(split_dir):
    return [p for p in read_challenge(split_dir / "challenge_set.json")["playlists"] if len(p["tracks"]) >= 5][:6]


@pytest.fixture
def pool_rule(rec):
    """Set ``(candidates_per_k, min_candidates)`` on the loaded hybrid for one test, then put them back."""
    h = rec.hybrid
    saved = h.candidates_per_k, h.min_candidates

    def use(per_k, floor):
        h.candidates_per_k, h.min_candidates = per_k, floor

    yield use
    h.candidates_per_k, h.min_candidates = saved


@pytest.mark.parametrize("bad", [0, -1, 0.5, float("nan"), float("inf"), "4", True])
def test_candidates_per_k_is_checked(bad):
    with pytest.raises(HybridError, match="'candidates_per_k' parameter .* number >= 1 .* or None"):
        HybridRecommender(candidates_per_k=bad)._check_params()
    with pytest.raises(HybridError, match="'min_candidates' parameter .* int >= 0"):
        HybridRecommender(min_candidates=-5)._check_params()
    HybridRecommender(candidates_per_k=None)._check_params()
    HybridRecommender(candidates_per_k=2.5, min_candidates=0)._check_params()


def test_pool_sizes_follow_k_and_reach_the_full_pool():
    h = HybridRecommender(candidates_per_k=4, min_candidates=500)  # n_candidates 1500, 300 rule/ALS, 100 popular
    assert h.pool_sizes(50) == {"two_tower": 500, "rules": 100, "als": 100, "popularity": 34}
    assert h.pool_sizes(10) == h.pool_sizes(50)  # the floor
    assert h.pool_sizes(200)["two_tower"] == 800
    assert h.pool_sizes(375) is None and h.pool_sizes(500) is None  # 4 x k reaches n_candidates: the full pool
    assert h.pool_sizes(None) is None and HybridRecommender(candidates_per_k=None).pool_sizes(10) is None
    assert "candidates_per_k" in h.get_params() and "min_candidates" in h.get_params()
    default = HybridRecommender()  # max(500, 10 k): the rule docs/serving.md's "Fifth round" chose
    assert default.pool_sizes(50) == h.pool_sizes(50) and default.pool_sizes(100)["two_tower"] == 1000
    assert default.pool_sizes(149)["two_tower"] == 1490 and default.pool_sizes(150) is None
    assert default.pool_sizes(500) is None  # the challenge's k: the full pool, the same answers as before


def test_small_k_scores_fewer_candidates_with_the_same_features(rec, playlists, pool_rule):
    pool_rule(2, 40)  # the tiny bundle pools 300 two-tower candidates
    h = rec.hybrid
    for p in playlists:
        seeds, title = [t["track_uri"] for t in p["tracks"]], p.get("name")
        full, small = h.candidate_set(seeds, title), h.candidate_set(seeds, title, k=10)
        assert len(small.uris) < 0.5 * len(full.uris)
        assert set(small.uris) <= set(full.uris)
        # the two-tower's best 40 are all in the small pool, in the same order at its head
        assert small.uris[:40].tolist() == full.uris[:40].tolist()
        at = {u: i for i, u in enumerate(full.uris)}
        rows = [at[u] for u in small.uris]
        # what does not depend on the rest of the pool is the same number for each kept candidate
        for name in ("tt_score", "tt_rank_log", "rule_score", "rule_rank_log", "cont_combined", "pop_log",
                     "same_artist", "als_score"):
            np.testing.assert_array_equal(small.column(name), full.column(name)[rows], err_msg=name)
        # audio-feature weights re-rank the pool by percentiles: such a request keeps the full pool
        energy = h.candidate_set(seeds, title, {"energy": 2.0}, k=10)
        assert energy.uris.tolist() == h.candidate_set(seeds, title, {"energy": 2.0}).uris.tolist()
        df = rec.recommend(seeds, title, k=10)
        assert len(df) == 10 == df["track_uri"].nunique() and not set(df["track_uri"]) & set(seeds)
        assert set(df["track_uri"]) <= set(small.uris)


def test_a_k_the_full_pool_serves_gets_the_full_pools_answer(rec, playlists, pool_rule):
    queries = [rec.query([t["track_uri"] for t in p["tracks"]], p.get("name"), k=200) for p in playlists]
    pool_rule(None, 0)
    before = rec.recommend_many(queries)
    pool_rule(2, 40)  # 2 x 200 >= the tiny bundle's 300 two-tower candidates
    assert rec.hybrid.pool_sizes(200) is None
    after = rec.recommend_many(queries)
    for a, b in zip(before, after, strict=True):
        for col in a:
            np.testing.assert_array_equal(np.asarray(a[col]), np.asarray(b[col]), err_msg=col)
    pool_rule(1, 0)  # now 200 of 300: another pool, same contract
    assert rec.hybrid.pool_sizes(200)["two_tower"] == 200
    for a in rec.recommend_many(queries):
        assert len(a["track_uri"]) == 200 == len(set(a["track_uri"]))


def test_the_service_and_the_hybrid_path_size_the_pool_too(rec, playlists, pool_rule):
    """``recommend_columns_batch`` (the REST service) and ``HybridRecommender.recommend`` (``PlaylistRecommender``)
    answer from the same sized pool as ``Recommender.recommend``."""
    pool_rule(2, 40)
    p = playlists[0]
    seeds, title = [t["track_uri"] for t in p["tracks"]], p.get("name")
    one = rec.recommend(seeds, title, k=10, explain=False)
    (batch,) = rec.recommend_columns_batch([{"seed_track_uris": seeds, "title": title, "k": 10, "explain": 0}])
    assert batch["track_uri"].tolist() == one["track_uri"].tolist()
    uris, _ = rec.hybrid.recommend(seeds, title, k=10)
    assert list(uris) == one["track_uri"].tolist()


def test_als_best_takes_the_best_scores_in_the_answers_order():
    from modules.hybrid.sources import ALSSource

    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    src = ALSSource(model=None, to_id=np.arange(5) + 10, row_of=np.r_[np.full(10, -1), np.arange(5)])
    found = Retrieved(np.array([12, 10, 13, 11, 14]), scores)  # unordered, as argpartition leaves it
    assert src.best(found, 2).tolist() == [13, 11]
    assert src.best(found, 5) is found.ids and src.best(found, 0).tolist() == []
