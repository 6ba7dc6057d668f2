"""The item table: every known track as an integer item with its track/artist/album indices and audio features.

Items are what both towers read. Training tracks come first and are the candidates; tracks known only from the
feature table follow (they still give a seed meaning). Indices are those Keras ``StringLookup`` assigns (index 0
the mask, then hashed OOV buckets, then the vocabulary), so the exported SavedModel and training agree; audio
features are standardized on the training tracks, 0 where unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from modules.catalog import AUDIO_FEATURES
from modules.errors import InputError
from modules.two_tower.config import TwoTowerConfig

if TYPE_CHECKING:
    from modules.uri_pool import UriPool


@dataclass
class ItemTable:
    """Every known track as an integer item (0 = padding); the first ``n_candidates`` items are ranked."""

    uris: np.ndarray  # [n_items] str; item i + 1 is uris[i]
    n_candidates: int
    track: np.ndarray  # [n_items + 1] int32: track vocabulary index (OOV bucket when rare)
    track_oov: np.ndarray  # [n_items + 1] int32: the track's OOV bucket (for ID dropout)
    artist: np.ndarray
    album: np.ndarray
    features: np.ndarray  # [n_items + 1, F] float32, standardized, 0 where unknown
    has_features: np.ndarray  # [n_items + 1] bool
    track_vocab: list[str]
    artist_vocab: list[str]
    album_vocab: list[str]
    feature_columns: list[str]
    feature_mean: np.ndarray
    feature_std: np.ndarray

    @property
    def index(self) -> dict[str, int]:
        """Track URI -> item id (1-based), built on first use."""
        if not hasattr(self, "_index"):
            self._index = {u: i + 1 for i, u in enumerate(self.uris.tolist())}
        return self._index

    def share_uris(self, pool: UriPool) -> None:
        """Hold ``pool``'s strings for ``uris`` and ``track_vocab`` (``modules.uri_pool``: equal strings, so no
        item id changes); ``index``, built over the old ones, is built again on first use."""
        self.uris = pool.share(self.uris)
        self.__dict__.pop("_index", None)
        self.track_vocab = pool.share(self.track_vocab).tolist()

    def to_frame(self) -> pd.DataFrame:
        """The table as ``items.parquet`` stores it: one row per item, features as ``f_<column>``."""
        df = pd.DataFrame({"uri": self.uris, "candidate": np.arange(len(self.uris)) < self.n_candidates,
                           "track": self.track[1:], "track_oov": self.track_oov[1:], "artist": self.artist[1:],
                           "album": self.album[1:], "has_features": self.has_features[1:]})
        for j, c in enumerate(self.feature_columns):
            df[f"f_{c}"] = self.features[1:, j]
        return df

    @classmethod
    def from_frame(cls, df: pd.DataFrame, meta: dict, vocab: dict) -> ItemTable:
        """The table back from ``to_frame``'s frame, ``config.json`` (feature columns, mean, std), vocabularies."""
        cols = meta["feature_columns"]

        def pad(a, dtype):
            a = np.asarray(a, dtype=dtype)
            return np.concatenate([np.zeros((1,) + a.shape[1:], dtype), a])

        feats = df[[f"f_{c}" for c in cols]].to_numpy(np.float32) if cols else np.zeros((len(df), 0), np.float32)
        return cls(uris=df["uri"].to_numpy(object), n_candidates=int(df["candidate"].sum()),
                   track=pad(df["track"], np.int32), track_oov=pad(df["track_oov"], np.int32),
                   artist=pad(df["artist"], np.int32), album=pad(df["album"], np.int32),
                   features=pad(feats, np.float32), has_features=pad(df["has_features"], bool),
                   track_vocab=vocab["tracks"], artist_vocab=vocab["artists"], album_vocab=vocab["albums"],
                   feature_columns=cols, feature_mean=np.asarray(meta["feature_mean"], np.float32),
                   feature_std=np.asarray(meta["feature_std"], np.float32))


def vocabulary_index(vocab: list[str], values: np.ndarray, oov_buckets: int) -> np.ndarray:
    """Indices of ``values`` under a Keras ``StringLookup`` with ``num_oov_indices=oov_buckets``.

    Index 0 is the mask, 1..oov_buckets the hashed OOV buckets, then the vocabulary, exactly as the layer
    assigns them (the layer does the hashing, so training and serving agree).
    """
    import tensorflow as tf

    layer = tf.keras.layers.StringLookup(vocabulary=vocab, num_oov_indices=oov_buckets, mask_token="")
    out = np.empty(len(values), np.int32)
    for a in range(0, len(values), 200_000):
        out[a:a + 200_000] = layer(tf.constant(np.asarray(values[a:a + 200_000], dtype=str))).numpy()
    return out


