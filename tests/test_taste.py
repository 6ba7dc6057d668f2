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


def _scrambled_genres(rng, n: int, g: int) -> sparse.csr_matrix:
    """``n`` tracks with 0 to 6 of ``g`` genres each, stored in scrambled order within a row."""
    rows, cols = [], []
    for r in range(n):
        k = rng.integers(0, 7)
        rows += [r] * k
        cols += rng.choice(g, k, replace=False).tolist()  # not sorted within a row: the stored order counts
    genres = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, g))
    genres.indices[:] = np.array(cols)  # keep each row's scrambled order (the constructor may sort)
    return genres


def test_padded_genre_sums_equal_the_sparse_product_bit_for_bit():
    """The candidates' genre sums read from the padded rows equal ``genres[rows] @ v`` exactly (tracks with 0 to 6
    genres, in scrambled stored order); a track with more genres than the padding allows falls back to scipy."""
    from modules.hybrid.sources import taste as taste_module

    rng = np.random.default_rng(1)
    n, g = 500, 40
    genres = _scrambled_genres(rng, n, g)
    t = AudioTaste(genres, np.ones(n), np.zeros((n, 1), np.int8), np.ones(n, bool), np.ones((g, 1, 24)) / 24,
                   np.ones((1, 24)) / 24, ("energy",))
    assert t.padded is not None and t.padded.shape == (n, int(np.diff(genres.indptr).max()))
    for _ in range(5):
        v = rng.random(g) / rng.random(g)  # wide range of magnitudes: rounding order shows
        cand = rng.integers(0, n, 2000)
        np.testing.assert_array_equal(t._genre_sums(cand, v), genres[cand] @ v)
    assert taste_module._padded_columns(genres, 3) is None  # rows longer than 3: the sparse product


def _plain_features(t: AudioTaste, seed_rows: np.ndarray, candidate_rows: np.ndarray) -> dict:
    """``AudioTaste.features`` as first written: the genre shares by sparse slicing, each candidate's bins by a
    two-dimensional gather (what the shortcuts must equal, bit for bit)."""
    from modules.base import zscore
    from modules.hybrid.sources.taste import FLOOR, N_BINS, SHRINK, _smooth

    n, out = len(candidate_rows), {}
    seed_rows = seed_rows[seed_rows >= 0]
    ok = candidate_rows >= 0
    cand = candidate_rows[ok]
    tagged = seed_rows[t.per_track[seed_rows] > 0]
    share = None
    if len(tagged):
        share = np.asarray(t.genres[tagged].multiply(1.0 / t.per_track[tagged][:, None]).sum(axis=0)).ravel()
        share /= share.sum()
        taste = np.full(n, np.nan)
        taste[ok] = t.weight[cand] * (t.genres[cand] @ (share / t.z))
        out["taste"], out["taste_z"] = taste, zscore(taste)
    sounding = seed_rows[t.has_num[seed_rows]]
    if len(sounding) and ok.any():
        ref = np.maximum(np.tensordot(share, t.genre_hist, axes=1) if share is not None else t.all_hist, FLOOR)
        d = t.bins.shape[1]
        counts = np.zeros((d, N_BINS))
        np.add.at(counts, (np.tile(np.arange(d), len(sounding)), t.bins[sounding].astype(np.int64).ravel()), 1.0)
        ratio = np.log((_smooth(counts) + SHRINK * ref) / (len(sounding) + SHRINK) / ref)
        num = ok.copy()
        num[ok] = t.has_num[cand]
        per = ratio[np.arange(d)[None, :], t.bins[candidate_rows[num]].astype(np.int64)]
        for j, f in enumerate(t.feature_names):
            out[f"fit_{f}"] = np.full(n, np.nan)
            out[f"fit_{f}"][num] = per[:, j]
        out["audio_fit"] = np.full(n, np.nan)
        out["audio_fit"][num] = per.sum(axis=1)
    return {k: out.get(k, np.full(n, np.nan)) for k in t.names}


def test_shares_and_fit_from_padded_rows_and_flat_bins_equal_the_plain_computation_bit_for_bit():
    """The seeds' genre shares (``bincount`` over the padded rows, scipy's order of additions) and the candidates'
    per-feature fit (one gather of flattened bins) give every column exactly as sparse slicing and a 2-D gather:
    tracks with 0 to 6 genres in scrambled stored order, shares like 1/3 and 1/7 where the order of additions
    shows, and the fallback to scipy when a track has too many genres."""
    rng = np.random.default_rng(5)
    n, g = 600, 30
    genres = _scrambled_genres(rng, n, g)
    numeric = rng.normal(size=(n, 3)).astype(np.float32)
    content = SimpleNamespace(vocab_=np.array([f"g:{i}" for i in range(g)], dtype=object), text_=genres,
                              numeric_=numeric, has_num_=rng.random(n) > 0.1, features=("a", "b", "c"))
    t = AudioTaste.build(content, rng.integers(0, 50, n))
    assert t.padded is not None
    for trial in range(60):
        seeds = rng.integers(-1, n, rng.integers(0, 120))
        cand = rng.integers(-1, n, 1500)
        got, want = t.features(seeds, cand), _plain_features(t, seeds, cand)
        assert list(got) == list(want)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{k} (trial {trial})")
        tagged = seeds[(seeds >= 0)]
        tagged = tagged[t.per_track[tagged] > 0]
        plain = np.asarray(genres[tagged].multiply(1.0 / t.per_track[tagged][:, None]).sum(axis=0)).ravel()
        assert t._genre_shares(tagged).tobytes() == plain.tobytes()
    t.padded = None  # the sparse fallback answers the same
    seeds, cand = rng.integers(0, n, 50), rng.integers(0, n, 300)
    for k, v in _plain_features(t, seeds, cand).items():
        np.testing.assert_array_equal(t.features(seeds, cand)[k], v)
