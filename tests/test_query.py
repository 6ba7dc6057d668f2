"""``Query``: one checked request type, and ``Recommender.recommend_many``, the core every ``recommend*`` calls."""

import math

import numpy as np
import pandas as pd
import pytest

from modules.errors import InputError, QueryTypeError
from modules.mpd import read_challenge
from modules.query import Query

FEATURES = ["energy", "tempo"]


# -- the query alone -----------------------------------------------------------------------------------------------

def test_a_query_is_normalized_once():
    q = Query(["b", "a", "b", "c", "a"], "  chill  ", k=np.int64(5), weights={"energy": 2, "tempo": 1},
              explain=None, features=FEATURES)
    assert q.seed_track_uris == ("b", "a", "c") and q.seeds == ["b", "a", "c"]  # duplicates out, order kept
    assert q.title == "chill" and q.k == 5 and type(q.k) is int
    assert q.weights == {"energy": 2.0, "tempo": 1.0} and q.explain is False and q.mode == "hybrid"
    assert Query(title="   ").title is None and Query(title=42).title is None  # blank or not text: no title
    assert Query(weights={"energy": 1.0, "tempo": 1}).weights is None  # all 1: the learned ranking
    assert Query(weights={}).weights is None and Query().k == 500 and Query().explain == 50
    assert Query(explain=True).explain is True and Query(explain=0).explain == 0


@pytest.mark.parametrize("kwargs,error,message", [
    ({"seed_track_uris": "spotify:track:a"}, QueryTypeError, "not one string; wrap it in a list"),
    ({"k": 0}, InputError, r"k must be a positive integer \(got 0\)"),
    ({"k": True}, InputError, "k must be a positive integer"),
    ({"k": 2.5}, InputError, "k must be a positive integer"),
    ({"mode": "random"}, InputError, "mode must be one of"),
    ({"weights": [("energy", 2)]}, QueryTypeError, "weights must be a mapping"),
    ({"weights": {"energyy": 2}}, InputError, r"unknown features \['energyy'\]; choose from \['energy', 'tempo'\]"),
    ({"weights": {"energy": -1}}, InputError, r"weights\['energy'\] must be a finite number >= 0"),
    ({"weights": {"energy": math.nan}}, InputError, "finite number"),
    ({"weights": {"energy": True}}, InputError, "finite number"),
    ({"seed_track_uris": ["a", "b\udcff"]}, InputError, r"seed_track_uris\[1\] is not valid Unicode: a lone "
                                                       r"surrogate U\+DCFF at position 1"),
    ({"title": "x\ud800"}, InputError, "title is not valid Unicode"),
    ({"explain": -3}, InputError, "explain must be True, False or a number of rows >= 0"),
    ({"explain": "all"}, InputError, "explain must be"),
])
def test_bad_fields_are_refused_naming_the_field(kwargs, error, message):
    with pytest.raises(error, match=message):
        Query(**kwargs, features=FEATURES)


def test_type_errors_are_input_errors_and_type_errors():
    """The command line prints an ``InputError`` as one line; older callers catch ``TypeError``."""
    with pytest.raises(InputError):
        Query("one string")
    with pytest.raises(TypeError):
        Query("one string")


def test_without_features_any_weight_name_passes_the_query():
    assert Query(weights={"anything": 2.0}).weights == {"anything": 2.0}  # the recommender checks the names


@pytest.mark.parametrize("playlist", [
    {"tracks": [{"track_uri": "a"}, {"track_uri": "b"}], "name": "rock", "pid": 7, "num_samples": 2},
    {"seed_track_uris": ["a", "b"], "title": "rock"},
    {"tracks": [{"track_uri": "a", "pos": 0}, {"track_uri": "b", "pos": 1}], "title": "rock"},
    {"seed_track_uris": ["a", "b"], "name": "rock"},
])
def test_both_playlist_forms_give_the_same_query(playlist):
    q = Query.from_playlist(playlist, index=3, k=10, explain=False)
    assert q == Query(["a", "b"], "rock", 10, explain=False)


