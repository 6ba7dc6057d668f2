"""``ingest --engine spark``: the local ingest's store, table for table, and its errors, message for message."""

from __future__ import annotations

import copy

import orjson
import pyarrow.parquet as pq
import pytest

from modules.errors import MPDFormatError
from modules.mpd import write_slice
from modules.store import MANIFEST, PlaylistStore, ingest
from tests.spark_support import spark_or_skip

T = "spotify:track:"
TABLES = ("playlists", "playlist_tracks", "tracks")
TIMING = ("seconds", "mb_per_s", "engine")


@pytest.fixture(scope="module")
def spark():
    session = spark_or_skip()
    yield session
    session.stop()


def track(i: int, **changes) -> dict:
    return {"pos": i, "artist_name": f"Artist {i % 3}", "track_uri": f"{T}{i:022d}",
            "artist_uri": f"spotify:artist:{i % 3:022d}", "track_name": f"Song {i}",
            "album_uri": f"spotify:album:{i % 2:022d}", "duration_ms": 200_000 + i, "album_name": f"Album {i % 2}",
            **changes}


def playlist(pid: int, tracks: list[dict], **changes) -> dict:
    return {"name": f"list {pid}", "collaborative": "false", "pid": pid, "modified_at": 1_500_000_000 + pid,
            "num_tracks": len(tracks), "num_albums": 1, "num_followers": 1, "num_edits": 2, "duration_ms": 1000,
            "num_artists": 1, "tracks": tracks, **changes}


def hand_made() -> list[list[dict]]:
    """Two slices with the cases the local ingest handles: an empty playlist, tracks without artist and album URIs
    (stand-ins), quoted numbers, a collaborative playlist, a track seen again under another name (the first kept)."""
    bare = {k: v for k, v in track(7).items() if k not in ("artist_uri", "album_uri")}
    first = [playlist(0, [track(1), track(2), track(3)]), playlist(1, []),
             playlist(2, [bare, track(1)], num_followers="5", collaborative="true", description="quiet")]
    second = [playlist(3, [track(2, track_name="Renamed"), track(4), track(4)]),
              playlist(4, [track(5, duration_ms=1000.0)], num_albums=None)]
    return [first, second]


def write(folder, slices) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for playlists in slices:
        write_slice(folder / f"mpd.slice.{start}-{start + 999}.json", {"generated_on": "test"}, playlists)
        start += 1000


def assert_same_store(local, spark_store) -> None:
    for name in TABLES:
        a, b = pq.read_table(local / f"{name}.parquet"), pq.read_table(spark_store / f"{name}.parquet")
        assert a.schema.equals(b.schema), name  # metadata aside
        assert a.equals(b), name
    ma, mb = (orjson.loads((p / MANIFEST).read_bytes()) for p in (local, spark_store))
    assert mb["engine"] == "spark"
    assert {k: v for k, v in ma.items() if k not in TIMING} == {k: v for k, v in mb.items() if k not in TIMING}


def test_spark_ingest_equals_local_on_the_world(spark, world_dir, store, tmp_path):
    from modules.spark.ingest import ingest_spark

    summary = ingest_spark(world_dir, tmp_path / "store", spark=spark)
    assert summary["playlists"] == 400
    assert_same_store(store.path, tmp_path / "store")
    assert PlaylistStore(tmp_path / "store").interactions().matrix.nnz == store.interactions().matrix.nnz


def test_spark_ingest_equals_local_on_edge_cases_through_the_cli(spark, tmp_path):
    from modules.cli import main

    write(tmp_path / "mpd", hand_made())
    ingest(tmp_path / "mpd", tmp_path / "local", show_progress=False)
    assert main(["ingest", str(tmp_path / "mpd"), "--out", str(tmp_path / "spark"), "--spark", "local[2]"]) == 0
    assert_same_store(tmp_path / "local", tmp_path / "spark")
    tracks = pq.read_table(tmp_path / "spark" / "tracks.parquet").to_pylist()
    assert next(t for t in tracks if t["track_uri"] == f"{T}{2:022d}")["track_name"] == "Song 2"


def broken(case: str) -> list[list[dict]]:
    slices = copy.deepcopy(hand_made())
    if case == "track":
        slices[1][1]["tracks"][0]["track_uri"] = "spotify:track:short"
        slices[1].append({**playlist(5, [track(6)]), "pid": "x"})  # a later problem in the same slice: not the first
    elif case == "duplicate":
        slices[1][1]["pid"] = 2
    return slices


@pytest.mark.parametrize("case", ["track", pytest.param("duplicate", marks=pytest.mark.slow),
                                  pytest.param("truncated", marks=pytest.mark.slow)])
def test_a_bad_slice_gives_the_local_message_and_writes_nothing(spark, tmp_path, case):
    from modules.spark.ingest import ingest_spark

    write(tmp_path / "mpd", broken(case))
    if case == "truncated":
        second = tmp_path / "mpd" / "mpd.slice.1000-1999.json"
        second.write_bytes(second.read_bytes()[:-40])
    with pytest.raises(MPDFormatError) as local:
        ingest(tmp_path / "mpd", tmp_path / "local", show_progress=False)
    write(tmp_path / "old", [[playlist(9, [track(9)])]])
    ingest(tmp_path / "old", tmp_path / "out", show_progress=False)  # a store that must survive the failed run
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    with pytest.raises(MPDFormatError) as spark_err:
        ingest_spark(tmp_path / "mpd", tmp_path / "out", spark=spark)
    assert str(spark_err.value) == str(local.value)
    assert "mpd.slice.1000-1999.json" in str(spark_err.value)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
