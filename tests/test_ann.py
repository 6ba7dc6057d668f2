"""The nearest-neighbour index (modules.ann): exact at full probing, deterministic, refused when it does not match,
off below its threshold, and what a bundle answers with it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from modules import ann
from modules.errors import BundleError


def _matrix(n=3000, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)) * rng.uniform(0.5, 2, size=(n, 1))).astype(np.float16).astype(np.float32)


def _exact(matrix, q, n, exclude=()):
    s = matrix @ q
    s[list(exclude)] = -np.inf
    top = np.lexsort((np.arange(len(s)), -s))[:n]
    return top[np.isfinite(s[top])], s[top]


def test_full_probing_finds_the_exact_top_n():
    m = _matrix()
    index = ann.ClusterIndex.build(m, nlist=32, nprobe=32)
    rng = np.random.default_rng(1)
    for _ in range(5):
        q = rng.normal(size=16).astype(np.float32)
        ex = np.sort(rng.choice(len(m), 7, replace=False))
        rows, scores = index.search(q, 100, exclude=ex)
        want, want_scores = _exact(m, q, 100, ex)
        assert np.array_equal(rows, want)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
        assert not set(rows.tolist()) & set(ex.tolist())
    # the index stands for the matrix: its rows come back exactly
    assert np.array_equal(index[[5, 0, 2999]], m[[5, 0, 2999]]) and np.array_equal(np.asarray(index), m)
    assert np.array_equal(index[10:20], m[10:20]) and index.shape == m.shape and len(index) == len(m)


def test_partial_probing_keeps_most_of_the_top_n():
    m = _matrix(8000)
    index = ann.ClusterIndex.build(m, nlist=64, nprobe=16)
    q = m[:20] + 0.1
    recall = [len(set(index.search(x, 50)[0].tolist()) & set(_exact(m, x, 50)[0].tolist())) / 50 for x in q]
    assert np.mean(recall) > 0.6  # a quarter of the rows scored (random vectors: the hardest case)
    sizes = index.list_sizes()
    assert sizes.sum() == len(m) and (sizes > 0).sum() > 48  # Euclidean clusters: no list holds them all


def test_build_and_search_are_deterministic(tmp_path):
    m = _matrix()
    a, b = ann.ClusterIndex.build(m, nlist=32, seed=3), ann.ClusterIndex.build(m, nlist=32, seed=3)
    assert np.array_equal(a.centroids, b.centroids) and np.array_equal(a.list_sizes(), b.list_sizes())
    (tmp_path / "x").mkdir()
    a.save(tmp_path / "x")
    b.save(tmp_path)
    assert (tmp_path / "x" / ann.ANN_FILE).read_bytes() == (tmp_path / ann.ANN_FILE).read_bytes()
    q = np.ones(16, np.float32)
    back = ann.ClusterIndex.load(tmp_path, m)
    assert all(np.array_equal(x, y) for x, y in zip(back.search(q, 40), a.search(q, 40), strict=True))


def test_an_index_of_other_vectors_is_refused(tmp_path):
    m = _matrix()
    ann.ClusterIndex.build(m, nlist=8).save(tmp_path)
    other = m.copy()
    other[::7] += 1
    with pytest.raises(BundleError, match="rebuild it with `python -m modules bundle index"):
        ann.ClusterIndex.load(tmp_path, other)
    with pytest.raises(BundleError, match="was not built"):
        ann.ClusterIndex.load(tmp_path, m[:-1])
    assert ann.ClusterIndex.load(tmp_path / "nothing") is None


def test_ensure_index_builds_keeps_or_rebuilds():
    m = _matrix(500)
    assert ann.ensure_index(m, None, min_rows=501) is None and ann.ensure_index(m, None, None) is None
    built = ann.ensure_index(m, None, min_rows=500, nlist=4)
    assert isinstance(built, ann.ClusterIndex) and built.nlist == 4 and built.fingerprint == ann.fingerprint(m)
    # an index held is kept below the threshold, with no threshold, and when no other build is asked for
    assert ann.ensure_index(m, built, min_rows=501, nlist=8) is built
    assert ann.ensure_index(m, built, None, nlist=8) is built
    assert ann.ensure_index(built, built, min_rows=0) is built
    # asked for another: built again from the matrix the index stands for
    again = ann.ensure_index(built, built, min_rows=0, nlist=8, seed=1)
    assert again is not built and again.nlist == 8 and again.seed == 1 and again.fingerprint == built.fingerprint
    assert ann.MIN_ROWS == 500_000


def test_als_indexes_keeps_and_writes_as_ensure_index_says(train_store, tmp_path):
    from modules.baselines import ALSRecommender

    als = ALSRecommender(factors=8, iterations=2).fit(train_store)
    factors = als.model_.item_factors
    n = len(factors)
    als.save(tmp_path / "small")  # fewer rows than ann.MIN_ROWS: scanned exactly, no file
    assert als.ann_ is None and not (tmp_path / "small" / ann.ANN_FILE).exists()
    assert als.add_index(n + 1).ann_ is None and als.model_.item_factors is factors
    seeds = [str(u) for u in als.matrix_.uris[:5]]
    before = als.recommend(seeds, k=20)
    index = als.add_index(n, nlist=4, nprobe=4).ann_
    assert index is als.model_.item_factors and als.add_index(0).ann_ is index  # the index stands for the factors
    after = als.recommend(seeds, k=20)
    assert after[0] == before[0]
    np.testing.assert_allclose(after[1], before[1], rtol=1e-5)
    als.save(tmp_path / "held", ann_min_rows=None)  # none built, the one held written
    assert ann.ClusterIndex.load(tmp_path / "held").fingerprint == index.fingerprint
    back = ALSRecommender.load(tmp_path / "held")
    assert back.ann_.nlist == 4 and back.model_.item_factors is back.ann_ and back.recommend(seeds, k=20)[0] == after[0]
    assert als.add_index(0, nlist=2).ann_ is not index and als.ann_.nlist == 2 and als.model_.item_factors is als.ann_


def test_an_als_without_the_attribute_scans_exactly(train_store):
    """A model unpickled from before the index existed has no ``ann_`` of its own: it reads the class's ``None``."""
    import pickle

    from modules.baselines import ALSRecommender

    assert ALSRecommender().ann_ is None and ALSRecommender.__new__(ALSRecommender).ann_ is None
    als = ALSRecommender(factors=8, iterations=2).fit(train_store)
    seeds = [str(u) for u in als.matrix_.uris[:5]]
    old = pickle.loads(pickle.dumps(als))
    del old.__dict__["ann_"]
    assert old.ann_ is None
    got, want = old.recommend(seeds, k=20), als.recommend(seeds, k=20)
    assert got[0] == want[0] and np.array_equal(got[1], want[1])


