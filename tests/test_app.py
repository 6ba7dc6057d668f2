"""The demo app: ``modules.explore`` helpers on hand-built data, and every page driven by Streamlit's AppTest
on the session's ``tiny_bundle`` (no browser; the real-browser check is tests/test_app_browser.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modules import explore
from modules.bundle import Bundle

APP = Path(__file__).resolve().parent.parent / "streamlit_app" / "app.py"
URI_A = "spotify:track:4iV5W9uYEdYUVa79Axb7Rh"
URI_B = "spotify:track:1301WleyT98MSxVHPZCA6M"


# -- helpers on hand-built data -----------------------------------------------------------------------------------

def test_parse_track_refs_takes_uris_links_and_ids_and_reports_the_rest():
    text = (f"{URI_A}, https://open.spotify.com/intl-de/track/1301WleyT98MSxVHPZCA6M?si=abc\n"
            f"4iV5W9uYEdYUVa79Axb7Rh spotify:album:4iV5W9uYEdYUVa79Axb7Rh hello")
    uris, rejected = explore.parse_track_refs(text)
    assert uris == [URI_A, URI_B]
    assert rejected == ["spotify:album:4iV5W9uYEdYUVa79Axb7Rh", "hello"]
    assert explore.parse_track_refs("") == ([], [])


def test_embed_url_only_for_real_track_ids():
    assert explore.embed_url(URI_A) == "https://open.spotify.com/embed/track/4iV5W9uYEdYUVa79Axb7Rh"
    assert explore.embed_url("spotify:track:derived-abc") is None
    assert explore.embed_url("javascript:alert(1)") is None


def test_search_playlists_matches_every_word_longest_first():
    pl = pd.DataFrame({"pid": [1, 2, 3, 4], "name": ["Chill Vibes", "chill study", "Workout", None],
                       "num_tracks": [10, 30, 50, 5]})
    assert explore.search_playlists(pl, "chill")["pid"].tolist() == [2, 1]
    assert explore.search_playlists(pl, "CHILL vibes")["pid"].tolist() == [1]
    assert explore.search_playlists(pl, "", limit=2)["pid"].tolist() == [3, 2]
    assert explore.search_playlists(pl, "jazz").empty
    with pytest.raises(explore.ExploreError, match="limit must be a positive integer"):
        explore.search_playlists(pl, "x", limit=0)


def test_challenge_line_and_csv_export():
    assert explore.challenge_line(7, [URI_A, URI_B]) == f"7,{URI_A},{URI_B}"
    with pytest.raises(explore.ExploreError, match="cannot repeat"):
        explore.challenge_line(7, [URI_A, URI_A])
    frame = pd.DataFrame({"rank": [1], "track_uri": [URI_A], "track_name": ["a, with comma"], "artist_name": ["b"],
                          "score": [0.5], "explanation": ["why"], "extra": [1]})
    text = explore.results_csv(frame).decode()
    assert text.splitlines()[0] == "rank,track_uri,track_name,artist_name,score,explanation"
    assert '"a, with comma"' in text


def test_status_note_only_when_no_seed_is_known():
    assert explore.status_note({"known": [URI_A], "content_only": [], "unknown": [URI_B]}, None) is None
    assert explore.status_note({"known": [], "content_only": [], "unknown": []}, "chill") is None
    note = explore.status_note({"known": [], "content_only": [URI_A], "unknown": [URI_B]}, "rainy jazz")
    assert "None of the 2 tracks" in note and "audio features" in note and "'rainy jazz'" in note
    assert "popularity" in explore.status_note({"known": [], "content_only": [], "unknown": [URI_B]}, None)


def _ruleset():
    from modules.rules import RuleSet

    uris = np.array(["spotify:track:a", "spotify:track:b", "spotify:track:c"], dtype=object)
    # a→b in 4 of 10 playlists (a in 5, b in 4): conf 0.8, lift 2; b→c 2 (b 4, c 2): conf .5, lift 2.5;
    # a→c 1 (a 5, c 2): conf .2, lift 1
    return RuleSet(antecedents=[[0], [1], [0]], consequents=[[1], [2], [2]], antecedent_count=[5, 4, 5],
                   consequent_count=[4, 2, 2], count=[4, 2, 1], n_playlists=10, track_uris=uris)


def test_rule_table_filters_by_metrics_and_track_names():
    names = {"spotify:track:a": "Alpha by X", "spotify:track:b": "Beta by Y", "spotify:track:c": "Gamma by Z"}
    table = explore.RuleTable(_ruleset(), names)
    assert len(table) == 3
    assert table.ranges()["confidence"] == pytest.approx((0.2, 0.8))
    frame, total = table.filter(min_confidence=0.5)
    assert total == 2 and set(frame["if"]) == {"Alpha by X", "Beta by Y"}
    assert frame["lift"].tolist() == pytest.approx([2.0, 2.5]) or frame["lift"].tolist() == pytest.approx([2.5, 2.0])
    frame, total = table.filter(query="gamma")
    assert total == 2 and (frame["then"] == "Gamma by Z").all()
    frame, total = table.filter(min_support=0.3, query="alpha")
    assert total == 1 and frame.iloc[0]["antecedents"] == ["spotify:track:a"]
    assert frame.iloc[0]["support"] == pytest.approx(0.4)
    frame, total = table.filter(min_lift=3)
    assert total == 0 and frame.empty
    assert table.filter(limit=1)[0].shape[0] == 1
    assert table.filter(min_count=2)[1] == 2
    assert table.filter(sort="count")[0]["count"].tolist() == [4, 2, 1]
    assert table.filter(sort="confidence")[0]["confidence"].tolist() == pytest.approx([0.8, 0.5, 0.2])
    with pytest.raises(explore.ExploreError, match="sort must be one of"):
        table.filter(sort="name")


def test_rule_graph_is_deterministic_and_joins_rule_tracks():
    table = explore.RuleTable(_ruleset())
    frame, _ = table.filter()
    nodes, edges = explore.rule_graph(frame, max_rules=10, seed=0)
    assert sorted(nodes["track_uri"]) == ["spotify:track:a", "spotify:track:b", "spotify:track:c"]
    assert len(edges) == 3 and np.isfinite(nodes[["x", "y"]].to_numpy()).all()
    assert dict(zip(nodes["track_uri"], nodes["degree"])) == {"spotify:track:a": 2, "spotify:track:b": 2,
                                                             "spotify:track:c": 2}
    again, _ = explore.rule_graph(frame, max_rules=10, seed=0)
    pd.testing.assert_frame_equal(nodes, again)
    empty_nodes, empty_edges = explore.rule_graph(frame.iloc[0:0])
    assert empty_nodes.empty and empty_edges.empty


def test_training_curve_reads_epochs_and_is_empty_without_a_record(tmp_path):
    assert explore.training_curve(tmp_path).empty
    curve_file = Bundle(tmp_path).training_curve
    curve_file.parent.mkdir()
    curve_file.write_text(json.dumps({"best_epoch": 2, "epochs": [
        {"epoch": 1, "loss": 4.0, "validation": {"ndcg": 0.1}, "note": "x"},
        {"epoch": 2, "loss": 3.5, "validation": {"ndcg": 0.2}}]}))
    curve = explore.training_curve(tmp_path)
    assert curve["epoch"].tolist() == [1, 2] and curve["loss"].tolist() == [4.0, 3.5]
    assert curve["validation.ndcg"].tolist() == [0.1, 0.2] and "note" not in curve.columns
    curve_file.write_text("{not json")
    with pytest.raises(explore.ExploreError, match="not a training-curve file"):
        explore.training_curve(tmp_path)


def _write_results(root: Path, name: str = "quality-50-s0-pc2", methods=("popularity", "hybrid")) -> None:
    run = root / name
    run.mkdir(parents=True)
    for method, ndcg in zip(methods, (0.05, 0.3, 0.2)):
        (run / f"{method}.json").write_text(json.dumps({"method": method, "label": method, "metrics": {
            "ALL": {"ndcg": ndcg, "r_precision": ndcg / 2, "clicks": 3.0, "count": 20},
            "title_only": {"ndcg": ndcg / 3, "r_precision": 0.0, "clicks": 9.0, "count": 2}}}))
    (root / "speed.json").write_text(json.dumps({"seconds": 3}))
    (root / "broken.json").write_text("{")


def test_benchmark_results_reads_quality_files_only(tmp_path):
    assert explore.benchmark_results(tmp_path / "missing").empty
    _write_results(tmp_path)
    res = explore.benchmark_results(tmp_path)
    assert set(res["run"]) == {"quality-50-s0-pc2"} and set(res["method"]) == {"popularity", "hybrid"}
    assert len(res) == 2 * 2 * 3  # methods × categories × metrics (count is not a metric)
    table = explore.benchmark_table(res, "quality-50-s0-pc2")
    assert table["method"].tolist() == ["hybrid", "popularity"]
    assert list(table.columns[:4]) == ["method", "r_precision", "ndcg", "clicks"]


def test_album_art_from_the_feature_store_cache_else_none(tmp_path):
    from modules.features import FeatureStore

    assert explore.album_art([URI_A], None) == {URI_A: None}
    assert explore.album_art([URI_A], tmp_path / "missing.sqlite") == {URI_A: None}
    store = FeatureStore(tmp_path / "f.sqlite", create=True)
    store.upsert_metadata([{"track_uri": URI_A, "track_name": "A", "album_art_url": "https://i.scdn.co/image/ab"}])
    store.close()
    assert explore.album_art([URI_A, URI_B], tmp_path / "f.sqlite") == {URI_A: "https://i.scdn.co/image/ab",
                                                                         URI_B: None}


def test_sample_map_keeps_the_asked_tracks():
    points = pd.DataFrame({"track_uri": [f"u{i}" for i in range(100)], "x": np.arange(100.0), "y": 0.0})
    shown = explore.sample_map(points, 10, seed=0, keep=["u5", "u77"])
    assert len(shown) == 10 and {"u5", "u77"} <= set(shown["track_uri"])
    assert explore.sample_map(points, 10, seed=0, keep=["u5"]).equals(explore.sample_map(points, 10, keep=["u5"]))
    assert explore.sample_map(points, 1000) is points
    pos = explore.map_positions(points, {"playlist": ["u1", "u2"], "recommended": ["u2", "u3", "nope"]})
    assert dict(zip(pos["track_uri"], pos["group"])) == {"u1": "playlist", "u2": "playlist", "u3": "recommended"}


# -- on the tiny bundle --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rec(tiny_bundle):
    from modules.recommender import Recommender

    return Recommender.load(tiny_bundle)


def test_bundle_map_and_features_cover_the_bundle_tracks(rec):
    points, info = explore.bundle_map(rec, n_clusters=4, seed=0)
    assert len(points) > 100 and set(points["track_uri"]) <= set(rec.tracks["track_uri"])
    assert points["cluster"].nunique() == 4 and len(info["clusters"]) == 4
    assert np.isfinite(points[["x", "y"]].to_numpy()).all()
    feats = explore.track_features(rec, points["track_uri"].head(20).tolist(), ["energy", "tempo"])
    assert list(feats.columns) == ["track_uri", "energy", "tempo"] and len(feats) == 20
    assert feats["energy"].between(0, 1).all() and feats["tempo"].between(20, 260).all()


def test_search_tracks_and_seed_status(rec):
    artist = rec.tracks.sort_values("count").iloc[-1]["artist_name"]
    hits = explore.search_tracks(rec, artist, limit=5)
    assert len(hits) >= 1 and hits["in_model"].all()
    assert all(artist.lower() in f"{n} {a}".lower() for n, a in zip(hits["track_name"], hits["artist_name"]))
    known = hits["track_uri"].iloc[0]
    status = explore.seed_status(rec, [known, "spotify:track:0000000000000000000000"])
    assert status["known"] == [known] and status["unknown"] == ["spotify:track:0000000000000000000000"]


# -- the pages, with Streamlit's AppTest ---------------------------------------------------------------------------

@pytest.fixture
def app_env(monkeypatch, tiny_bundle, tmp_path):
    """The app pointed at the tiny bundle, with no feature store and an empty benchmark folder."""
    monkeypatch.setenv("PLAYLIST_MODEL", str(tiny_bundle))
    monkeypatch.setenv("PLAYLIST_FEATURES", str(tmp_path / "no-features.sqlite"))
    monkeypatch.setenv("PLAYLIST_MAP", str(tmp_path / "no-map.parquet"))
    monkeypatch.setenv("PLAYLIST_BENCHMARKS", str(tmp_path / "no-results"))
    monkeypatch.delenv("PLAYLIST_DATA", raising=False)
    return tmp_path


def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=180)


def _errors(at) -> list:
    return [e.value for e in at.exception] + [e.value for e in at.error]


def _cards(at) -> list[str]:
    """Track URIs of the result cards, in page order."""
    return [m.value.split('data-uri="')[1].split('"')[0] for m in at.markdown if 'class="rec-card"' in m.value]


def test_bundle_path_from_the_command_line_then_the_environment(monkeypatch):
    from streamlit_app import common

    monkeypatch.setenv("PLAYLIST_MODEL", "/env/bundle")
    monkeypatch.setattr("sys.argv", ["app.py", "--model", "/cli/bundle"])
    assert common.bundle_path() == Path("/cli/bundle")
    monkeypatch.setattr("sys.argv", ["app.py"])
    assert common.bundle_path() == Path("/env/bundle")
    monkeypatch.delenv("PLAYLIST_MODEL")
    assert common.bundle_path().parts[-2:] == ("models", "world")


def test_no_bundle_page_says_how_to_train(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYLIST_MODEL", str(tmp_path / "nowhere"))
    at = _app().run()
    assert not at.exception
    assert at.title[0].value == "Train a model first"
    assert "is not a model bundle" in at.error[0].value
    assert "python -m modules train --mpd data/world --out models/world" in at.code[0].value


def test_recommend_a_picked_playlist(app_env, rec):
    at = _app().run()
    assert not _errors(at), _errors(at)
    at.text_input(key="pl_query").input("a").run()
    box = at.selectbox(key="pl_pick")
    assert len(box.options) >= 2 and all("a" in o.split(" · ")[0].lower() for o in box.options)
    box.select_index(1).run()  # a newly picked playlist brings its own title
    label = at.selectbox(key="pl_pick").value
    assert label == box.options[1] and at.text_input(key="title").value == label.split(" · ")[0]
    pid = int(label.rsplit("(pid ", 1)[1].rstrip(")"))
    at.button(key="go").click().run()
    assert not _errors(at), _errors(at)
    cards = _cards(at)
    assert len(cards) == 12 and len(set(cards)) == 12
    cur = at.session_state["current"]
    assert cur["pid"] == pid and len(cur["seeds"]) >= 1 and not set(cards) & set(cur["seeds"])
    expected = rec.recommend(cur["seeds"], cur["title"] or None, 12)["track_uri"].tolist()
    assert cards == expected
    assert any('class="rec-why"' in m.value and "Why: " in m.value for m in at.markdown)
    assert {d.label for d in at.get("download_button")} == {"Download as a challenge line", "Download the table (CSV)"}
    # no player until asked, then the Spotify embed of that track
    assert not at.get("iframe")
    at.toggle(key=f"play-{cards[0]}").set_value(True).run()
    frames = at.get("iframe")
    assert len(frames) == 1 and cards[0].split(":")[-1] in str(frames[0].proto)


def test_weights_rerank_live_and_shuffle_mode_is_collaborative(app_env, rec):
    at = _app().run()
    at.button(key="go").click().run()
    base = _cards(at)
    cur = at.session_state["current"]
    at.slider(key="w-energy").set_value(3.0).run()
    assert not _errors(at), _errors(at)
    heavy = _cards(at)
    assert heavy == rec.recommend(cur["seeds"], cur["title"] or None, 12, {"energy": 3.0})["track_uri"].tolist()
    assert heavy != base
    at.radio(key="mode").set_value("shuffle").run()
    assert at.slider(key="w-energy").disabled
    shuffled = _cards(at)
    assert shuffled == rec.recommend(cur["seeds"], cur["title"] or None, 12,
                                     mode="collaborative")["track_uri"].tolist()


def test_build_a_playlist_from_search_and_pasted_links(app_env, rec):
    at = _app().run()
    at.radio(key="source").set_value("Build your own").run()
    at.button(key="go").click().run()
    assert "Add at least one track or a title first." in [w.value for w in at.warning]
    artist = rec.tracks.sort_values("count").iloc[-1]["artist_name"]
    at.text_input(key="cat_query").input(artist).run()
    add = [b for b in at.button if b.key and b.key.startswith("add-")]
    assert add, "search found nothing"
    first = add[0].key.removeprefix("add-")
    add[0].click().run()
    assert at.session_state["built"] == [first]
    at.text_area(key="paste").input("https://open.spotify.com/track/1301WleyT98MSxVHPZCA6M?si=x album:x").run()
    at.button(key="add_pasted").click().run()
    assert at.session_state["built"] == [first, URI_B]
    assert any("album:x" in w.value for w in at.warning)
    assert not _errors(at), _errors(at)
    cards = _cards(at)
    assert len(cards) == 12 and first not in cards and URI_B not in cards
    at.button(key=f"rm-{first}").click().run()
    assert at.session_state["built"] == [URI_B]


def test_unknown_tracks_get_title_results_and_a_note(app_env):
    at = _app().run()
    at.radio(key="source").set_value("Build your own").run()
    at.text_area(key="paste").input("spotify:track:0000000000000000000000 spotify:track:1111111111111111111111").run()
    at.button(key="add_pasted").click().run()
    at.text_input(key="title").input("chill vibes").run()
    at.button(key="go").click().run()
    assert not _errors(at), _errors(at)
    notes = [i.value for i in at.info]
    assert any("None of the 2 tracks appears in the training playlists" in n and "'chill vibes'" in n for n in notes)
    assert len(_cards(at)) == 12


def test_album_art_from_the_feature_store(app_env, monkeypatch, rec):
    from modules.features import FeatureStore

    at = _app().run()
    at.button(key="go").click().run()
    first = _cards(at)[0]
    store = FeatureStore(app_env / "art.sqlite", create=True)
    store.upsert_metadata([{"track_uri": first, "album_art_url": "https://i.scdn.co/image/test-cover"}])
    store.close()
    monkeypatch.setenv("PLAYLIST_FEATURES", str(app_env / "art.sqlite"))
    at = _app().run()
    at.button(key="go").click().run()
    cards = [m.value for m in at.markdown if 'class="rec-card"' in m.value]
    assert 'src="https://i.scdn.co/image/test-cover"' in cards[0]
    assert all("<img" not in c for c in cards[1:])  # the others keep their placeholder


def test_explore_page_marks_the_playlist_and_its_recommendations(app_env):
    at = _app().run()
    at.button(key="go").click().run()
    at.switch_page("pages/explore.py").run()
    assert not _errors(at), _errors(at)
    charts = at.get("plotly_chart")
    spec = json.loads(charts[0].proto.spec)
    names = [t.get("name", "") for t in spec["data"]]
    assert any(n.startswith("playlist (") for n in names) and any(n.startswith("recommended (") for n in names)
    assert len(charts) == 1 + 4  # the map and the four default feature histograms


def test_explore_page_without_a_playlist_invites_one(app_env):
    at = _app().run()
    at.switch_page("pages/explore.py").run()
    assert not _errors(at), _errors(at)
    assert any("Pick or build a playlist" in i.value for i in at.info)


def test_rules_page_filters(app_env, rec):
    at = _app().run()
    at.switch_page("pages/rules.py").run()
    assert not _errors(at), _errors(at)
    # it opens on the rules with support: the most playlists first, none seen in a single playlist
    first = at.dataframe[0].value
    assert at.selectbox(key="r_sort").value == "count" and len(first) > 0
    assert first["count"].tolist() == sorted(first["count"], reverse=True) and (first["count"] >= 2).all()
    assert first["count"].iloc[0] == rec.rule_model.rules.count.max()
    at.number_input(key="r_count").set_value(0).run()
    at.slider(key="r_conf").set_value(1.0).run()
    table = at.dataframe[0].value
    assert len(table) > 0 and (table["confidence"] >= 1.0 - 1e-9).all()
    artist = rec.tracks.sort_values("count").iloc[-1]["artist_name"]
    at.text_input(key="r_query").input(artist).run()
    table = at.dataframe[0].value
    assert len(table) > 0
    assert all(artist.lower() in (a + " " + b).lower() for a, b in zip(table["if"], table["then"]))
    at.selectbox(key="r_sort").select("count").run()
    counts = at.dataframe[0].value["count"].tolist()
    assert counts == sorted(counts, reverse=True)
    at.text_input(key="r_query").input("zzzz-no-such-track").run()
    assert any("No rule matches" in i.value for i in at.info)


def test_model_page_shows_manifest_curve_and_benchmark_help(app_env):
    at = _app().run()
    at.switch_page("pages/model.py").run()
    assert not _errors(at), _errors(at)
    assert at.metric[0].label == "Training playlists"
    infos = " ".join(i.value for i in at.info)
    assert "No quality results" in infos and "training curve" not in infos
    assert any("python -m benchmarks.quality" in c.value for c in at.code)


def test_model_page_with_benchmarks_and_no_curve(app_env, monkeypatch, tiny_bundle):
    _write_results(app_env / "results")
    _write_results(app_env / "results", "quality-50-s1-pc2")  # a replication: as many methods
    _write_results(app_env / "results", "quality-9-s0-pc1", ("popularity",))
    monkeypatch.setenv("PLAYLIST_BENCHMARKS", str(app_env / "results"))
    copy = app_env / "bundle"
    shutil.copytree(tiny_bundle, copy)
    Bundle(copy).training_curve.unlink()
    monkeypatch.setenv("PLAYLIST_MODEL", str(copy))
    at = _app().run()
    at.switch_page("pages/model.py").run()
    assert not _errors(at), _errors(at)
    assert any("records no training curve" in i.value for i in at.info)
    bench = [d.value for d in at.dataframe if "method" in d.value.columns]
    assert bench and bench[0]["method"].tolist() == ["hybrid", "popularity"]
    # opens on the run with the most methods; of two such, the first by name (the seed-0 world)
    assert at.selectbox(key="bench_run").value == "quality-50-s0-pc2"


def test_card_html_escapes_names_and_shortens_the_why():
    from streamlit_app import common

    row = pd.Series({"rank": 1, "track_uri": URI_A, "track_name": "<script>x</script>", "artist_name": "A & B",
                     "score": 0.5, "retrieval": 0.1, "rules": np.nan, "content": 0.3,
                     "explanation": "in 23 of 41 playlists with Song by X; sound 0.91, tags 0.40: a bit more "
                                    "energetic"})
    card = common.card_html(row, None)
    assert "<script>" not in card and "&lt;script&gt;" in card and "A &amp; B" in card
    assert "Why: in 23 of 41 playlists with Song by X</div>" in card
    assert "score 0.500 · retrieval 0.10 · content 0.30" in card and "rules" not in card.split("Why")[0]
    assert 'title="in 23 of 41 playlists with Song by X; sound' in card and 'class="rec-art"' in card
    assert common.one_line("in 3 of 4 playlists with " + "x" * 100).endswith("…")
    with_art = common.card_html(row, "https://i.scdn.co/image/x")
    assert '<img class="rec-art" src="https://i.scdn.co/image/x"' in with_art