def test_title_only_and_empty_playlists():
    assert Query.from_playlist({"name": "chill", "tracks": []}, index=0).seed_track_uris == ()
    assert Query.from_playlist({"title": "chill"}, index=0).title == "chill"
    assert Query.from_playlist({"tracks": []}, index=0) == Query()


@pytest.mark.parametrize("playlist,error,message", [
    ({"pid": 3, "seeds": ["a"]}, InputError, r"playlists\[4\] has none of the keys seed_track_uris, tracks, title, "
                                             r"name \(got keys \['pid', 'seeds'\]\)"),
    ({}, InputError, r"playlists\[4\] has none of the keys"),
    ({"tracks": [], "seed_track_uris": ["a"]}, InputError, r"playlists\[4\] has both 'seed_track_uris' and 'tracks'"),
    ({"title": "a", "name": "b"}, InputError, r"playlists\[4\] has both 'title' and 'name'"),
    ({"tracks": [{"uri": "a"}]}, InputError, r"playlists\[4\]\.tracks\[0\] has no 'track_uri'"),
    ({"tracks": "spotify:track:a"}, QueryTypeError, r"playlists\[4\]\.tracks must be a list"),
    (["spotify:track:a"], QueryTypeError, r"playlists\[4\] must be a mapping"),
    ({"seed_track_uris": "spotify:track:a"}, QueryTypeError, "not one string"),
])
def test_a_playlist_whose_seeds_would_be_lost_is_refused(playlist, error, message):
    with pytest.raises(error, match=message):
        Query.from_playlist(playlist, index=4)


# -- the recommender's core and its wrappers (the session's tiny bundle) -------------------------------------------

@pytest.fixture(scope="module")
def rec(tiny_bundle):
    from modules.recommender import Recommender

    return Recommender.load(tiny_bundle)


@pytest.fixture(scope="module")
def playlists(split_dir):
    return read_challenge(split_dir / "challenge_set.json")["playlists"][:40]


