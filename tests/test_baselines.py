"""Baselines: known answers on a hand-built store, and the recommender contract for every baseline."""

import numpy as np
import pytest

from modules.baselines import (
    ALSRecommender,
    ItemKNNRecommender,
    PlaylistIdTwoTowerRecommender,
    PopularityRecommender,
    grid_search,
    normalize_title,
    validation_split,
)
from modules.mpd import write_slice
from modules.store import PlaylistStore, ingest


def uri(c: str) -> str:
    return "spotify:track:" + c * 22


A, B, C, D, E, F, G, H = (uri(c) for c in "ABCDEFGH")

# Hand-built playlists: title -> tracks. Counts: A 3, B 3, E 2, F 2, C D G H 1.
HAND = [("Chill vibes", [A, B, C]), ("chill", [A, B, D]), ("Party", [E, F, A]), ("party hits", [E, F, G]),
        ("rock", [H, B])]


@pytest.fixture(scope="module")
def hand_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("hand")
    playlists = [{"pid": i, "name": name, "collaborative": "false", "num_tracks": len(tr),
                  "tracks": [{"pos": j, "track_uri": t, "artist_name": f"artist {t[-1]}", "track_name": t[-1],
                              "album_name": f"album {t[-1]}", "duration_ms": 1000} for j, t in enumerate(tr)]}
                 for i, (name, tr) in enumerate(HAND)]
    (root / "mpd").mkdir()
    write_slice(root / "mpd" / "mpd.slice.0-4.json", {}, playlists)
    ingest(root / "mpd", root / "store", show_progress=False)
    return PlaylistStore(root / "store")


def test_normalize_title():
    assert normalize_title("  Chill   Vibes!! ") == "chill vibes"
    assert normalize_title("K-Pop") == "kpop"
    assert normalize_title(None) == ""


def test_popularity_known_answer(hand_store):
    rec = PopularityRecommender().fit(hand_store)
    uris, scores = rec.recommend([], k=8)
    assert uris == [A, B, E, F, C, D, G, H]
    assert scores[:4].tolist() == [3, 3, 2, 2]
    # Seeds are excluded, the rest keeps its order.
    assert rec.recommend([A, E], k=3)[0] == [B, F, C]


def test_popularity_title_only_uses_matching_playlists(hand_store):
    rec = PopularityRecommender().fit(hand_store)
    # "chill" matches playlist 1 exactly (weight 1) and playlist 0 by one word of two (Jaccard 0.5).
    uris, scores = rec.recommend([], title="Chill!", k=8)
    assert uris[:4] == [A, B, D, C]
    np.testing.assert_allclose(scores[:4], [1.5, 1.5, 1.0, 0.5])
    assert uris[4:] == [E, F, G, H]  # then plain popularity
    assert rec.recommend([], title="party", k=4)[0] == [E, F, A, G]
    # No word in common with any title: plain popularity; and title matching can be switched off.
    assert rec.recommend([], title="zzz qqq", k=3)[0] == [A, B, E]
    assert PopularityRecommender(title_match=False).fit(hand_store).recommend([], title="party", k=2)[0] == [A, B]


def test_itemknn_known_answer(hand_store):
    rec = ItemKNNRecommender(alpha=0.5).fit(hand_store)
    # cosine(A, j) = c_Aj / sqrt(n_A n_j): B 2/3, C and D 1/sqrt(3), E and F 1/sqrt(6).
    uris, scores = rec.recommend([A], k=7)
    assert uris == [B, C, D, E, F, G, H]
    np.testing.assert_allclose(scores[:5], [2 / 3, 3 ** -0.5, 3 ** -0.5, 6 ** -0.5, 6 ** -0.5], rtol=1e-6)
    # Two seeds: similarities summed. F = 1/sqrt(6) + 2/sqrt(4), G = 1/sqrt(2), B = 2/3, C = D = 1/sqrt(3).
    uris, scores = rec.recommend([A, E], k=5)
    assert uris == [F, G, B, C, D]
    np.testing.assert_allclose(scores[:2], [6 ** -0.5 + 1.0, 2 ** -0.5], rtol=1e-6)


def test_itemknn_conditional_probability(hand_store):
    # alpha=1: sim(A, j) = c_Aj / n_A: B 2/3, C D E F 1/3; ties broken by popularity, then URI.
    uris, scores = ItemKNNRecommender(alpha=1.0).fit(hand_store).recommend([A], k=5)
    assert uris == [B, E, F, C, D]
    np.testing.assert_allclose(scores, [2 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3], rtol=1e-6)