def oov_bucket(values: np.ndarray, oov_buckets: int) -> np.ndarray:
    """Each value's hashed OOV bucket (what ``vocabulary_index`` gives for a value outside the vocabulary)."""
    import tensorflow as tf

    return (tf.strings.to_hash_bucket_fast(tf.constant(np.asarray(values, dtype=str)), oov_buckets).numpy()
            + 1).astype(np.int32)


def feature_table(features: pd.DataFrame | None) -> tuple[pd.DataFrame, list[str]]:
    """The audio-feature table indexed by track URI, and its feature columns."""
    if features is None:
        from modules.catalog import read_catalog

        features = read_catalog()
    if not isinstance(features, pd.DataFrame) or "track_uri" not in features.columns:
        got = type(features).__name__ if not isinstance(features, pd.DataFrame) else list(features.columns)[:8]
        raise InputError("features must be a DataFrame with a 'track_uri' column and numeric audio-feature "
                         f"columns (e.g. modules.catalog.read_catalog()); got {got}.")
    cols = [c for c in AUDIO_FEATURES if c in features.columns]
    if not cols:
        cols = [c for c in features.columns if c != "track_uri" and pd.api.types.is_numeric_dtype(features[c])
                and not pd.api.types.is_bool_dtype(features[c])]
    return features.drop_duplicates("track_uri").set_index("track_uri"), cols


def build_items(store, train_pids: np.ndarray, features: pd.DataFrame | None, cfg: TwoTowerConfig) -> ItemTable:
    """The item table of the tracks in ``train_pids`` (sorted by URI), then the feature table's other tracks.

    Tracks in fewer than ``cfg.min_track_count`` training playlists, and artists/albums of the feature-only
    tracks, fall in hashed OOV buckets; feature-only tracks give seeds a meaning but are never candidates.
    """
    entries = store.playlist_tracks
    entries = entries.loc[entries["pid"].isin(train_pids)].drop_duplicates(["pid", "track_uri"])
    # training playlists per track, by row of the store's tracks (the entries' categorical codes): no URI string
    # per entry; the rows come sorted by URI, as the tracks table is
    counts = np.bincount(entries["track_uri"].cat.codes.to_numpy(), minlength=len(store.tracks))
    rows = np.flatnonzero(counts)
    counts = counts[rows]
    train_uris = store.tracks["track_uri"].iloc[rows].to_numpy(object)
    del entries
    feat, cols = feature_table(features)
    # Tracks known only from the feature table (with artist/album) still give a seed meaning; they are not ranked.
    extra = []
    if {"artist_uri", "album_uri"} <= set(feat.columns):
        extra = sorted(set(feat.index) - set(train_uris))
    extra_meta = feat.loc[extra, ["artist_uri", "album_uri"]] if extra else pd.DataFrame(
        columns=["artist_uri", "album_uri"])
    uris = np.concatenate([train_uris, np.array(extra, object)])
    n_cand = len(train_uris)
    artists = np.concatenate([store.tracks["artist_uri"].iloc[rows].to_numpy(object),
                              extra_meta["artist_uri"].to_numpy(object)]).astype(str)
    albums = np.concatenate([store.tracks["album_uri"].iloc[rows].to_numpy(object),
                             extra_meta["album_uri"].to_numpy(object)]).astype(str)
    track_vocab = train_uris[counts >= cfg.min_track_count].tolist()
    n_train = len(train_uris)
    artist_vocab = sorted(set(artists[:n_train].tolist()))
    album_vocab = sorted(set(albums[:n_train].tolist()))

    x = np.zeros((len(uris), len(cols)), np.float32)
    has = np.zeros(len(uris), bool)
    mean = np.zeros(len(cols), np.float32)
    std = np.ones(len(cols), np.float32)
    if cols:
        known = pd.Index(uris).isin(feat.index)
        vals = feat.reindex(uris[known])[cols].to_numpy(np.float64)
        ok = np.isfinite(vals).all(axis=1)
        vals = vals[ok]
        rows = np.flatnonzero(known)[ok]
        if len(vals):
            mean = vals.mean(axis=0).astype(np.float32)
            std = np.maximum(vals.std(axis=0), 1e-6).astype(np.float32)
            x[rows] = (vals - mean) / std
            has[rows] = True

    def pad(a, dtype):
        return np.concatenate([np.zeros((1,) + a.shape[1:], dtype), a.astype(dtype)])

    return ItemTable(uris=uris, n_candidates=n_cand,
                  track=pad(vocabulary_index(track_vocab, uris, cfg.track_oov_buckets), np.int32),
                  track_oov=pad(oov_bucket(uris, cfg.track_oov_buckets), np.int32),
                  artist=pad(vocabulary_index(artist_vocab, artists, cfg.artist_oov_buckets), np.int32),
                  album=pad(vocabulary_index(album_vocab, albums, cfg.album_oov_buckets), np.int32),
                  features=pad(x, np.float32), has_features=pad(has, bool), track_vocab=track_vocab,
                  artist_vocab=artist_vocab, album_vocab=album_vocab, feature_columns=cols,
                  feature_mean=mean, feature_std=std)
