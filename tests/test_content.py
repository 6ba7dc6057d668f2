"""The content model on hand-built tracks with known answers, and the recommender on the small world."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from modules.content import (
    ContentError,
    ContentModel,
    ContentRecommender,
    feature_map,
    read_feature_map,
    title_tokens,
    write_feature_map,
)
from modules.features import FEATURE_COLUMNS, FeatureStore
from modules.methods import make_method


def uri(c: str) -> str:
    return "spotify:track:" + c * 22


BASE = {"danceability": 0.5, "energy": 0.5, "key": 5, "loudness": -8.0, "mode": 1, "speechiness": 0.05,
        "acousticness": 0.3, "instrumentalness": 0.1, "liveness": 0.15, "valence": 0.5, "tempo": 120.0,
        "time_signature": 4, "duration_ms": 200000}


def track(c, artists, genres, **features):
    return {"track_uri": uri(c), "artists": artists, "artist_name": artists.split(";")[0], "track_name": f"T{c}",
            "genres": genres, "popularity": 50, **{**BASE, **features}}


@pytest.fixture(scope="module")
def tiny():
    """Hand-built tracks: B sounds like A; C is A's opposite; D shares A's artist; E has no audio features."""
    rows = [
        track("A", "Alpha", ["rock"], energy=0.9, acousticness=0.05, tempo=150.0),
        track("B", "Beta", ["jazz"], energy=0.9, acousticness=0.05, tempo=150.0),
        track("C", "Gamma", ["ambient"], energy=0.1, acousticness=0.95, tempo=70.0),
        track("D", "Alpha;Delta", ["rock"], energy=0.5),
        track("E", "Epsilon", ["ambient"], **{f: np.nan for f in FEATURE_COLUMNS}),
        track("F", "Phi", ["pop"], energy=0.7),
        track("G", "Gee", ["pop"], energy=0.3, acousticness=0.6),
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tiny_model(tiny):
    return ContentModel().fit(tiny)


def test_title_tokens():
    assert title_tokens("Chill  Vibes!!") == ["chill", "vibes", "chill vibes"]
    assert title_tokens("R&B_2017", ngrams=1) == ["r&b", "2017"]
    assert title_tokens(None) == []
    assert title_tokens("best of the 80s") == ["best", "of", "the", "80s"]  # no "of the", "best of", "the 80s"
    assert "rock classics" in title_tokens("Rock Classics 2017")


def test_known_similarities(tiny_model):
    m = tiny_model
    sim = m.similarity([uri("A")], [uri(c) for c in "BCDEZ"])
    num, text, comb = sim["num"], sim["text"], sim["combined"]
    assert num[0] == pytest.approx(1.0, abs=1e-5)  # B has A's features exactly
    assert num[1] < -0.3 and num[1] == np.nanmin(num)  # C sounds the least like A
    assert np.isnan(num[3]) and np.isnan(num[4])  # E has no features; Z is unknown
    assert text[0] == 0 and text[1] == 0 and text[2] > 0.1  # D shares the artist Alpha and the genre rock
    assert comb[0] == pytest.approx(0.6 * num[0] + 0.4 * text[0], abs=1e-5)
    assert comb[3] == text[3] and np.isnan(comb[4])  # fallback to the part that exists
    assert m.similarity([uri("E")], [uri("C")])["combined"][0] > 0  # text-only seed: shares genre ambient
    # weighting the seeds moves the centre
    mixed = m.similarity([uri("A"), uri("C")], [uri("B")], seed_weights=[3, 1])["num"][0]
    assert mixed > m.similarity([uri("A"), uri("C")], [uri("B")])["num"][0]


def test_feature_weights_change_the_ranking(tiny_model):
    m = tiny_model
    seeds, cands = [uri("F")], [uri("D"), uri("G")]
    plain = m.similarity(seeds, cands)["num"]
    energy = m.similarity(seeds, cands, {"energy": 20.0})["num"]
    # D differs from F in energy only a little (0.5 vs 0.7), G differs in energy and acousticness
    assert energy[0] > energy[1]
    no_energy = m.similarity(seeds, cands, {"energy": 0.0})["num"]
    assert no_energy[0] == pytest.approx(1.0, abs=1e-5)  # without energy, D sounds exactly like F
    assert not np.allclose(plain, energy)
    with pytest.raises(ContentError, match="unknown features"):
        m.similarity(seeds, cands, {"energyy": 2.0})
    with pytest.raises(ContentError, match="finite number >= 0"):
        m.similarity(seeds, cands, {"energy": -1})


def test_the_kept_query_never_answers_another_playlist(tiny_model):
    """The last playlist's centre is kept (a recommendation asks for it twice); any change of seeds, order,
    title or feature weights must compute a new one."""
    m = tiny_model
    cands = [uri(c) for c in "ABCDEFG"]
    asks = [([uri("F")], None, None), ([uri("F"), uri("A")], None, None), ([uri("A"), uri("F")], None, None),
            ([uri("F")], "rock", None), ([uri("F")], None, {"energy": 3.0}), ([uri("F")], None, None)]
    kept = [m.similarity(s, cands, w, title=t) for s, t, w in asks]
    for (s, t, w), got in zip(asks, kept, strict=True):
        m._last_query_ = None
        fresh = m.similarity(s, cands, w, title=t)
        for part in ("num", "text", "combined"):
            np.testing.assert_array_equal(got[part], fresh[part])
    assert not np.allclose(kept[0]["num"], kept[1]["num"], equal_nan=True)
    q = m._query([uri("F")])
    assert m._query([uri("F")]) is q and m._query([uri("F")], title="rock") is not q


def test_explanations_in_listener_words(tiny_model):
    m = tiny_model
    exp = m.explanations([uri("C")], [uri("A"), uri("E"), uri("Z")])
    a = exp[0]
    phrases = [d["phrase"] for d in a["differences"]]
    assert phrases and all(p.startswith("much ") for p in phrases)
    assert {"much more energetic", "much less acoustic", "much faster"} & set(phrases)
    assert a["reason"].startswith("sound ") and "much" in a["reason"]
    assert exp[1]["reason"].startswith("tags ") and "no audio features" in exp[1]["reason"]
    assert "genre ambient" in exp[1]["shared"]
    assert exp[2]["reason"].startswith("unknown track")
    title_only = m.explanations([], [uri("A")], title=None)[0]
    assert title_only["reason"] == "nothing to compare"
    close = m.explain([uri("A")], [uri("B")])[0]
    assert "sounds like the playlist" in close
    assert m.explain([uri("A")], [uri("D")])[0].endswith("shares artist Alpha, genre rock")


def test_parameters_are_validated(tiny):
    with pytest.raises(ContentError, match="The 'w_num' parameter of ContentModel must be a number >= 0"):
        ContentModel(w_num=-1).fit(tiny)
    with pytest.raises(ContentError, match="cannot both be 0"):
        ContentModel(w_num=0, w_text=0).fit(tiny)
    with pytest.raises(ContentError, match="'features' parameter"):
        ContentModel(features=["energy", "loud"]).fit(tiny)
    with pytest.raises(ContentError, match="lacks columns"):
        ContentModel().fit(tiny.drop(columns=["genres"]))
    with pytest.raises(TypeError, match="not one string"):
        ContentModel().fit(tiny).similarity(uri("A"), [uri("B")])


def test_save_load_roundtrip(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "m")
    back = ContentModel.load(tmp_path / "m")
    assert back.get_params() == {**tiny_model.get_params(), "features": tuple(tiny_model.features)}
    seeds, cands = [uri("A"), uri("E")], [uri(c) for c in "BCDEFG"]
    for k, v in tiny_model.similarity(seeds, cands, {"energy": 2}).items():
        np.testing.assert_allclose(back.similarity(seeds, cands, {"energy": 2})[k], v, rtol=1e-6)
    assert back.explain(seeds, cands) == tiny_model.explain(seeds, cands)
    with pytest.raises(ContentError, match="no manifest.json"):
        ContentModel.load(tmp_path / "nothing")


@pytest.fixture(scope="module")
def world_model(catalog, store):
    return ContentModel().fit(catalog, store)


def test_title_words_become_tags(world_model, store):
    """A title-only query ranks first the tracks of playlists whose titles carry that word."""
    m = world_model
    pl, pt = store.playlists, store.playlist_tracks
    word = pd.Series([t for n in pl["name"] for t in set(title_tokens(n, 1))]).value_counts().index[0]
    with_word = set(pl.loc[[word in title_tokens(n, 1) for n in pl["name"]], "pid"])
    tracks_with = set(pt.loc[pt["pid"].isin(with_word), "track_uri"])
    q = m._query([], title=word)
    _, text = m._score(q)
    top = m.uris_[np.argsort(-np.nan_to_num(text, nan=-1))[:50]]
    assert np.mean([u in tracks_with for u in top]) > 0.8
    assert f"t:{word}" in set(m.vocab_)
    assert m.has_text_.all()  # every catalog track has at least its artist and genre


def test_tracks_only_in_playlists_get_text(catalog, store):
    """A store track the catalog lacks is still in the model, with tags and without audio features."""
    some = store.tracks["track_uri"].iloc[:50]
    model = ContentModel().fit(catalog.loc[~catalog["track_uri"].isin(some)], store)
    rows = model._rows(some.tolist())
    assert (rows >= 0).all() and not model.has_num_[rows].any() and model.has_text_[rows].all()
    sim = model.similarity(some.tolist()[:5], some.tolist()[5:10])
    assert np.isnan(sim["num"]).all() and np.isfinite(sim["combined"]).all()


def test_fit_from_feature_store(tmp_path, catalog, store):
    fs = FeatureStore(tmp_path / "f.sqlite", create=True)
    fs.import_catalog(catalog.iloc[:3000])
    model = ContentModel().fit(fs, store)
    assert model.has_num_.sum() == 3000 and len(model.uris_) >= 3000


def test_recommender_contract_and_title_only(train_store, store):
    rec = make_method("content", popularity_weight=0.1)
    assert isinstance(rec, ContentRecommender)
    rec.fit(train_store)
    pt = store.playlist_tracks
    seeds = pt.loc[pt["pid"] == pt["pid"].iloc[0], "track_uri"].tolist()[:5]
    uris, scores = rec.recommend(seeds, title="chill", k=100)
    assert len(uris) == len(set(uris)) == 100 and not set(seeds) & set(uris)
    assert np.all(np.diff(scores) <= 1e-6)
    only_title, _ = rec.recommend([], title="workout", k=20)
    assert len(only_title) == 20 and only_title != rec.fallback_[:20]
    nothing, _ = rec.recommend(["spotify:track:" + "Z" * 22], k=20)
    assert nothing == rec.fallback_[:20]  # nothing known: popularity


def test_recommender_beats_random_on_the_split(train_store, split_dir):
    """On the small world's held-out playlists the content recommender finds real continuations."""
    import orjson

    from modules.base import recommend_challenge
    from modules.metrics import evaluate
    from modules.mpd import read_challenge

    challenge = read_challenge(split_dir / "challenge_set.json")
    truth = orjson.loads((split_dir / "truth.json").read_bytes())
    rec = ContentRecommender().fit(train_store)
    rows = recommend_challenge(rec, challenge, show_progress=False)
    summary = evaluate(rows, truth).summary()["ALL"]
    # a random list of 500 out of ~90,000 catalog tracks finds ~0.6% of the held-out tracks
    assert summary["recall"] > 0.05 and summary["ndcg"] > 0.02