def test_two_tower_add_index_keeps_or_rebuilds(tiny_bundle):
    from modules.two_tower import TwoTowerRecommender

    tt = TwoTowerRecommender.load(tiny_bundle)
    table = tt.candidate_embeddings_
    n = len(table)
    assert tt.ann_ is None and tt.add_index(n + 1).ann_ is None and tt.candidate_embeddings_ is table
    assert tt.add_index(None, nlist=4).ann_ is None
    before = tt.candidates(list(tt.candidate_uris_[:3]), "chill", n=30)
    index = tt.add_index(n, nlist=4, nprobe=4).ann_
    assert tt.candidate_embeddings_ is index and tt.add_index(0).ann_ is index
    after = tt.candidates(list(tt.candidate_uris_[:3]), "chill", n=30)
    assert after[0] == before[0]
    np.testing.assert_allclose(after[1], before[1], rtol=1e-5)
    assert tt.add_index(0, nlist=2).ann_ is not index and tt.candidate_embeddings_ is tt.ann_


def _answers(bundle, playlists):
    from modules.query import Query
    from modules.recommender import Recommender

    rec = Recommender.load(bundle)
    out = rec.recommend_many([Query.from_playlist(p, index=i, k=50, explain=False) for i, p in enumerate(playlists)])
    assert not any(isinstance(a, Exception) for a in out)
    return rec, [(list(a["track_uri"]), np.asarray(a["score"], np.float64)) for a in out]


def test_a_bundle_with_a_full_probing_index_answers_as_without(tiny_bundle, split_dir, tmp_path):
    from modules.bundle_index import add_indexes
    from modules.mpd import read_challenge

    playlists = read_challenge(split_dir / "challenge_set.json")["playlists"][:12]
    assert not list(tiny_bundle.rglob(ann.ANN_FILE))  # small: trained without an index
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    done = add_indexes(copy, min_rows=0, nlist=4, nprobe=4)
    assert set(done) == {"two_tower", "als"} and (copy / "als" / ann.ANN_FILE).exists()
    rec, with_index = _answers(copy, playlists)
    assert rec.hybrid.two_tower_.ann_ is not None and rec.hybrid.als_.ann_ is not None
    assert rec.hybrid.als_.model_.item_factors is rec.hybrid.als_.ann_  # no second copy of the factors
    _, without = _answers(tiny_bundle, playlists)
    _, again = _answers(copy, playlists)
    for a, b, c in zip(with_index, without, again, strict=True):
        assert list(a[0]) == list(b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-5)
        assert list(a[0]) == list(c[0]) and np.array_equal(a[1], c[1])  # the same bundle, the same bytes
    # an index that is not this part's is refused, with what to do
    shutil.copy(copy / "als" / ann.ANN_FILE, copy / "two_tower" / ann.ANN_FILE)
    with pytest.raises(BundleError, match="bundle index"):
        _answers(copy, playlists)


def test_bundle_index_command_needs_a_bundle(tmp_path, capsys):
    from modules.cli import main

    assert main(["bundle", "index", str(tmp_path)]) != 0
    assert "is not a bundle (no manifest.json)" in capsys.readouterr().err
