"""Ingest: the store matches the slices; malformed input fails loudly and leaves nothing half-written."""

import logging

import numpy as np
import orjson
import pytest

from modules.errors import MPDFormatError, OutputError, StoreError
from modules.mpd import find_slices
from modules.store import PlaylistStore, ingest, open_store

URI = "spotify:track:" + "A" * 22


def _slice(playlists, info=None):
    return orjson.dumps({"info": info or {"slice": "0-999"}, "playlists": playlists})


def _pl(pid, uris, **extra):
    tracks = [{"pos": i, "artist_name": f"artist {i % 3}", "track_uri": u, "artist_uri": f"spotify:artist:{'B' * 22}",
               "track_name": f"t{i}", "album_uri": f"spotify:album:{'C' * 22}", "duration_ms": 1000,
               "album_name": "alb"} for i, u in enumerate(uris)]
    return {"name": f"pl {pid}", "collaborative": "false", "pid": pid, "modified_at": 0, "num_tracks": len(uris),
            "num_albums": 1, "num_followers": 1, "num_edits": 1, "duration_ms": 1000 * len(uris),
            "num_artists": 1, "tracks": tracks, **extra}


def _uri(i):
    return "spotify:track:" + f"{i:022d}"


def test_store_matches_slices(store, world_dir):
    pls = [p for f in find_slices(world_dir) for p in orjson.loads(f.read_bytes())["playlists"]]
    assert store.manifest["playlists"] == len(pls) == len(store.playlists)
    entries = store.playlist_tracks
    assert len(entries) == sum(len(p["tracks"]) for p in pls) == store.manifest["tracks"]
    first = pls[17]
    got = entries.loc[entries.pid == first["pid"]].sort_values("pos")["track_uri"].tolist()
    assert got == [t["track_uri"] for t in first["tracks"]]
    row = store.playlists.set_index("pid").loc[first["pid"]]
    assert row["name"] == first["name"] and row["num_tracks"] == len(first["tracks"])
    tracks = store.tracks.set_index("track_uri")
    t = first["tracks"][0]
    assert tracks.loc[t["track_uri"], "artist_name"] == t["artist_name"]
    assert tracks["count"].sum() == len(entries)
    assert store.manifest["unique_tracks"] == len({t["track_uri"] for p in pls for t in p["tracks"]})
    inter = store.interactions()
    assert inter.matrix.shape == (len(pls), len(tracks))
    assert inter.matrix.nnz == len(entries)  # world playlists have no repeated tracks
    i = int(np.searchsorted(inter.pids, first["pid"]))
    cols = inter.matrix[i].indices
    assert set(inter.track_uris[cols]) == {t["track_uri"] for t in first["tracks"]}


