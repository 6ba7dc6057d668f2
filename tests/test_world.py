"""The playlist world: MPD constraints, determinism, and structure the models can find."""

import json
import re
from collections import Counter

import numpy as np
import orjson
import pytest

from modules.mpd import PLAYLIST_FIELDS, TRACK_FIELDS, TRACK_URI, find_slices
from modules.world import MAX_TRACKS, MIN_TRACKS, PlaylistWorld, write_world


def _playlists(path):
    out = []
    for f in find_slices(path):
        out += orjson.loads(f.read_bytes())["playlists"]
    return out


def test_world_meets_mpd_constraints(world_dir):
    files = find_slices(world_dir)
    assert [f.name for f in files] == ["mpd.slice.0-399.json"]
    pls = _playlists(world_dir)
    assert [p["pid"] for p in pls] == list(range(400))
    for p in pls:
        assert set(PLAYLIST_FIELDS) <= set(p), p.keys()
        tracks = p["tracks"]
        assert MIN_TRACKS <= len(tracks) <= MAX_TRACKS
        assert p["num_tracks"] == len(tracks)
        assert [t["pos"] for t in tracks] == list(range(len(tracks)))
        assert len({t["artist_uri"] for t in tracks}) == p["num_artists"] >= 3
        assert len({t["album_uri"] for t in tracks}) == p["num_albums"] >= 2
        assert p["duration_ms"] == sum(t["duration_ms"] for t in tracks)
        assert p["collaborative"] in ("true", "false")
        assert p["name"].strip()
        for t in tracks:
            assert list(t) == list(TRACK_FIELDS)
            assert TRACK_URI.match(t["track_uri"])
            assert re.fullmatch(r"spotify:artist:[0-9A-Za-z]{22}", t["artist_uri"])
            assert re.fullmatch(r"spotify:album:[0-9A-Za-z]{22}", t["album_uri"])


def test_same_seed_gives_identical_bytes_and_parallel_matches_serial(tmp_path, catalog):
    a, b, c, d = (tmp_path / x for x in "abcd")
    write_world(a, 2100, seed=7, catalog=catalog, show_progress=False)
    write_world(b, 2100, seed=7, catalog=catalog, show_progress=False, jobs=2)
    write_world(c, 2100, seed=8, catalog=catalog, show_progress=False)
    names = [f.name for f in find_slices(a)]
    assert names == ["mpd.slice.0-999.json", "mpd.slice.1000-1999.json", "mpd.slice.2000-2099.json"]
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes()
    assert (a / names[0]).read_bytes() != (c / names[0]).read_bytes()
    # a smaller world into the same directory replaces, never mixes
    write_world(a, 300, seed=7, catalog=catalog, show_progress=False)
    assert [f.name for f in find_slices(a)] == ["mpd.slice.0-299.json"]
    write_world(d, 300, seed=7, catalog=catalog, show_progress=False)
    assert (a / "mpd.slice.0-299.json").read_bytes() == (d / "mpd.slice.0-299.json").read_bytes()


def test_world_has_structure_to_learn(world_dir, catalog):
    pls = _playlists(world_dir)
    genres = dict(zip(catalog["track_uri"], catalog["genres"]))
    # artist runs: adjacent tracks share the artist far more often than chance
    same = [a["artist_uri"] == b["artist_uri"] for p in pls for a, b in zip(p["tracks"], p["tracks"][1:])]
    assert np.mean(same) > 0.12
    # taste clusters: a playlist's most common genre covers a large share of its tracks
    shares = []
    for p in pls:
        c = Counter(g for t in p["tracks"] for g in genres[t["track_uri"]])
        shares.append(c.most_common(1)[0][1] / len(p["tracks"]))
    assert np.median(shares) > 0.4
    # titles speak about tracks: a title that is a genre name mostly holds that genre
    hits = [np.mean([p["name"].lower() in genres[t["track_uri"]] for t in p["tracks"]])
            for p in pls if p["name"].lower() in set(catalog["genres"].explode())]
    assert len(hits) > 10 and np.mean(hits) > 0.3
    # long tail: many tracks once, a few tracks in many playlists
    counts = Counter(t["track_uri"] for p in pls for t in p["tracks"])
    values = np.array(list(counts.values()))
    assert (values == 1).mean() > 0.3 and values.max() >= 10


def test_lengths_follow_mpd_like_distribution(catalog):
    world = PlaylistWorld(catalog, seed=3)
    rng = np.random.default_rng(0)
    lengths = np.array([len(world.sample_playlist(rng, i)["_rows"]) for i in range(1500)])
    assert 55 < lengths.mean() < 78  # MPD: 66.35
    assert 38 < np.median(lengths) < 60
    assert lengths.min() >= MIN_TRACKS and lengths.max() <= MAX_TRACKS


def test_bad_arguments_are_refused(tmp_path, catalog):
    with pytest.raises(ValueError, match="--playlists must be at least 1"):
        write_world(tmp_path, 0, catalog=catalog)


