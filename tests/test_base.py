"""The recommender contract, on a tiny known model."""

import numpy as np
import pytest

from modules.base import PlaylistRecommender, popularity_order, recommend_challenge
from modules.errors import NotFittedError
from modules.mpd import read_submission


class Echo(PlaylistRecommender):
    """Recommends a fixed list (with a duplicate and seeds in it) to exercise the boundary."""

    def fit(self, store, pids=None):
        self.fallback_ = popularity_order(store, pids)
        self.fitted_ = True
        return self

    def _recommend(self, seeds, title, k):
        fixed = self.fallback_[:3]
        return [fixed[0], fixed[0], *seeds, fixed[1]], np.array([3.0, 3.0] + [2.5] * len(seeds) + [2.0])


def test_contract_k_unique_no_seeds(store):
    rec = Echo().fit(store)
    top = rec.fallback_
    uris, scores = rec.recommend([top[1], top[1], "spotify:track:" + "Z" * 22], title="  ", k=50)
    assert len(uris) == len(set(uris)) == 50 == len(scores)
    assert top[1] not in uris and uris[0] == top[0]
    assert np.all(np.diff(scores) <= 0)


def test_contract_errors(store):
    with pytest.raises(NotFittedError, match="call fit"):
        Echo().recommend([])
    rec = Echo().fit(store)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        rec.recommend([], k=0)
    with pytest.raises(TypeError, match="not one string"):
        rec.recommend("spotify:track:" + "A" * 22)


def test_popularity_order_counts(store):
    order = popularity_order(store)
    counts = store.tracks.set_index("track_uri")["count"]
    assert counts[order[0]] == counts.max()
    assert counts[order[0]] >= counts[order[100]] >= counts[order[-1]]


def test_recommend_challenge_writes_valid_submission(train_store, split_dir, tmp_path):
    from modules.mpd import read_challenge

    challenge = read_challenge(split_dir / "challenge_set.json")
    rec = Echo().fit(train_store)
    rows = recommend_challenge(rec, challenge, tmp_path / "sub.csv", show_progress=False)
    sub = read_submission(tmp_path / "sub.csv")
    assert sub.problems == [] and sub.rows == rows
    for p in challenge["playlists"]:
        uris = sub.rows[p["pid"]]
        assert len(uris) == len(set(uris)) == 500
        assert not {t["track_uri"] for t in p["tracks"]} & set(uris)


def test_zscore_equals_numpys_mean_and_std_bit_for_bit():
    """``zscore`` writes ``mean`` and ``std`` out (for speed): the same bits as ``(x - x.mean()) / x.std()`` over
    the finite values, with NaN and inf kept out, float32 input, constant columns and fewer than two values."""
    from modules.base import zscore

    def plain(x):
        x = np.asarray(x, np.float64)
        ok = np.isfinite(x)
        if ok.sum() < 2:
            return np.where(ok, 0.0, np.nan)
        mu, sd = x[ok].mean(), x[ok].std()
        return (x - mu) / (sd if sd > 0 else 1.0)

    rng = np.random.default_rng(0)
    for t in range(400):
        n = int(rng.integers(0, 3000))
        x = rng.normal(size=n) * 10 ** rng.uniform(-5, 5)
        if t % 3 == 0:
            x[rng.random(n) < 0.2] = np.nan
        if t % 5 == 0:
            x[rng.random(n) < 0.05] = np.inf
        if t % 7 == 0:
            x = x.astype(np.float32)
        if t % 11 == 0:
            x = np.full(n, 3.3)
        assert zscore(x).tobytes() == plain(x).tobytes()