def test_feature_map_deterministic_and_labelled(catalog, tmp_path):
    sample = catalog.iloc[::20]
    a, info = feature_map(sample, n_clusters=5, seed=3)
    b, _ = feature_map(sample, n_clusters=5, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == len(sample) and set(a["cluster"]) == set(range(5))
    assert np.isfinite(a[["x", "y"]].to_numpy()).all()
    assert 0.2 < sum(info["explained_variance"]) <= 1 and len(info["clusters"]) == 5
    assert a["cluster_label"].nunique() == 5  # distinct words (numbered when two clusters share them)
    # clusters mean something: the most 'acoustic' cluster is far more acoustic than the least
    by = sample.assign(cluster=a["cluster"].to_numpy()).groupby("cluster")["acousticness"].mean()
    assert by.max() - by.min() > 0.4
    with pytest.raises(ContentError, match="at least 2"):
        feature_map(sample, n_clusters=1)


def test_cli_map_from_a_catalog_file(tmp_path):
    raw = pd.read_parquet("data/spotify_tracks/spotify_tracks.parquet").iloc[::40]
    raw.to_parquet(tmp_path / "small.parquet")
    out = subprocess.run([sys.executable, "-m", "modules", "features", "map", "--catalog",
                          str(tmp_path / "small.parquet"), "--out", str(tmp_path / "map.parquet"), "--clusters", "4"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "4 clusters" in out.stdout
    data, info = read_feature_map(tmp_path / "map.parquet")
    assert len(data) == info["tracks"] > 2000 and {"x", "y", "cluster", "cluster_label"} <= set(data.columns)
    assert write_feature_map  # the library entry point the CLI calls


def test_cli_fit_and_similar(store, tmp_path, capsys):
    from modules.cli import main
    from modules.cli.content import parse_weights

    assert parse_weights("energy=3, valence=0.5") == {"energy": 3.0, "valence": 0.5} and parse_weights("") is None
    with pytest.raises(ValueError, match="feature=number"):
        parse_weights("energy")
    assert main(["-q", "content", "fit", "--train", str(store.path), "--out", str(tmp_path / "m")]) == 0
    assert "tags in" in capsys.readouterr().out
    pt = store.playlist_tracks
    seeds = pt.loc[pt["pid"] == pt["pid"].iloc[0], "track_uri"].tolist()[:3]
    assert main(["-q", "content", "similar", "--model", str(tmp_path / "m"), *seeds, "-k", "4",
                 "--weight", "energy=2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and not {r["track_uri"] for r in rows} & set(seeds)
    assert all(r["reason"].startswith("sound ") and " — " in r["name"] for r in rows)
    assert main(["content", "similar", "--model", str(tmp_path / "m")]) == 2
    assert "give seed track URIs" in capsys.readouterr().err


def test_albums_are_a_tag_group(tiny):
    """Two tracks of one album share an ``l:`` tag; an album of one track is no tag; rows without an album URI
    (real MPD subsets) group by artist and album name; album_weight=0 leaves albums out."""
    cat = tiny.assign(album_name=["One", "Solo", "Other", "One", "Other", "Lone", "Lone"],
                      album_uri=["spotify:album:1", "", "", "spotify:album:1", "", "", ""])
    model = ContentModel(artist_weight=0.0, genre_weight=0.0).fit(cat)
    albums = {str(v): model.labels_[i] for i, v in enumerate(model.vocab_) if str(v).startswith("l:")}
    # "One" by URI (A, D); "Other" derived from (Gamma, Other) and (Epsilon, Other) differs by artist: no tag;
    # "Lone" by Phi and by Gee: different artists, no tag; "Solo" has one track
    assert sorted(albums.values()) == ["One"]
    sim = model.similarity([uri("A")], [uri("D"), uri("B")])
    assert sim["text"][0] == pytest.approx(1.0) and np.isnan(sim["text"][1])  # B: no tag left at all
    assert "album One" in model.explain([uri("A")], [uri("D")])[0]
    same_artist = cat.assign(artists=["Alpha", "Beta", "Gamma", "Alpha;Delta", "Gamma", "Phi", "Phi"],
                             artist_name=["Alpha", "Beta", "Gamma", "Alpha", "Gamma", "Phi", "Phi"])
    derived = ContentModel(artist_weight=0.0, genre_weight=0.0).fit(same_artist)
    assert sorted(str(x) for x, v in zip(derived.labels_, derived.vocab_, strict=True)
                  if str(v).startswith("l:")) == ["Lone", "One", "Other"]
    off = ContentModel(album_weight=0.0).fit(cat)
    assert not any(str(v).startswith("l:") for v in off.vocab_)


def test_blend_ndcg_matches_the_model_alone(world_model, store):
    """The tuning's fast path (cosines once, every blend combined from them) ranks exactly as ``nearest``."""
    from modules.base import complete, popularity_order
    from modules.content.tuning import blend_ndcg
    from modules.metrics import score_playlist

    pl = store.playlist_tracks.groupby("pid")["track_uri"].apply(list)
    names = store.playlists.set_index("pid")["name"]
    playlists = [(uris[:5], names[pid], uris[5:]) for pid, uris in pl.items() if len(uris) >= 10][:12]
    popular = popularity_order(store)
    grid = (0.0, 0.6, 1.0)
    fast = blend_ndcg(world_model, playlists, popular, grid)
    assert fast.shape == (12, 3) and (fast[:, 1] != fast[:, 0]).any()
    for j, w in enumerate(grid):
        m = ContentModel(w_num=w, w_text=1.0 - w)
        m.__dict__.update({k: v for k, v in world_model.__dict__.items() if k.endswith("_")})
        m.w_num, m.w_text = w, 1.0 - w
        for i, (seeds, title, truth) in enumerate(playlists):
            uris, scores = m.nearest(seeds, 500, title=title)
            recs, _ = complete(uris, scores, seeds, 500, popular)
            assert fast[i, j] == pytest.approx(score_playlist(recs, truth)["ndcg"], abs=1e-12)


def test_tune_content_keeps_the_best_setting(catalog, train_store):
    from modules.base import popularity_order
    from modules.content.tuning import GRID_ALBUM_WEIGHTS, GRID_W_NUM, tune_content, tunes
    from modules.validation import carve_validation

    pids = train_store.playlists["pid"].to_numpy()
    val = carve_validation(train_store, pids, per_category=2, seed=0)
    fitted = []

    def fit(album_weight):
        fitted.append(album_weight)
        return ContentModel(album_weight=album_weight).fit(catalog, train_store, val.split.train_pids)

    chosen, model, report = tune_content(fit, val.split, popularity_order(train_store, val.split.train_pids))
    assert fitted == list(GRID_ALBUM_WEIGHTS)
    grid = report["grid"]
    assert len(grid) == len(GRID_W_NUM) * len(GRID_ALBUM_WEIGHTS)
    best = max(grid, key=lambda r: r["ndcg"])
    assert report["chosen"]["ndcg"] == best["ndcg"] and chosen == {k: best[k] for k in ("w_num", "w_text",
                                                                                          "album_weight")}
    assert (model.w_num, model.w_text, model.album_weight) == (chosen["w_num"], chosen["w_text"],
                                                               chosen["album_weight"])
    assert tunes(None) and tunes({"query_title_weight": 0.5}) and not tunes({"w_num": 0.3})


def test_hybrid_fit_content_tunes_only_when_the_user_does_not_choose(catalog, train_store):
    from modules.hybrid.sources.content import fit_content
    from modules.validation import carve_validation

    pids = train_store.playlists["pid"].to_numpy()
    split = carve_validation(train_store, pids, per_category=2, seed=0).split
    mine, report = fit_content(catalog, train_store, split.train_pids, {"w_num": 0.3, "w_text": 0.7}, split)
    assert report is None and (mine.w_num, mine.album_weight) == (0.3, 1.0)
    given = {"chosen_params": {"w_num": 0.2, "w_text": 0.8, "album_weight": 0.0}}
    reused, again = fit_content(catalog, train_store, pids, None, None, given)
    assert again is given and (reused.w_num, reused.w_text, reused.album_weight) == (0.2, 0.8, 0.0)
    assert not any(str(v).startswith("l:") for v in reused.vocab_)


def _shared_tags_one_by_one(model, q, rows):
    """The shared tags as ``describe_candidates`` found them before ``_shared_tags``: a sort per candidate."""
    from modules.content.explain import _tag_label

    out = {}
    for i, r in enumerate(rows.tolist()):
        shared = []
        if r >= 0 and q.text is not None and model.has_text_[r]:
            lo, hi = model.text_.indptr[r], model.text_.indptr[r + 1]
            cols, vals = model.text_.indices[lo:hi], model.text_.data[lo:hi] * q.text[model.text_.indices[lo:hi]]
            for j in cols[np.argsort(-vals, kind="stable")][:3]:
                if q.text[j] > 0:
                    shared.append(_tag_label(model.vocab_[j], model.labels_[j]))
        if shared:
            out[i] = shared
    return out


def test_fast_lookups_and_shared_tags_match_the_plain_ones(world_model, store):
    """The serving shortcuts give what the plain code gives: rows through the ``index_`` dict (short lists) equal
    the pandas lookup, and the shared tags of every candidate at once equal a sort per candidate."""
    from modules.content.explain import _shared_tags
    from modules.content.query import FEW_URIS, rows_of

    m = world_model
    uris = m.uris_.tolist()
    rng = np.random.default_rng(0)
    asked = [uris[i] for i in rng.choice(len(uris), 40, replace=False)] + ["spotify:track:nope", uris[3], uris[3]]
    for ask in (asked, np.array(asked, dtype=object), tuple(asked), uris[: FEW_URIS + 5], []):
        np.testing.assert_array_equal(rows_of(m, ask), m._rows(ask))
    with pytest.raises(TypeError, match="not one string"):
        rows_of(m, uris[0])
    seeds_sets = [uris[i:i + n] for i, n in ((0, 5), (100, 25), (7, 1))]
    for seeds, title in zip(seeds_sets + [[]], ("chill", None, "rock party", "workout"), strict=True):
        q = m._query(seeds, title=title)
        rows = rows_of(m, asked + uris[200:260])
        assert _shared_tags(m, q, rows) == _shared_tags_one_by_one(m, q, rows)
        assert any(_shared_tags(m, q, rows).values()) or q.text is None


def test_content_recommender_chooses_auto_parameters_on_validation(catalog, train_store):
    """``"auto"`` blend, album and popularity weights are chosen on validation playlists carved from the training
    playlists; what the user fixes is kept and not searched."""
    from modules.content.tuning import GRID_ALBUM_WEIGHTS, GRID_POPULARITY_WEIGHTS, GRID_W_NUM

    rec = ContentRecommender().fit(train_store)
    grid = rec.tuning_["grid"]
    assert len(grid) == len(GRID_W_NUM) * len(GRID_ALBUM_WEIGHTS) * len(GRID_POPULARITY_WEIGHTS)
    best = max(grid, key=lambda r: r["ndcg"])
    chosen = rec.tuning_["chosen"]
    assert chosen["ndcg"] == best["ndcg"]
    assert (rec.model_.w_num, rec.model_.w_text, rec.model_.album_weight, rec.popularity_weight_) == (
        best["w_num"], best["w_text"], best["album_weight"], best["popularity_weight"])
    assert rec.popularity_.min() >= 0 and rec.popularity_.max() == pytest.approx(1.0)

    fixed = ContentRecommender(w_num=0.2, popularity_weight=0.0).fit(train_store)
    rows = fixed.tuning_["grid"]
    assert len(rows) == len(GRID_ALBUM_WEIGHTS)  # only the album weight was left to validation
    assert {(r["w_num"], r["w_text"], r["popularity_weight"]) for r in rows} == {(0.2, 0.8, 0.0)}
    assert (fixed.model_.w_num, fixed.model_.w_text, fixed.popularity_weight_) == (0.2, 0.8, 0.0)

    none = ContentRecommender(w_num=0.6, w_text=0.4, album_weight=1.0, popularity_weight=0.0).fit(train_store)
    assert none.tuning_ is None and (none.model_.w_num, none.model_.album_weight) == (0.6, 1.0)
    a, _ = none.recommend(train_store.playlist_tracks["track_uri"].iloc[:3].tolist(), k=20)
    b, _ = ContentRecommender(w_num=0.6, w_text=0.4, album_weight=1.0,
                              popularity_weight=0.0).fit(train_store).recommend(
        train_store.playlist_tracks["track_uri"].iloc[:3].tolist(), k=20)
    assert a == b and len(a) == 20


@pytest.mark.parametrize("bad", [-0.1, "sometimes", float("nan")])
def test_content_recommender_rejects_bad_weights(train_store, bad):
    with pytest.raises(ValueError, match="popularity_weight must be a number >= 0 or \"auto\""):
        ContentRecommender(popularity_weight=bad).fit(train_store)