def test_hidden_taste_explains_the_playlist_and_is_never_written(catalog):
    """``_taste`` (for benchmarks/lab/world_oracle.py) is the draw behind the tracks: the oracle's slot probability
    ranks a playlist's own tracks near the top of the catalog; the slice bytes never carry it."""
    from benchmarks.lab.world_oracle import slot_probability

    world = PlaylistWorld(catalog, seed=5)
    rng = np.random.default_rng(1)
    percentiles = []
    for pid in range(60):
        pl = world.sample_playlist(rng, pid)
        taste = pl["_taste"]
        assert len(taste["clusters"]) == len(taste["mix"]) and abs(sum(taste["mix"]) - 1) < 1e-9
        assert 0.0 <= taste["p_run"] < 1.0
        q = slot_probability(world, taste, np.zeros(0, np.int64), True, 1)
        rank = np.argsort(np.argsort(-q))
        percentiles.append(np.median(rank[pl["_rows"]]) / world.n_tracks)
    assert np.median(percentiles) < 0.05  # a random ranking would put them at 0.5
    assert b"_taste" not in world.slice_bytes(0, 5) and b"_rows" not in world.slice_bytes(0, 5)


# -- the MPD-shaped world (--shape mpd) ---------------------------------------------------------------------
MPD_SMALL = 2000


@pytest.fixture(scope="module")
def mpd_dir(tmp_path_factory, catalog):
    out = tmp_path_factory.mktemp("mpd_world")
    write_world(out, MPD_SMALL, seed=0, catalog=catalog, show_progress=False, shape="mpd")
    return out


@pytest.fixture(scope="module")
def mpd_playlists(mpd_dir):
    return _playlists(mpd_dir)


def _one_off_share(pls):
    counts = Counter(t["track_uri"] for p in pls for t in p["tracks"])
    return np.mean(np.array(list(counts.values())) == 1)


def test_mpd_shape_same_seed_same_bytes_parallel_matches_serial(tmp_path, catalog):
    a, b, c = (tmp_path / x for x in "abc")
    write_world(a, 1001, seed=4, catalog=catalog, show_progress=False, shape="mpd")
    write_world(b, 1001, seed=4, catalog=catalog, show_progress=False, shape="mpd", jobs=2)
    write_world(c, 1001, seed=5, catalog=catalog, show_progress=False, shape="mpd")
    names = [f.name for f in find_slices(a)]
    assert names == ["mpd.slice.0-999.json", "mpd.slice.1000-1000.json"]
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes()
    assert (a / names[0]).read_bytes() != (c / names[0]).read_bytes()
    with pytest.raises(ValueError, match="--shape must be one of"):
        write_world(a, 10, catalog=catalog, shape="spotify")


def test_mpd_shape_meets_mpd_constraints(mpd_playlists):
    assert [p["pid"] for p in mpd_playlists] == list(range(MPD_SMALL))
    for p in mpd_playlists:
        tracks = p["tracks"]
        assert set(PLAYLIST_FIELDS) <= set(p)
        assert MIN_TRACKS <= len(tracks) <= MAX_TRACKS and p["num_tracks"] == len(tracks)
        assert len({t["track_uri"] for t in tracks}) == len(tracks)
        assert len({t["artist_uri"] for t in tracks}) == p["num_artists"] >= 3
        assert len({t["album_uri"] for t in tracks}) == p["num_albums"] >= 2
        assert p["duration_ms"] == sum(t["duration_ms"] for t in tracks)
        for t in tracks:
            assert list(t) == list(TRACK_FIELDS) and TRACK_URI.match(t["track_uri"])
    lengths = np.array([p["num_tracks"] for p in mpd_playlists])
    assert 60 < lengths.mean() < 73  # MPD: 66.35


def test_one_off_tracks_are_common_in_the_mpd_shape_and_rare_in_the_catalog_shape(mpd_playlists, tmp_path,
                                                                                    catalog):
    """The MPD subset of 6,071 playlists has 67 % of its tracks in one playlist only; the catalog world at a
    few thousand playlists a third, and less as it grows (one 89,740-track catalog)."""
    write_world(tmp_path, MPD_SMALL, seed=0, catalog=catalog, show_progress=False)
    assert _one_off_share(mpd_playlists) > 0.6
    assert _one_off_share(_playlists(tmp_path)) < 0.45


def test_synthetic_tracks_have_names_but_no_audio_features(mpd_playlists, catalog):
    real = catalog.set_index("track_uri")
    entries = [t for p in mpd_playlists for t in p["tracks"]]
    synthetic = {t["track_uri"]: t for t in entries if t["track_uri"] not in real.index}
    in_catalog = {t["track_uri"]: t for t in entries if t["track_uri"] in real.index}
    # most distinct tracks are synthetic (as most MPD tracks are in no open catalog), a large share of the
    # entries is still the catalog's, whose tracks keep their names, artists and audio features
    assert len(synthetic) > 1.2 * len(in_catalog)
    assert sum(t["track_uri"] in real.index for t in entries) / len(entries) > 0.5
    for uri, t in list(in_catalog.items())[:500]:
        assert t["track_name"] == real.at[uri, "track_name"] and t["artist_name"] == real.at[uri, "artist_name"]
    assert real.loc[list(in_catalog), "danceability"].notna().all()
    for t in synthetic.values():
        assert t["track_name"] and t["artist_name"] and t["album_name"] and 120_000 <= t["duration_ms"] < 360_000
    # synthetic entities: one name per URI, artists with several tracks and albums, albums inside one artist
    names = {}
    for t in synthetic.values():
        assert names.setdefault(t["track_uri"], t["track_name"]) == t["track_name"]
    album_artist = {}
    for t in synthetic.values():
        assert album_artist.setdefault(t["album_uri"], t["artist_uri"]) == t["artist_uri"]
    per_artist = Counter(t["artist_uri"] for t in synthetic.values())
    assert max(per_artist.values()) >= 10
    assert not {t["artist_uri"] for t in synthetic.values()} & set(catalog["artist_uri"])


