"""The feature store: import (idempotent, all-or-nothing even when killed), lookups in order, concurrency."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from modules.cli.features import parse_column_map
from modules.errors import FeatureStoreError
from modules.features import COLUMNS, FEATURE_COLUMNS, FeatureStore

UNKNOWN = "spotify:track:" + "Z" * 22


@pytest.fixture(scope="module")
def small_catalog(catalog):
    """300 catalog tracks, as read_catalog returns them."""
    return catalog.iloc[::300].reset_index(drop=True).copy()


@pytest.fixture(scope="module")
def full_store(tmp_path_factory, catalog):
    fs = FeatureStore(tmp_path_factory.mktemp("fs") / "features.sqlite", create=True)
    fs.import_catalog(catalog)
    return fs


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "modules", *args], capture_output=True, text=True, env=env)


def test_get_many_order_missing_and_values(full_store, catalog):
    picks = catalog.iloc[[5, 17, 5, 40000]]
    uris = [picks["track_uri"].iloc[0], UNKNOWN, *picks["track_uri"].iloc[1:].tolist(), "not a uri"]
    got = full_store.get_many(uris)
    assert got["track_uri"].tolist() == uris
    assert got["found"].tolist() == [True, False, True, True, True, False]
    assert list(got.columns) == ["track_uri", "found", *COLUMNS[1:]]
    want = picks.iloc[0]
    row = got.iloc[0]
    assert row["track_name"] == want["track_name"] and row["artists"] == want["artists"]
    assert row["genres"] == list(want["genres"])
    for c in FEATURE_COLUMNS:
        assert row[c] == pytest.approx(float(want[c]))
    assert row["popularity"] == want["popularity"]
    assert got.iloc[1][list(FEATURE_COLUMNS)].isna().all() and got.iloc[1]["genres"] == []
    # a subset of columns, and an empty request
    sub = full_store.get_many(uris[:2], columns=["energy"])
    assert list(sub.columns) == ["track_uri", "found", "energy"]
    assert len(full_store.get_many([])) == 0
    with pytest.raises(FeatureStoreError, match="unknown feature-store columns"):
        full_store.get_many(uris, columns=["energyy"])
    with pytest.raises(TypeError, match="not one string"):
        full_store.get_many(uris[0])


def test_row_cache_paths_agree(full_store, catalog):
    """Warm, cold, cache off and cache overflow give the same frame."""
    uris = catalog["track_uri"].iloc[::997].tolist() + [UNKNOWN]
    reference = FeatureStore(full_store.path, cache_rows=0).get_many(uris)
    small = FeatureStore(full_store.path, cache_rows=30)
    for store in (full_store, full_store, small, small):
        pd.testing.assert_frame_equal(store.get_many(uris), reference)
    pd.testing.assert_frame_equal(small.get_many(uris[:20]), reference.iloc[:20])
    pd.testing.assert_frame_equal(small.get_many(uris[10:25]), reference.iloc[10:25].reset_index(drop=True))


def test_import_idempotent_and_upsert(tmp_path, small_catalog):
    fs = FeatureStore(tmp_path / "f.sqlite", create=True)
    first = fs.import_catalog(small_catalog, source="catalog:test")
    assert first["inserted"] == first["total"] == len(small_catalog) and first["unchanged"] == 0
    before = fs.read_all()
    again = fs.import_catalog(small_catalog, source="catalog:test")
    assert again["inserted"] == again["updated"] == 0 and again["unchanged"] == len(small_catalog)
    pd.testing.assert_frame_equal(before, fs.read_all())  # fetched_at included: nothing was touched
    # cached Spotify art survives a re-import that changes a value
    uri = small_catalog["track_uri"].iloc[3]
    fs.upsert_metadata([{"track_uri": uri, "album_art_url": "https://img/x.jpg"}], fetched_at=1.0)
    changed = small_catalog.copy()
    changed.loc[3, "energy"] = 0.123
    third = fs.import_catalog(changed, source="catalog:test")
    assert third["updated"] == 1 and third["inserted"] == 0
    row = fs.get(uri)
    assert row["energy"] == pytest.approx(0.123) and row["album_art_url"] == "https://img/x.jpg"
    assert row["meta_fetched_at"] == 1.0


def test_metadata_only_rows_and_search(tmp_path, small_catalog):
    fs = FeatureStore(tmp_path / "f.sqlite", create=True)
    fs.import_catalog(small_catalog)
    fs.upsert_metadata([{"track_uri": UNKNOWN, "track_name": "Brand New 100%_Song", "artists": "Nobody",
                         "artist_name": "Nobody", "album_art_url": "https://img/y.jpg", "popularity": 3}])
    row = fs.get(UNKNOWN)
    assert row["source"] == "spotify" and np.isnan(row["energy"]) and row["genres"] == []
    assert fs.stats()["with_audio_features"] == len(small_catalog)
    assert fs.search("100%_song")["track_uri"].tolist() == [UNKNOWN]  # LIKE wildcards are escaped
    assert fs.search("100x_song").empty
    some = small_catalog.iloc[7]
    hits = fs.search(f"{some['track_name']} {some['artist_name']}".lower())
    assert some["track_uri"] in hits["track_uri"].tolist()


def test_reader_sees_other_connections_writes(tmp_path, small_catalog):
    path = tmp_path / "f.sqlite"
    writer = FeatureStore(path, create=True)
    writer.import_catalog(small_catalog)
    reader = FeatureStore(path)
    uri = small_catalog["track_uri"].iloc[0]
    assert reader.get(uri)["album_art_url"] is None  # now cached in the reader
    writer.upsert_metadata([{"track_uri": uri, "album_art_url": "https://img/z.jpg"}])
    assert reader.get(uri)["album_art_url"] == "https://img/z.jpg"  # the row cache was invalidated


def test_open_errors(tmp_path):
    with pytest.raises(FeatureStoreError, match="features import CATALOG --store"):
        FeatureStore(tmp_path / "missing.sqlite")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.close()
    with pytest.raises(FeatureStoreError, match="not a feature store"):
        FeatureStore(other)
    with pytest.raises(FeatureStoreError, match="not a feature store"):
        FeatureStore(other, create=True)  # never adds tables to someone else's database
    (tmp_path / "notes.txt").write_text("not a database at all, just some text " * 20)
    with pytest.raises(FeatureStoreError, match="is not an SQLite feature store"):
        FeatureStore(tmp_path / "notes.txt")
    with pytest.raises(FeatureStoreError, match="is a directory"):
        FeatureStore(tmp_path)


def test_parse_column_map():
    assert parse_column_map("id=track_id, artist=artists") == {"id": "track_id", "artist": "artists"}
    assert parse_column_map("") == {}
    with pytest.raises(ValueError, match="their_column=our_column"):
        parse_column_map("id:track_id")


def test_cli_import_with_column_map_and_get(tmp_path, small_catalog):
    raw = pd.DataFrame({"id": small_catalog["track_id"], "performer": small_catalog["artists"],
                        "title": small_catalog["track_name"], "album_name": small_catalog["album_name"],
                        "energy": small_catalog["energy"], "genre": [g[0] for g in small_catalog["genres"]]})
    csv = tmp_path / "other_schema.csv"
    raw.to_csv(csv, index=False)
    store = tmp_path / "f.sqlite"
    out = run_cli("features", "import", str(csv), "--store", str(store),
                  "--column-map", "id=track_id,performer=artists,title=track_name,genre=track_genre")
    assert out.returncode == 0, out.stderr
    assert f"{len(raw):,} new" in out.stdout
    out = run_cli("features", "import", str(csv), "--store", str(store))
    assert out.returncode == 2 and "lacks columns" in out.stderr and "Traceback" not in out.stderr
    uri = small_catalog["track_uri"].iloc[2]
    out = run_cli("features", "get", "--store", str(store), "--json", uri, UNKNOWN)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["found"] for r in rows] == [True, False]
    assert rows[0]["energy"] == pytest.approx(small_catalog["energy"].iloc[2])
    assert rows[0]["genres"] == [small_catalog["genres"].iloc[2][0]] and rows[1]["energy"] is None
    out = run_cli("features", "get", "--store", str(store), uri, UNKNOWN)
    assert small_catalog["track_name"].iloc[2] in out.stdout and "not in the store" in out.stdout


def test_killed_import_keeps_previous_content_and_rerun_completes(tmp_path, small_catalog, catalog):
    """A real import process is killed (SIGKILL) half-way through its transaction."""
    store = tmp_path / "f.sqlite"
    previous = small_catalog.copy()
    previous["energy"] = 0.5  # differs from the catalog, so the killed import had rows to update
    fs = FeatureStore(store, create=True)
    fs.import_catalog(previous, source="catalog:previous")
    snapshot = fs.read_all()
    fs.close()

    proc = subprocess.Popen([sys.executable, "-m", "modules", "-v", "features", "import", "--store", str(store)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "rows written (not committed yet)" in line or not line:
            break
    assert "rows written (not committed yet)" in seen, seen[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # it really died mid-way (a finished import would exit 0)

    after = FeatureStore(store)
    assert after._conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    pd.testing.assert_frame_equal(after.read_all(), snapshot)

    summary = after.import_catalog(catalog)  # the rerun completes
    assert summary["total"] == len(catalog)
    assert summary["inserted"] == len(catalog) - len(previous) and summary["updated"] == len(previous)
    assert after.get(small_catalog["track_uri"].iloc[0])["energy"] == pytest.approx(small_catalog["energy"].iloc[0])


READER = textwrap.dedent("""
    import sys, time
    from modules.features import FeatureStore
    fs = FeatureStore(sys.argv[1])
    uris = fs.read_all(["energy"])["track_uri"].tolist()
    n = 0
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        got = fs.get_many(uris[n % 50::50])
        assert got["found"].all()
        n += 1
    print(n)
