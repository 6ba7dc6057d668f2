"""Playlists and tracks for the app: find a playlist by title, its seed tracks, track references pasted as URIs or
Spotify links, how much the model knows about the seeds, the export as a challenge line or CSV, album art, and
track search over the bundle and the song feature store."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from modules.errors import ExploreError

log = logging.getLogger(__name__)

_TRACK_REF = re.compile(r"(?:spotify:track:|(?:https?://)?open\.spotify\.com/(?:intl-[\w-]+/)?(?:embed/)?track/)"
                        r"([0-9A-Za-z]{22})(?:[?#].*)?")
_BARE_ID = re.compile(r"([0-9A-Za-z]{22})")
RESULT_EXPORT_COLUMNS = ("rank", "track_uri", "track_name", "artist_name", "score", "retrieval", "rules", "content",
                         "explanation")


def parse_track_refs(text: str) -> tuple[list[str], list[str]]:
    """Track URIs from pasted text: ``spotify:track:ID``, ``https://open.spotify.com/track/ID?si=…`` links or bare
    22-character IDs, separated by spaces, commas or new lines; order kept, duplicates dropped.

    Returns the URIs and the pieces that are none of these (an album link, a typo), so the caller can say so.
    """
    uris, rejected = [], []
    for token in re.split(r"[\s,;]+", str(text or "").strip()):
        if not token:
            continue
        m = _TRACK_REF.fullmatch(token) or _BARE_ID.fullmatch(token)
        if m:
            uris.append(f"spotify:track:{m.group(1)}")
        else:
            rejected.append(token)
    return list(dict.fromkeys(uris)), rejected


def track_id(uri: str) -> str | None:
    """The 22-character Spotify ID of a track URI (``None`` for anything else, e.g. a derived stand-in)."""
    m = re.fullmatch(r"spotify:track:([0-9A-Za-z]{22})", str(uri))
    return m.group(1) if m else None


def embed_url(uri: str) -> str | None:
    """The Spotify embed player URL of a track (``None`` when the URI is not a real Spotify track URI)."""
    tid = track_id(uri)
    return f"https://open.spotify.com/embed/track/{tid}" if tid else None


def search_playlists(playlists: pd.DataFrame, query: str, limit: int = 50) -> pd.DataFrame:
    """Playlists whose title contains every word of ``query`` (case-insensitive), longest first, then by pid.

    An empty query lists the longest playlists, so a picker always has something to show.
    """
    if limit < 1:
        raise ExploreError(f"limit must be a positive integer (got {limit!r}).")
    words = [w for w in str(query or "").lower().split() if w]
    names = playlists["name"].fillna("").str.lower()
    mask = np.ones(len(playlists), bool)
    for w in words:
        mask &= names.str.contains(w, regex=False).to_numpy()
    cols = [c for c in ("pid", "name", "num_tracks", "num_artists", "num_followers") if c in playlists.columns]
    found = playlists.loc[mask, cols]
    return found.sort_values(["num_tracks", "pid"], ascending=[False, True]).head(limit).reset_index(drop=True)


def playlist_tracks(store, pid: int) -> list[str]:
    """The track URIs of playlist ``pid`` of a ``PlaylistStore``, in playlist order."""
    entries = store.playlist_tracks
    rows = entries.loc[entries["pid"] == int(pid)]
    if rows.empty and not (store.playlists["pid"] == int(pid)).any():
        raise ExploreError(f"no playlist with pid {pid} in {store.path}.")
    return rows.sort_values("pos")["track_uri"].tolist()


def seed_status(rec, seeds: Sequence[str]) -> dict:
    """How much the model knows about ``seeds``: in the training playlists (``known``), only through audio
    features and tags (``content_only``), or not at all (``unknown``). The app explains results with it."""
    content = rec.content_model
    known, content_only, unknown = [], [], []
    for s in dict.fromkeys(seeds):
        if rec.is_training_track(s):
            known.append(s)
        elif content is not None and s in content.index_:
            content_only.append(s)
        else:
            unknown.append(s)
    return {"known": known, "content_only": content_only, "unknown": unknown}


def status_note(status: dict, title: str | None) -> str | None:
    """A sentence for the user when the seeds alone cannot drive the results (``None`` when all is normal)."""
    n_known, n_content, n_unknown = (len(status[k]) for k in ("known", "content_only", "unknown"))
    total = n_known + n_content + n_unknown
    if total == 0 or n_known:
        return None
    basis = []
    if n_content:
        basis.append("their audio features and tags")
    if title:
        basis.append(f"the title {title!r}")
    why = " and ".join(basis) if basis else "popularity (add a title or tracks the model knows)"
    return (f"None of the {total} tracks appears in the training playlists, so the collaborative parts (two-tower "
            f"seeds, rules) have nothing to go on: these results come from {why}.")


def challenge_line(pid: int | str, uris: Sequence[str]) -> str:
    """One line of a RecSys Challenge 2018 submission: ``pid,uri_1,…,uri_k`` (no header)."""
    uris = list(uris)
    if len(set(uris)) != len(uris):
        raise ExploreError("a submission line cannot repeat a track.")
    return ",".join([str(pid), *uris])


def results_csv(frame: pd.DataFrame) -> bytes:
    """The results table as UTF-8 CSV (the columns of ``Recommender.recommend`` that are present)."""
    cols = [c for c in RESULT_EXPORT_COLUMNS if c in frame.columns]
    buf = io.StringIO()
    frame[cols].to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


def album_art(uris: Sequence[str], store_path: str | Path | None) -> dict[str, str | None]:
    """Album-art URL per track from the feature store's cache (``features fetch``); ``None`` where unknown.

    A missing or unreadable store gives all ``None`` (the app shows placeholders), never an error.
    """
    out: dict[str, str | None] = dict.fromkeys(uris)
    if not store_path or not Path(store_path).is_file():
        return out
    from modules.features import FeatureStore, FeatureStoreError

    try:
        rows = FeatureStore(store_path).get_many(list(out), ["album_art_url"])
    except (FeatureStoreError, OSError) as err:
        log.warning("album art unavailable from %s: %s", store_path, err)
        return out
    for uri, url in zip(rows["track_uri"], rows["album_art_url"]):
        out[uri] = url if isinstance(url, str) and url.startswith("https://") else None
    return out


def search_tracks(rec, query: str, limit: int = 10, store_path: str | Path | None = None) -> pd.DataFrame:
    """Tracks matching every word of ``query`` by name or artist: the bundle's own tracks first (the model knows
    them from playlists), then catalog tracks from the song feature store at ``store_path`` when there is one.

    Returns ``track_uri``, ``track_name``, ``artist_name`` and ``in_model`` (bool).
    """
    cols = ["track_uri", "track_name", "artist_name"]
    hits = rec.search(query, limit=limit)[cols].assign(in_model=True)
    if len(hits) < limit and store_path and Path(store_path).is_file():
        from modules.features import FeatureStore, FeatureStoreError

        try:
            more = FeatureStore(store_path).search(query, limit=limit)
        except (FeatureStoreError, OSError) as err:
            log.warning("catalog search unavailable from %s: %s", store_path, err)
        else:
            more = more.loc[~more["track_uri"].isin(set(hits["track_uri"])), cols].assign(in_model=False)
            hits = pd.concat([hits, more], ignore_index=True)
    return hits.head(limit).reset_index(drop=True)
