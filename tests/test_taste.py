"""Genre-conditional popularity and audio fit (modules/hybrid/sources/taste.py) on a small made-up catalog."""

from types import SimpleNamespace

import numpy as np
from scipy import sparse

from modules.hybrid.sources.taste import AudioTaste


def _content(n=400, seed=0):
    """Tracks 0..199 are genre "rock", 200..399 "jazz"; feature "energy" uniform in [-2, 2] sd, feature "key"
    the same; every track has audio features but the last."""
    rng = np.random.default_rng(seed)
    numeric = rng.uniform(-2, 2, size=(n, 2)).astype(np.float32)
    genre = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
    text = sparse.csr_matrix((np.ones(n), (np.arange(n), genre + 1)), shape=(n, 3))  # column 0: an artist tag
    has_num = np.ones(n, bool)
    has_num[-1] = False
    return SimpleNamespace(vocab_=np.array(["a:someone", "g:rock", "g:jazz"], dtype=object), text_=text,
                           numeric_=numeric, has_num_=has_num, features=("energy", "key"))


def test_taste_follows_the_seeds_genres_and_popularity():
    content = _content()
    counts = np.zeros(400)
    counts[[5, 6]] = [50, 5]  # two rock tracks, one far more popular
    t = AudioTaste.build(content, counts)
    assert t.names == ("taste", "taste_z", "audio_fit", "fit_energy", "fit_key")
    f = t.features(np.array([1, 2, 3, -1]), np.array([5, 6, 7, 250, -1]))
    assert set(f) == set(t.names)
    taste = f["taste"]
    assert taste[0] > taste[1] > taste[2] > 0 and taste[3] == 0  # popular rock > rock > unseen rock > jazz
    assert np.isnan(taste[4])  # unknown to the content model
    assert abs(np.nanmean(f["taste_z"])) < 1e-9 and np.isnan(f["taste_z"][4])


def test_audio_fit_rewards_the_seeds_sound_only_on_the_feature_that_sets_it_apart():
    content = _content()
    energy = content.numeric_[:, 0]
    rock = np.arange(200)
    seeds = rock[(energy[rock] > 1.0) & (rock % 2 == 0)]  # loud rock, any key
    t = AudioTaste.build(content, np.ones(400))
    loud = rock[(energy[rock] > 1.2) & ~np.isin(rock, seeds)]
    quiet = rock[energy[rock] < -1.2]
    cand = np.r_[loud, quiet, 399]
    f = t.features(seeds, cand)
    fe, fk = f["fit_energy"], f["fit_key"]
    assert fe[: len(loud)].min() > 0.5 > -0.5 > fe[len(loud): -1].max()  # the seeds' sound vs its opposite
    assert np.abs(fk[:-1]).mean() < 0.35 < np.abs(fe[:-1]).mean()  # key: as the genre would have it
    assert np.isnan(fe[-1]) and np.isnan(f["audio_fit"][-1])  # no audio features: no fit
    assert np.allclose(f["audio_fit"][:-1], fe[:-1] + fk[:-1])


def test_no_seeds_or_untagged_seeds_leave_the_columns_empty():
    t = AudioTaste.build(_content(), np.ones(400))
    f = t.features(np.array([], np.int64), np.array([1, 2, 3]))
    assert all(np.isnan(v).all() for v in f.values())


def test_padded_genre_sums_equal_the_sparse_product_bit_for_bit():
    """The candidates' genre sums read from the padded rows equal ``genres[rows] @ v`` exactly (tracks with 0 to 6
    genres, in scrambled stored order); a track with more genres than the padding allows falls back to scipy."""
    from modules.hybrid.sources import taste as taste_module

    rng = np.random.default_rng(1)
    n, g = 500, 40
    rows, cols = [], []
    for r in range(n):
        k = rng.integers(0, 7)
        rows += [r] * k
        cols += rng.choice(g, k, replace=False).tolist()  # not sorted within a row: the stored order counts
    genres = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, g))
    genres.indices[:] = np.array(cols)  # keep each row's scrambled order (the constructor may sort)
    t = AudioTaste(genres, np.ones(n), np.zeros((n, 1), np.int8), np.ones(n, bool), np.ones((g, 1, 24)) / 24,
                   np.ones((1, 24)) / 24, ("energy",))
    assert t.padded is not None and t.padded.shape == (n, int(np.diff(genres.indptr).max()))
    for _ in range(5):
        v = rng.random(g) / rng.random(g)  # wide range of magnitudes: rounding order shows
        cand = rng.integers(0, n, 2000)
        np.testing.assert_array_equal(t._genre_sums(cand, v), genres[cand] @ v)
    assert taste_module._padded_columns(genres, 3) is None  # rows longer than 3: the sparse product