def test_synthetic_universe_is_a_function_of_its_keys():
    from modules.world import universe as U

    uni = U.Universe(["genre:pop", "theme:christmas"], [(), ("christmas", "snow")])
    keys = U.make_keys(np.array([0, 0, 1, 1]), np.array([0, 5, 0, 10**9]))
    tracks = [uni.track(int(k)) for k in keys]
    again = U.Universe(["genre:pop", "theme:christmas"], [(), ("christmas", "snow")], cache_size=1)
    assert tracks == [again.track(int(k)) for k in keys]
    assert len({t["track_uri"] for t in tracks}) == 4
    assert all(TRACK_URI.match(t["track_uri"]) for t in tracks)
    # the vectorized codes agree with the names: same artist code <=> same artist URI
    artist, album = U.codes(keys)
    many = U.make_keys(np.zeros(400, np.int64), np.arange(400))
    a, b = U.codes(many)
    uris = [uni.track(int(k))["artist_uri"] for k in many]
    assert len(set(a.tolist())) == len(set(uris)) == len(set(zip(a.tolist(), uris))) < 400
    assert len(set(b.tolist())) == len({uni.track(int(k))["album_uri"] for k in many})
    assert (artist >= U.SYNTHETIC).all() and (album >= U.SYNTHETIC).all()


def test_themes_say_themselves_in_titles_and_tracks(mpd_playlists):
    from modules.world.themes import THEMES

    titles = [p["name"].lower() for p in mpd_playlists]
    for kind in ("holiday", "decade", "event"):
        words = {w for th in THEMES if th.kind == kind for w in th.titles}
        assert sum(t in words for t in titles) > 20, kind
    xmas = re.compile(r"christmas|xmas|santa|jingle|sleigh|mistletoe|snow|noel", re.IGNORECASE)

    def share(p):
        return np.mean([bool(xmas.search(t["track_name"] + " " + t["album_name"])) for t in p["tracks"]])

    is_xmas = [("christmas" in t or "xmas" in t) for t in titles]
    inside = [share(p) for p, x in zip(mpd_playlists, is_xmas) if x]
    outside = [share(p) for p, x in zip(mpd_playlists, is_xmas) if not x]
    assert len(inside) >= 10
    assert np.mean(inside) > 0.2 and np.mean(inside) > 8 * np.mean(outside)


def test_mpd_shape_has_runs_and_a_steep_head(mpd_playlists):
    same = [a["artist_uri"] == b["artist_uri"] for p in mpd_playlists for a, b in zip(p["tracks"], p["tracks"][1:])]
    assert np.mean(same) > 0.12
    counts = Counter(t["track_uri"] for p in mpd_playlists for t in p["tracks"])
    assert max(counts.values()) / len(mpd_playlists) > 0.025  # MPD: its top track is in 4.7 % of playlists


def test_mpd_generation_memory_does_not_grow_with_playlists(catalog):
    """The generator keeps no per-playlist state: the peak while writing 400 playlists is about the peak while
    writing 100 (the universe's caches are bounded; here small, so that they fill up at once)."""
    import tracemalloc

    from modules.world import MPDWorld

    world = MPDWorld(catalog, seed=0, cache_size=300)

    def peak(first, count):
        tracemalloc.start()
        for a in range(first, first + count, 50):
            world.slice_bytes(a, 50)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    world.slice_bytes(0, 50)  # clusters built once, caches full
    small, large = peak(1000, 100), peak(2000, 400)
    assert large < 1.3 * small, (small, large)
    assert world.universe.fragment.cache_info().currsize <= 300


def test_stats_streamed_from_slices_match_the_store(world_dir, store):
    from modules.slice_stats import slice_stats

    streamed, stored = slice_stats(world_dir), store.stats()
    assert streamed.keys() == stored.keys()
    for key in streamed:
        if key == "top_titles":
            assert sorted(streamed[key].values()) == sorted(stored[key].values())
        else:
            assert streamed[key] == pytest.approx(stored[key]), key
    assert 0 < streamed["top_track_share"] <= 1 and 0 < streamed["share_tracks_seen_once"] < 1


def test_stats_cli_streams_slices_and_reports_one_offs_and_the_top_track(mpd_dir, capsys):
    from modules.cli import main

    assert main(["stats", str(mpd_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert data["playlists"] == MPD_SMALL
    assert data["share_tracks_seen_once"] > 0.6 and data["top_track_share"] > 0.025
