"""Read a track catalog (the Spotify Tracks schema) into one row per track.

The shipped catalog (``data/spotify_tracks/``, ODbL) lists a track once per genre it belongs to; both the
playlist world and the feature store want one row per track with all its genres, so that folding happens
here, once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from modules.errors import CatalogError
from modules.mpd import derive_uri
from modules.paths import DEFAULT_CATALOG

log = logging.getLogger(__name__)

AUDIO_FEATURES = (
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "time_signature",
)
REQUIRED_COLUMNS = ("track_id", "artists", "track_name")


def read_catalog(path: str | Path | None = None, column_map: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read a catalog file (Parquet or CSV) into one row per track.

    Parameters
    ----------
    path : path, default=None
        A Parquet or CSV file with the Spotify Tracks schema (``track_id``, ``artists`` separated by ``;``,
        ``album_name``, ``track_name``, ``popularity``, ``duration_ms``, the audio features,
        ``track_genre``). ``None`` reads the shipped catalog.
    column_map : mapping, default=None
        Renames applied first, ``{their_column: our_column}``, for catalogs with another schema. A
        ``track_uri`` column may stand in for ``track_id``.

    Returns
    -------
    DataFrame
        One row per track, sorted by ``track_uri``: ``track_uri``, ``track_id``, ``track_name``,
        ``artist_name`` (the first credited artist, as in the MPD), ``artists``, ``album_name``,
        ``artist_uri`` and ``album_uri`` (derived from names, stable), ``genres`` (sorted list),
        ``popularity``, ``duration_ms``, ``explicit`` and the audio features present in the file.
    """
    path = Path(path) if path is not None else DEFAULT_CATALOG
    if not path.exists():
        raise CatalogError(f"Catalog file {path} does not exist. Pass a Parquet or CSV file of tracks.")
    if path.suffix.lower() in (".parquet", ".pq"):
        raw = pd.read_parquet(path)
    elif path.suffix.lower() in (".csv", ".tsv", ".gz"):
        raw = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    else:
        raise CatalogError(f"Catalog file {path} must be .parquet or .csv (got {path.suffix!r}).")
    if column_map:
        raw = raw.rename(columns=dict(column_map))
    if "track_id" not in raw.columns and "track_uri" in raw.columns:
        raw["track_id"] = raw["track_uri"].astype(str).str.rsplit(":", n=1).str[-1]
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise CatalogError(
            f"Catalog {path} lacks columns {missing} (has {sorted(map(str, raw.columns))}). "
            "Map yours with a column mapping, e.g. --column-map id=track_id,artist=artists."
        )
    raw = raw.loc[raw["track_id"].notna() & raw["artists"].notna() & raw["track_name"].notna()].copy()
    dropped = raw.shape[0]
    raw = raw.loc[raw["track_id"].astype(str).str.fullmatch(r"[0-9A-Za-z]{22}")]
    if raw.shape[0] < dropped:
        log.warning("catalog %s: %d rows with a malformed track_id skipped", path, dropped - raw.shape[0])
    if "album_name" not in raw.columns:
        raw["album_name"] = raw["track_name"]
    raw["album_name"] = raw["album_name"].fillna(raw["track_name"]).astype(str)
    if "track_genre" in raw.columns:
        pairs = raw.loc[raw["track_genre"].notna(), ["track_id", "track_genre"]].astype(str)
        pairs = pairs.drop_duplicates().sort_values(["track_id", "track_genre"], kind="stable")
        genres = pd.Series(
            {tid: list(g) for tid, g in zip(*_runs(pairs["track_id"].to_numpy(), pairs["track_genre"].to_numpy()))},
            name="genres",
        )
    else:
        genres = pd.Series([[]] * raw["track_id"].nunique(), index=sorted(raw["track_id"].unique()), name="genres")
    first = raw.sort_values("track_id", kind="stable").drop_duplicates("track_id").set_index("track_id")
    out = first.drop(columns=[c for c in ("track_genre", "track_uri") if c in first.columns]).join(genres)
    out = out.reset_index()
    out["artists"] = out["artists"].astype(str)
    out["artist_name"] = out["artists"].str.split(";").str[0].str.strip()
    out["track_name"] = out["track_name"].astype(str)
    out["track_uri"] = "spotify:track:" + out["track_id"]
    out["artist_uri"] = [derive_uri("artist", a) for a in out["artist_name"]]
    out["album_uri"] = [derive_uri("album", a, b) for a, b in zip(out["artist_name"], out["album_name"])]
    for col, default in (("popularity", 0), ("duration_ms", 0)):
        if col not in out.columns:
            out[col] = default
        out[col] = out[col].fillna(default).astype(np.int64)
    lead = ["track_uri", "track_id", "track_name", "artist_name", "artists", "album_name", "artist_uri",
            "album_uri", "genres", "popularity", "duration_ms"]
    rest = [c for c in out.columns if c not in lead]
    out = out[lead + rest].sort_values("track_uri", kind="stable").reset_index(drop=True)
    log.info("catalog %s: %d tracks, %d artists", path.name, len(out), out["artist_name"].nunique())
    return out


def _runs(keys: np.ndarray, values: np.ndarray):
    """Group a key-sorted pair of arrays: ``(unique keys, [values of each key])``."""
    if len(keys) == 0:
        return [], []
    cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    return keys[np.concatenate([[0], cut])].tolist(), [v.tolist() for v in np.split(values, cut)]