def test_single_slice_file_and_summary(tmp_path):
    f = tmp_path / "mpd.slice.0-999.json"
    f.write_bytes(_slice([_pl(0, [_uri(1), _uri(2)]), _pl(1, [_uri(2), _uri(3), _uri(4)])]))
    s = ingest(f, tmp_path / "store", show_progress=False)
    assert (s["playlists"], s["tracks"], s["unique_tracks"]) == (2, 5, 4)
    st = PlaylistStore(tmp_path / "store")
    assert st.tracks.set_index("track_uri").loc[_uri(2), "count"] == 2


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"{not json", "not valid JSON"),
    (lambda d: orjson.dumps({"info": {}}), "'playlists'"),
    (lambda d: _slice([_pl(0, [_uri(1)]), {**_pl(1, [_uri(1)]), "tracks": [{"pos": 0, "artist_name": "x"}]}]),
     "playlist #1, pid 1, field 'track_uri': track 0 has no track_uri"),
    (lambda d: _slice([_pl(0, [_uri(1)]), _pl(5, [_uri(2), "https://open.spotify.com/track/x"])]),
     "playlist #1, pid 5, field 'track_uri': track 1: 'https://open.spotify.com/track/x' is not a Spotify"),
    (lambda d: _slice([{"name": "x", "tracks": []}]), "playlist #0, field 'pid': missing"),
])
def test_malformed_slice_names_file_playlist_field_and_leaves_store(tmp_path, mutate, message):
    good = tmp_path / "good"
    good.mkdir()
    (good / "mpd.slice.0-999.json").write_bytes(_slice([_pl(0, [_uri(1), _uri(2)])]))
    out = tmp_path / "store"
    ingest(good, out, show_progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "mpd.slice.0-999.json").write_bytes(_slice([_pl(0, [_uri(1)])]))
    (bad / "mpd.slice.1000-1999.json").write_bytes(mutate(None))
    with pytest.raises(MPDFormatError) as err:
        ingest(bad, out, show_progress=False)
    assert "mpd.slice.1000-1999.json" in str(err.value) and message in str(err.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # previous store intact
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dir left
    with pytest.raises(MPDFormatError):
        ingest(bad, tmp_path / "new", show_progress=False)
    assert not (tmp_path / "new").exists()


def test_missing_artist_album_uris_are_derived_with_one_warning(tmp_path, caplog):
    import modules.mpd as mpd

    mpd._warned_derived = False
    pls = [_pl(i, [_uri(i), _uri(i + 1)]) for i in range(3)]
    for p in pls:
        for t in p["tracks"]:
            del t["artist_uri"], t["album_uri"]
    (tmp_path / "mpd.slice.0-999.json").write_bytes(_slice(pls))
    with caplog.at_level(logging.WARNING):
        ingest(tmp_path, tmp_path / "store", show_progress=False)
    warnings = [r for r in caplog.records if "stand-ins" in r.getMessage()]
    assert len(warnings) == 1
    tr = PlaylistStore(tmp_path / "store").tracks
    assert tr["artist_uri"].str.match(r"spotify:artist:[0-9A-Za-z]{22}$").all()
    # same names, same stand-in: artist 0 of every playlist is one artist
    assert tr.loc[tr.artist_name == "artist 0", "artist_uri"].nunique() == 1


def test_duplicate_pid_and_unsafe_out_are_refused(tmp_path):
    d = tmp_path / "mpd"
    d.mkdir()
    (d / "mpd.slice.0-999.json").write_bytes(_slice([_pl(0, [_uri(1)])]))
    (d / "mpd.slice.1000-1999.json").write_bytes(_slice([_pl(0, [_uri(2)])]))
    with pytest.raises(MPDFormatError, match="pid 0.*also in mpd.slice.0-999.json"):
        ingest(d, tmp_path / "s", show_progress=False)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    (d / "mpd.slice.1000-1999.json").unlink()
    with pytest.raises(OutputError, match="not a playlist store"):
        ingest(d, other, show_progress=False)
    assert (other / "keep.txt").read_text() == "mine"
    with pytest.raises(FileNotFoundError, match="no mpd.slice"):
        ingest(tmp_path / "notes", tmp_path / "s2", show_progress=False)


def test_open_store_accepts_slices_or_store(world_dir, store):
    assert open_store(store.path).fingerprint == store.fingerprint
    assert len(open_store(world_dir).playlists) == len(store.playlists)
    with pytest.raises(StoreError, match="python -m modules ingest"):
        PlaylistStore(world_dir)


def test_stats(store):
    s = store.stats()
    assert s["playlists"] == 400
    assert 50 < s["avg_playlist_length"] < 85
    assert 0 < s["share_tracks_seen_once"] < 1
    assert s["unique_tracks"] == len(store.tracks)


def test_compact_entries_are_the_stored_entries(store, world_dir):
    """The entries frame holds every playlist's tracks as the slices list them, in ids and codes, not strings:
    ``track_uri`` a categorical over the tracks table (codes = rows of ``tracks``), ``pid`` int32, ``pos`` int16."""
    import pandas as pd

    entries = store.playlist_tracks
    plain = pd.read_parquet(store.path / "playlist_tracks.parquet")  # the strings, as the file holds them
    assert entries["track_uri"].dtype == "category" and entries["pid"].dtype == np.int32
    assert entries["pos"].dtype == np.int16 and entries["track_uri"].cat.codes.dtype.itemsize <= 4
    assert (entries["pid"].to_numpy() == plain["pid"].to_numpy()).all()
    assert (entries["pos"].to_numpy() == plain["pos"].to_numpy()).all()
    assert entries["track_uri"].tolist() == plain["track_uri"].tolist()
    rows = entries["track_uri"].cat.codes.to_numpy()
    assert (store.tracks["track_uri"].to_numpy()[rows] == plain["track_uri"].to_numpy()).all()
    pls = [p for f in find_slices(world_dir) for p in orjson.loads(f.read_bytes())["playlists"]]
    by_pid = {int(pid): g["track_uri"].tolist() for pid, g in entries.groupby("pid", sort=False)}
    assert by_pid == {p["pid"]: [t["track_uri"] for t in p["tracks"]] for p in pls}
    # without the categories (one string per track, not per entry) an entry costs 10 bytes, a string column 56
    compact = entries.memory_usage(deep=True).sum() - entries["track_uri"].cat.categories.memory_usage(deep=True)
    assert compact <= 10 * len(entries) + 1000 < plain.memory_usage(deep=True).sum() / 4


def test_entries_widen_when_ids_do_not_fit_and_refuse_unknown_tracks(tmp_path, monkeypatch):
    """Read a bunch of row groups at a time, the columns widen for a pid beyond int32 or a position beyond int16;
    an entry whose track is not in the tracks table is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from modules import store as store_module

    monkeypatch.setattr(store_module, "ENTRY_BUNCH", 3)  # several bunches of row groups
    uris = [_uri(i) for i in range(6)]
    pids = [[7, 7, 8], [2**31 + 5] * 2, [9] * 4]
    pos = [[0, 1, 0], [0, 1], [0, 40000, 2, 3]]
    tracks = [[uris[5], uris[0], uris[5]], [uris[2], uris[3]], [uris[1], uris[4], uris[0], uris[1]]]
    path = tmp_path / "playlist_tracks.parquet"
    with pq.ParquetWriter(path, store_module.ENTRY_SCHEMA, use_dictionary=["track_uri"]) as w:
        for p, q, t in zip(pids, pos, tracks, strict=True):
            w.write_table(pa.table({"pid": p, "pos": q, "track_uri": t}, schema=store_module.ENTRY_SCHEMA))
    got = store_module.read_entries(path, pa.array(uris))
    assert got["pid"].dtype == np.int64 and got["pos"].dtype == np.int32
    assert got["pid"].tolist() == sum(pids, []) and got["pos"].tolist() == sum(pos, [])
    assert got["track_uri"].tolist() == sum(tracks, []) and got["track_uri"].cat.categories.tolist() == uris
    assert got["track_uri"].cat.codes.tolist() == [uris.index(u) for u in sum(tracks, [])]
    with pytest.raises(StoreError, match="missing from tracks.parquet"):
        store_module.read_entries(path, pa.array(uris[:5]))
    with pytest.raises(StoreError, match="twice"):
        store_module.read_entries(path, pa.array(uris + uris[:1]))