def test_itemknn_neighbors_truncation_and_unknown_seed(hand_store):
    rec = ItemKNNRecommender(neighbors=1, alpha=0.5).fit(hand_store)
    uris, _ = rec.recommend([A, uri("Z")], k=3)
    assert uris[0] == B  # A's single nearest neighbour, then popularity padding
    assert uris[1:] == [E, F]
    # Only unknown seeds, with a title: the title popularity answers.
    assert ItemKNNRecommender().fit(hand_store).recommend([uri("Z")], title="party", k=2)[0] == [E, F]


@pytest.mark.parametrize("params", [{"neighbors": 0}, {"alpha": 2.0}])
def test_itemknn_bad_params(hand_store, params):
    with pytest.raises(ValueError, match="parameter of ItemKNNRecommender must be"):
        ItemKNNRecommender(**params).fit(hand_store)


def test_als_fold_in_equals_implicit_recalculate_user(train_store):
    """fold_in writes implicit's least-squares solve out (for speed); it must give implicit's factors."""
    from scipy import sparse

    rec = ALSRecommender(factors=16, iterations=3, alpha=5.0, regularization=0.1).fit(train_store)
    n_items = rec.matrix_.X.shape[1]
    rng = np.random.default_rng(0)
    for n in (1, 5, 40):
        idx = np.sort(rng.choice(n_items, n, replace=False))
        row = sparse.csr_matrix((np.ones(n, np.float32), (np.zeros(n, int), idx)), shape=(1, n_items))
        ref = np.asarray(rec.model_.recalculate_user(0, row)).reshape(-1)
        np.testing.assert_allclose(rec.fold_in(idx), ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    assert not rec.fold_in(np.array([], np.int64)).any()


def test_als_ranks_co_occurring_tracks_first(hand_store):
    rec = ALSRecommender(factors=4, iterations=10, regularization=0.01).fit(hand_store)
    uris, scores = rec.recommend([E], k=8)
    assert uris[0] == F  # E and F always appear together
    assert np.all(np.diff(scores) <= 0)


def make(name, seed=0):
    return {
        "popularity": lambda: PopularityRecommender(seed=seed),
        "itemknn": lambda: ItemKNNRecommender(seed=seed),
        "als": lambda: ALSRecommender(factors=16, iterations=4, seed=seed),
        "poc": lambda: PlaylistIdTwoTowerRecommender(embedding_dim=8, epochs=1, seed=seed),
    }[name]()


@pytest.fixture(scope="module")
def fitted(train_store):
    return {name: make(name).fit(train_store) for name in ("popularity", "itemknn", "als", "poc")}


@pytest.mark.parametrize("name", ["popularity", "itemknn", "als", "poc"])
def test_contract(fitted, train_store, name):
    rec = fitted[name]
    top = train_store.tracks.sort_values("count", ascending=False)["track_uri"].tolist()
    seeds = top[3:13]
    for s, title in ((seeds, "chill"), (seeds, None), ([], None), ([], "rock"), ([], "zzqx unknownword"),
                     (["spotify:track:" + "Q" * 22], None), (seeds[:1], "party")):
        uris, scores = rec.recommend(s, title=title, k=500)
        assert len(uris) == len(set(uris)) == 500 == len(scores)
        assert not set(uris) & set(s)
        assert np.all(np.diff(scores) <= 1e-6)


@pytest.mark.parametrize("name", ["als", "poc"])
def test_same_seed_same_scores(fitted, train_store, name):
    again = make(name).fit(train_store)
    seeds = train_store.tracks["track_uri"].tolist()[:5]
    u1, s1 = fitted[name].recommend(seeds, k=100)
    u2, s2 = again.recommend(seeds, k=100)
    assert u1 == u2
    np.testing.assert_allclose(s1, s2, atol=1e-6)


def test_poc_answers_every_new_playlist_alike(fitted, train_store):
    """The POC cannot use what a new playlist holds: the same list (minus seeds) for every playlist."""
    rec = fitted["poc"]
    a, _ = rec.recommend([], title="chill", k=50)
    b, _ = rec.recommend([], title="metal", k=50)
    assert a == b


def test_grid_search_on_validation_split(train_store):
    split = validation_split(train_store, per_category=2, seed=1)
    assert not set(split.train_pids) & {p["pid"] for p in split.challenge["playlists"]}
    best, rows = grid_search(lambda **p: ItemKNNRecommender(**p), [{"alpha": 0.5}, {"alpha": 0.9}], train_store,
                             split, show_progress=False)
    assert best in ({"alpha": 0.5}, {"alpha": 0.9}) and len(rows) == 2
    assert all(0 <= r["metrics"]["ndcg"] <= 1 for r in rows)