def test_recommend_batch_reads_the_documented_rest_form_too(rec, playlists):
    """docs/hybrid.md's ``recommend_batch([{"seed_track_uris": …, "title": …}])`` gets the same answers as the
    challenge form: before, those seeds and titles were silently dropped."""
    rest = [{"seed_track_uris": [t["track_uri"] for t in p["tracks"]], "title": p.get("name")} for p in playlists]
    mpd = rec.recommend_batch(playlists, 20)
    for got, want in zip(rec.recommend_batch(rest, 20), mpd, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    seeded = next(i for i, p in enumerate(playlists) if len(p["tracks"]) >= 5)
    assert mpd[seeded]["track_uri"].tolist() != rec.recommend([], None, 20)["track_uri"].tolist()  # seeds count


def test_recommend_batch_refuses_a_playlist_without_seeds_or_title_before_any_work(rec, playlists, monkeypatch):
    def no_scan(*args, **kwargs):
        raise AssertionError("the catalog was scanned before the input was checked")

    monkeypatch.setattr(rec.hybrid, "retrieve", no_scan)
    with pytest.raises(InputError, match=r"playlists\[2\] has none of the keys"):
        rec.recommend_batch([playlists[0], playlists[1], {"pid": 5, "seeds": ["spotify:track:a"]}], 10)


def test_recommend_many_is_the_core_of_every_variant(rec, playlists):
    seeds = [t["track_uri"] for t in playlists[3]["tracks"]]
    queries = [rec.query(seeds, "rock", 15), Query([], "chill", 5, explain=True),
               Query(seeds[:1], None, 8, weights={"loudnesss": 2.0}), Query(seeds, "rock", 15, mode="collaborative")]
    out = rec.recommend_many(queries)
    assert isinstance(out[2], InputError) and "unknown features ['loudnesss']" in str(out[2])  # it fails alone
    for q, got in zip(queries, out, strict=True):
        if isinstance(got, Exception):
            continue
        alone = rec.recommend_columns(list(q.seed_track_uris), q.title, q.k, q.weights, mode=q.mode,
                                      explain=q.explain)
        assert list(got) == list(alone) and all(np.array_equal(np.asarray(got[c]), np.asarray(alone[c]))
                                                for c in ("rank", "track_uri", "explanation"))
        frame = rec.recommend(list(q.seed_track_uris), q.title, q.k, mode=q.mode, explain=q.explain)
        assert frame["track_uri"].tolist() == list(got["track_uri"])
    with pytest.raises(TypeError, match=r"queries\[0\] is a dict, not a Query"):
        rec.recommend_many([{"title": "rock"}])
    assert rec.recommend_many([]) == []


def test_public_lookups_for_apps(rec):
    uri = rec.tracks["track_uri"].iloc[0]
    row = rec.tracks.iloc[0]
    assert rec.track_label(uri) == f"{row['track_name']} by {row['artist_name']}" == rec.track_labels[uri]
    assert rec.track_label("spotify:track:nowhere") == "spotify:track:nowhere"
    assert rec.is_training_track(uri) and not rec.is_training_track("spotify:track:nowhere")
    assert rec.unknown_seeds([uri, "spotify:track:nowhere"]) == ["spotify:track:nowhere"]
    assert rec.content_model is rec.hybrid.content_ and rec.rule_model is rec.hybrid.rules_
    assert rec.audio_features == list(rec.content_model.features) and "energy" in rec.audio_features
    with pytest.raises(InputError, match="unknown features"):
        rec.query([], "x", weights={"nope": 2.0})


def test_explanations_from_the_candidate_set_equal_the_plain_ones(rec):
    """``_explain`` hands the content model the rows and cosines the candidate set already holds: every returned
    row's sentence is the one the content model (and the rules) give when asked from scratch, with and without
    feature weights, and the content model's own answer with those given equals the one without."""
    import json

    content = rec.content_model
    seeds = rec.tracks["track_uri"].tolist()[:6]
    for s, title, weights in ((seeds, "chill", None), (seeds[:1], None, {"energy": 3.0}), ([], "rock", None)):
        out = rec.recommend(s, title, 30, weights, explain=True)
        uris = out["track_uri"].tolist()
        plain = content.explanations(s, uris, weights, title=title)
        rules = rec.rule_model.explain_many(s, uris, rec.track_labels)
        want = ["; ".join(([r] if r else []) + [e["reason"]]) for r, e in zip(rules, plain, strict=True)]
        assert out["explanation"].tolist() == want
        sim = content.similarity(s, uris, weights, title=title)
        fast = content.explanations(s, uris, weights, title=title, candidate_rows=content.rows_of(uris),
                                    parts=(sim["num"], sim["text"]))
        assert json.dumps(fast) == json.dumps(plain)


def test_track_labels_answer_what_the_dict_of_every_track_answered():
    from modules.track_labels import TrackLabels

    tracks = pd.DataFrame({"track_uri": ["u:a", "u:b", "u:c", "u:d"], "track_name": ["A", None, "C", "D"],
                           "artist_name": ["x", "y", None, "z"]})
    old = dict(zip(tracks["track_uri"], tracks["track_name"] + " by " + tracks["artist_name"]))
    labels = TrackLabels(pd.Index(tracks["track_uri"].to_numpy(dtype=object)), tracks["track_name"].array,
                         tracks["artist_name"].array)
    assert len(labels) == len(old) and list(labels) == list(old)
    for u in [*old, "u:nowhere", None]:
        assert (u in labels) == (u in old)
        got, want = labels.get(u, u), old.get(u, u)
        assert got == want or (pd.isna(got) and pd.isna(want)), u
    assert labels["u:a"] == "A by x"
    with pytest.raises(KeyError):
        labels["u:nowhere"]
    with pytest.raises(ValueError, match="unique"):
        TrackLabels(pd.Index(["u:a", "u:a"]), ["A", "B"], ["x", "y"])