""")


def test_readers_and_a_writer_do_not_lock(tmp_path, small_catalog, catalog):
    """Two reader processes look rows up while this process writes: no 'database is locked'."""
    store = tmp_path / "f.sqlite"
    fs = FeatureStore(store, create=True)
    fs.import_catalog(small_catalog)
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(store), "3"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    uris = small_catalog["track_uri"].tolist()
    writes = 0
    end = time.monotonic() + 3.5
    while time.monotonic() < end:
        fs.upsert_metadata([{"track_uri": u, "album_art_url": f"https://img/{writes}.jpg"} for u in uris[:50]])
        fs.import_catalog(catalog.iloc[: 2000 + 500 * (writes % 4)])  # long write transactions too
        writes += 1
    outs = [r.communicate(timeout=60) for r in readers]
    for r, (stdout, stderr) in zip(readers, outs, strict=True):
        assert r.returncode == 0, stderr[-2000:]
        assert "locked" not in stderr and int(stdout) > 0
    assert writes > 1


def test_threads_share_one_store(tmp_path, small_catalog, capsys):
    """The app serves sessions from threads: one FeatureStore, a connection per thread, a shared row cache."""
    import threading

    from modules.cli import main

    fs = FeatureStore(tmp_path / "f.sqlite", create=True)
    fs.import_catalog(small_catalog)
    uris = small_catalog["track_uri"].tolist()
    errors: list[BaseException] = []

    def read():
        try:
            for i in range(30):
                got = fs.get_many(uris[i % 7::7])
                assert got["found"].all() and got["track_uri"].tolist() == uris[i % 7::7]
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(10):
        fs.upsert_metadata([{"track_uri": uris[i], "album_art_url": f"https://img/{i}.jpg"}])
    for t in threads:
        t.join()
    assert errors == []
    assert fs.get(uris[9])["album_art_url"] == "https://img/9.jpg"
    assert main(["features", "stats", "--store", str(fs.path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(uris):,} tracks, {len(uris):,} with audio features, 10 with album art" in out
