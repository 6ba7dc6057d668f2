"""The Spotify client against a real HTTP server on loopback (tests/fake_spotify.py), and offline."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import time

import pytest
from fake_spotify import FakeSpotify

from modules.features import FeatureStore
from modules.paths import REPO_ROOT
from modules.spotify import (
    Credentials,
    SpotifyClient,
    SpotifyConfig,
    is_placeholder,
    load_credentials,
    placeholder_art,
)

CLIENT_ID = "fake-client-id-0123"
SECRET = "s3cret-VALUE-never-logged-42"
UNKNOWN = "spotify:track:" + "Z" * 22


@pytest.fixture(scope="module")
def tracks(catalog):
    """130 catalog tracks: their URIs, and the fake's view of them (names differ from the catalog's)."""
    sample = catalog.iloc[::600].head(130)
    uris = sample["track_uri"].tolist()
    fake = {u.rsplit(":", 1)[1]: {"name": f"Live {n}", "artists": [a, "Guest"], "album": f"Album {n}",
                                  "popularity": 60}
            for u, n, a in zip(uris, sample["track_name"], sample["artist_name"], strict=True)}
    return uris, fake


@pytest.fixture
def store(tmp_path, catalog, tracks):
    fs = FeatureStore(tmp_path / "f.sqlite", create=True)
    fs.import_catalog(catalog.loc[catalog["track_uri"].isin(tracks[0])])
    return fs


@pytest.fixture
def fake(tracks):
    with FakeSpotify(tracks[1], client_id=CLIENT_ID, client_secret=SECRET) as server:
        yield server


def config_for(fake, **kw) -> SpotifyConfig:
    return SpotifyConfig(api_base=fake.url, token_url=fake.url + "/api/token", **kw)


def client_for(fake, store, **kw) -> SpotifyClient:
    return SpotifyClient(store, credentials=Credentials(CLIENT_ID, SECRET, "test"), config=config_for(fake, **kw))


def test_offline_without_credentials(store, tracks, caplog):
    caplog.set_level(logging.INFO)
    client = SpotifyClient(store, credentials=None)
    assert not client.online and client.status()["reason"] == "no Spotify credentials"
    got = client.tracks([tracks[0][0], UNKNOWN])
    assert got["source"].tolist() == ["catalog", "placeholder"]
    assert got["found"].tolist() == [True, False]
    assert all(is_placeholder(u) and u.startswith("data:image/svg+xml") for u in got["album_art_url"])
    assert got["track_name"].iloc[0] == store.get(tracks[0][0])["track_name"]
    assert client.search(store.get(tracks[0][0])["artist_name"])["track_uri"].tolist()[:1] != []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_placeholder_art_is_stable_and_offline():
    a = placeholder_art("Abbey Road")
    assert a == placeholder_art("Abbey Road") != placeholder_art("Revolver")
    assert a.startswith("data:image/svg+xml;utf8,%3Csvg") and "AR" in a  # initials, no external resource


def test_credentials_sources(tmp_path, monkeypatch):
    assert load_credentials(env={}, search_dirs=[tmp_path], use_streamlit=False) is None
    got = load_credentials(env={"SPOTIFY_CLIENT_ID": "a", "SPOTIFY_CLIENT_SECRET": "b"}, search_dirs=[tmp_path])
    assert (got.client_id, got.client_secret, got.origin) == ("a", "b", "environment")
    got = load_credentials(env={"SPOTIPY_CLIENT_ID": "c", "SPOTIPY_CLIENT_SECRET": "d"}, search_dirs=[tmp_path])
    assert (got.client_id, got.client_secret) == ("c", "d")
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('[spotify]\nclient_id = "st-id"\nclient_secret = "st-s"\n')
    got = load_credentials(env={}, search_dirs=[tmp_path], use_streamlit=False)
    assert (got.client_id, got.client_secret) == ("st-id", "st-s") and "secrets.toml" in got.origin
    (tmp_path / ".env").write_text("# comment\nexport SPOTIFY_CLIENT_ID='env-id'\nSPOTIFY_CLIENT_SECRET=env-s # x\n")
    got = load_credentials(env={}, search_dirs=[tmp_path], use_streamlit=False)  # .env comes before secrets
    assert (got.client_id, got.client_secret) == ("env-id", "env-s")
    assert "env-s" not in repr(got) and "env-s" not in str(got) and "hidden" in repr(got)


def test_tracks_batched_cached_and_ttl(fake, store, tracks):
    uris = tracks[0]
    client = client_for(fake, store, ttl=3600)
    got = client.tracks([*uris, UNKNOWN])
    assert fake.ids_per_call() == [50, 50, 31]  # 50 per call
    assert (got["source"].iloc[:-1] == "spotify").all() and got["source"].iloc[-1] == "placeholder"
    assert got["track_name"].str.startswith("Live ").iloc[:-1].all()  # Spotify's names replace the catalog's
    assert got["album_art_url"].iloc[0].endswith("-300.jpg")  # the grid-sized image
    row = store.get(uris[0])
    assert row["album_art_url"] == got["album_art_url"].iloc[0] and row["energy"] == row["energy"]  # features kept
    calls = fake.count("/v1/tracks")
    again = client.tracks(uris[:10])
    assert (again["source"] == "cache").all() and fake.count("/v1/tracks") == calls  # fresh cache: no call
    expired = client_for(fake, store, ttl=0.0)
    assert (expired.tracks(uris[:10])["source"] == "spotify").all() and fake.ids_per_call()[-1] == 10
    assert fake.tokens_issued == 2  # one token per client, kept in memory


def test_rate_limit_retry_after_is_honoured(fake, store, tracks, caplog):
    caplog.set_level(logging.INFO)
    fake.rate_limit, fake.retry_after = 1, "1"
    client = client_for(fake, store)
    t0 = time.monotonic()
    got = client.tracks(tracks[0][:5])
    assert time.monotonic() - t0 >= 0.95  # waited for Retry-After
    assert (got["source"] == "spotify").all() and fake.count("/v1/tracks") == 2
    assert "Retry-After" in caplog.text


def test_rate_limit_retries_are_bounded(fake, store, tracks):
    fake.rate_limit, fake.retry_after = 100, "1"
    client = client_for(fake, store, max_retries=1)
    got = client.tracks(tracks[0][:60])
    assert fake.count("/v1/tracks") == 2  # one try + one retry, then the remaining batch is not asked
    assert (got["source"] == "catalog").all() and not client.online
    fake.rate_limit, fake.retry_after = 1, "3600"  # longer than max_retry_after: degrade at once
    patient = client_for(fake, store)
    t0 = time.monotonic()
    assert (patient.tracks(tracks[0][:3])["source"] == "catalog").all()
    assert time.monotonic() - t0 < 0.9


def test_5xx_and_timeouts_degrade_to_cache(fake, store, tracks, caplog):
    uris = tracks[0][:4]
    client_for(fake, store).tracks(uris[:2])  # cache two of them
    fake.fail = 1
    client = client_for(fake, store, ttl=0.0)  # everything stale: the client wants to refresh
    got = client.tracks(uris)
    assert got["source"].tolist() == ["stale-cache", "stale-cache", "catalog", "catalog"]
    assert not is_placeholder(got["album_art_url"].iloc[0]) and is_placeholder(got["album_art_url"].iloc[3])
    asked = fake.count("/v1/tracks")
    client.tracks(uris)  # cooling down: the API is not asked again
    assert fake.count("/v1/tracks") == asked and "HTTP 503" in client.status()["reason"] + caplog.text
    fake.delay = 1.5
    slow = client_for(fake, store, ttl=0.0, timeout=0.3)
    t0 = time.monotonic()
    got = slow.tracks(uris)
    assert time.monotonic() - t0 < 1.4 and got["source"].tolist()[:2] == ["stale-cache", "stale-cache"]
    assert "ConnectTimeout" in caplog.text or "ReadTimeout" in caplog.text or "Timeout" in caplog.text


def test_audio_features_403_marks_unavailable_and_logs_once(fake, store, tracks, caplog):
    caplog.set_level(logging.INFO)
    off = client_for(fake, store)  # disabled in config (the default): never asked
    assert off.audio_features([UNKNOWN])["found"].tolist() == [False] and fake.count("/v1/audio-features") == 0
    client = client_for(fake, store, audio_features=True)
    got = client.audio_features([tracks[0][0], UNKNOWN])
    assert got["found"].tolist() == [True, False]  # the stored one comes from the catalog
    assert fake.count("/v1/audio-features") == 1 and not client.audio_features_available
    client.audio_features([UNKNOWN, "spotify:track:" + "Y" * 22])
    assert fake.count("/v1/audio-features") == 1  # not asked again in this run
    lines = [r for r in caplog.records if "audio-features" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "2024-11-27" in lines[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_search_online_then_offline(fake, store, tracks):
    client = client_for(fake, store)
    got = client.search("live", limit=5)
    assert len(got) == 5 and (got["source"] == "spotify").all() and got["track_name"].str.startswith("Live").all()
    assert fake.count("/v1/search") == 1
    assert store.get(got["track_uri"].iloc[0])["album_art_url"] == got["album_art_url"].iloc[0]  # cached
    fake.fail = 1
    fallback = client.search("live", limit=5)  # 503: the store answers (it has Spotify's names now)
    assert len(fallback) > 0 and set(fallback["source"]) <= {"cache", "stale-cache", "catalog"}


def test_bad_credentials_go_offline_quietly(fake, store, tracks):
    client = SpotifyClient(store, credentials=Credentials(CLIENT_ID, "wrong-secret", "test"), config=config_for(fake))
    got = client.tracks(tracks[0][:3])
    assert (got["source"] == "catalog").all() and not client.online
    assert "rejected" in client.status()["reason"]


def test_secrets_never_logged_or_printed(fake, store, tracks, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # everything, spotipy's and urllib3's debug lines included
    client = client_for(fake, store, audio_features=True)
    fake.rate_limit, fake.retry_after = 1, "0"
    client.tracks(tracks[0][:3])
    client.search("live")
    client.audio_features([UNKNOWN])
    fake.fail = 1
    client.tracks(tracks[0][:3], refresh=True)
    print(client, client.status(), client.credentials)
    SpotifyClient(store, credentials=Credentials(CLIENT_ID, SECRET + "x", "t"), config=config_for(fake)).tracks(
        tracks[0][:1])
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    out = capsys.readouterr()
    text = caplog.text + out.out + out.err
    assert "Sending POST request" in caplog.text  # spotipy's debug lines were captured
    for leak in (SECRET, basic, "fake-token-"):
        assert leak not in text


def test_cli_fetch_and_search_against_fake(fake, store, tracks, tmp_path):
    endpoints = {"SPOTIFY_API_BASE": fake.url, "SPOTIFY_TOKEN_URL": fake.url + "/api/token"}
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), SPOTIFY_CLIENT_ID=CLIENT_ID, SPOTIFY_CLIENT_SECRET=SECRET,
               **endpoints)
    store.close()
    out = subprocess.run([sys.executable, "-m", "modules", "-v", "features", "fetch", "--store", str(store.path),
                          "--audio-features", *tracks[0][:60], UNKNOWN], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "61 tracks: 1 placeholder, 60 spotify" in out.stdout and "online" in out.stdout
    assert SECRET not in out.stdout + out.stderr and "2024-11-27" in out.stderr
    assert fake.ids_per_call() == [50, 11] and fake.count("/v1/audio-features") == 1
    assert not (tmp_path / ".cache").exists()  # spotipy's token file is never written
    offline = dict(os.environ, PYTHONPATH=str(REPO_ROOT), SPOTIFY_CLIENT_ID="", SPOTIFY_CLIENT_SECRET="",
                   SPOTIPY_CLIENT_ID="", SPOTIPY_CLIENT_SECRET="", **endpoints)
    out = subprocess.run([sys.executable, "-m", "modules", "features", "fetch", "--store", str(store.path),
                          tracks[0][100]], capture_output=True, text=True, env=offline, cwd=tmp_path)
    assert out.returncode == 0 and "1 catalog" in out.stdout and "offline" in out.stdout
