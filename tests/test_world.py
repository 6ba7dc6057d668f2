"""The playlist world: MPD constraints, determinism, and structure the models can find."""

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
    """``_taste`` (for benchmarks/world_oracle.py) is the draw behind the tracks: the oracle's slot probability
    ranks a playlist's own tracks near the top of the catalog; the slice bytes never carry it."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from world_oracle import slot_probability

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
