"""Inductive two-tower retrieval (TensorFlow Recommenders): any playlist answered from its seeds and title.

The proof of concept embedded playlist IDs, so a new playlist meant retraining. Here the query tower reads what
a challenge playlist actually has, so any playlist is answered without retraining:

* **query tower**: the seed tracks (track + artist + album embeddings, plus audio features), masked-mean
  pooled over any number of seeds including none (the per-dimension max as an extra input), and the title
  (Keras ``TextVectorization`` words and character trigrams, each masked-mean pooled), mixed by a small MLP
  whose output is added to the pooled seed vector;
* **candidate tower**: track + artist + album embeddings plus standardized audio features where the feature
  table has them (a learned "missing" vector where it does not); by default the same item encoder as the
  seeds, L2-normalized, plus a learned per-track/per-artist score bias carried as one extra dimension (the
  query side carries a constant 1), so retrieval stays one dot product. Tracks rarer than ``min_track_count`` and
  artists/albums never seen in training share hashed OOV buckets; during training a share (``id_dropout``) of
  track IDs is replaced by their OOV bucket, so the buckets are trained and the towers learn to lean on
  artist, album and audio when a track ID says nothing.

Training examples mimic the task: from each training playlist several (context = a random subset or a prefix
of its tracks, title dropped sometimes → target = one of its other tracks). The loss is TFRS's ``Retrieval``
task: in-batch softmax with the sampling-bias (logQ) correction for popularity, accidental hits removed and
in-batch candidates that are in the query's own context masked. A validation split carved from the training
playlists (``split_store`` on training pids) drives early stopping on recall@500.

Bundle layout (``BUNDLE_DIR/two_tower/``)::

    config.json           model configuration, data fingerprint, sizes, versions
    vocab/                tracks.txt, artists.txt, albums.txt, words.txt, ngrams.txt (one token a line)
    items.parquet         every known track: uri, candidate flag, track/artist/album index, audio features
    training_curve.json   per epoch: loss, examples/s, validation metrics
    weights/              the chosen epoch's weights (a TensorFlow checkpoint)
    checkpoints/          the latest epoch's model + optimizer state, to resume an interrupted run (the
                          CLI removes it after a finished run unless --keep-checkpoints)
    saved_model/          serving_default(seed_track_uris [batch, None] string padded with "", title [batch]
                          string) -> {"track_uris": [batch, k] string, "scores": [batch, k] float32}

The SavedModel needs only TensorFlow: ``tf.saved_model.load(path).signatures["serving_default"]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import modules  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from modules.atomic import atomic_directory
from modules.base import PlaylistRecommender, popularity_order
from modules.catalog import AUDIO_FEATURES
from modules.challenge import SplitError, split_store, validation_per_category
from modules.errors import BundleError, InputError
from modules.metrics import evaluate

log = logging.getLogger(__name__)

BUNDLE_SUBDIR = "two_tower"
BUNDLE_FORMAT = "two-tower/1"
REQUIRED_FILES = ("config.json", "items.parquet", "vocab/tracks.txt", "vocab/artists.txt", "vocab/albums.txt",
                  "vocab/words.txt", "vocab/ngrams.txt", "weights/weights.index", "saved_model/saved_model.pb")


OPTIMIZERS = ("auto", "adam", "lazy_adam")
# "auto" trains with Adam up to this many tracks (every published result is below it and reproduces bit for bit)
# and with the lazy form above, where Adam's step grows with the vocabulary (docs/two_tower.md).
LAZY_ADAM_FROM_TRACKS = 200_000
# Config keys added after bundles were first written: they enter a checkpoint's fingerprint only when set away
# from their default, so a bundle trained before they existed still matches the config it was trained with.
_LATER_KEYS = {"optimizer": "auto"}




@dataclass
class TwoTowerConfig:
    """Everything that shapes the model and its training (saved in ``config.json``).

    Parameters
    ----------
    embedding_dim : int, default=64
        Size of every embedding and of the final query/candidate vectors.
    hidden_dim : int, default=256
        Width of the query tower's hidden layer.
    temperature : float, default=0.2
        Softmax temperature on cosine similarities (used when ``normalize``).
    normalize : bool, default=True
        L2-normalize both towers' outputs (scores are cosines / temperature).
    epochs : int, default=15
        Maximum epochs; early stopping usually ends sooner.
    patience : int, default=3
        Stop after this many epochs without a better validation recall@500.
    min_delta : float, default=0.002
        A validation recall@500 counts as better only when it beats the best so far by more than this
        (gains below the validation noise do not keep training going).
    batch_size : int, default=512
        In-batch softmax size (each example's negatives are the other targets of its batch).
    learning_rate : float, default=0.002
        Adam step size.
    optimizer : {"auto", "adam", "lazy_adam"}, default="auto"
        Keras' Adam moves every embedding row at every step, so its step grows with the track vocabulary (an
        epoch doubles at 443k tracks); "lazy_adam" computes the same updates lazily, touching only the rows in
        a batch (same validation on the worlds). "auto": Adam up to ``LAZY_ADAM_FROM_TRACKS`` tracks, lazy above
        (docs/two_tower.md, "The optimizer and the track vocabulary").
    examples_per_track : float, default=0.5
        Training examples drawn per playlist entry per epoch (at least one per playlist).
    max_seeds : int, default=100
        Context tracks kept per training example (a random subset when there are more); serving uses all.
    max_context : int, default=150
        Largest context size drawn.
    empty_context_rate : float, default=0.1
        Share of examples (of titled playlists) with no seed at all: the title-only case.
    prefix_rate : float, default=0.5
        Share of contexts that are a prefix (else a random subset) of the playlist.
    uniform_context_rate : float, default=0.5
        Share of context sizes drawn uniformly in [1, min(n - 1, max_context)] instead of log-uniformly
        (more long contexts, as in the 25- and 100-seed categories).
    title_drop_rate : float, default=0.3
        Share of examples (with seeds) whose title is hidden, for the no-title categories.
    id_dropout : float, default=0.1
        Share of track IDs replaced by their OOV bucket during training.
    logq_weight : float, default=1.0
        Strength of the sampling-bias correction: logits minus ``logq_weight * log P(candidate in batch)``
        (0 disables it).
    mask_context_hits : bool, default=True
        Do not count an in-batch candidate as a negative for a query whose context holds it.
    dropout : float, default=0.0
        Dropout on the query tower's MLP input during training.
    mixed_negatives : int, default=0
        Extra negatives per example drawn uniformly from the candidates (mixed negative sampling), so rare
        tracks are pushed down too, not only the popular ones in-batch sampling favours.
    min_track_count : int, default=1
        Tracks in fewer training playlists than this get an OOV bucket instead of their own embedding.
    track_oov_buckets, artist_oov_buckets, album_oov_buckets : int, default=16
        Hashed buckets for unknown or rare IDs.
    share_item_embeddings : bool, default=True
        Seeds and candidates share one item encoder (else each tower has its own). Sharing ties what a
        track means as a seed to what it means as a candidate, which matters when most tracks are rare.
    pooling : {"mean", "attention", "mean+max"}, default="mean+max"
        How seed vectors are pooled: masked mean, a softmax-weighted mean with a learned per-seed weight, or
        the mean with the per-dimension max as an extra MLP input.
    pool_normalized : bool, default=False
        L2-normalize each seed's vector before pooling (every seed counts alike, whatever its norm).
    item_bias : bool, default=True
        Add a learned per-track and per-artist bias to the score (as one more dimension of both towers, so
        retrieval stays one dot product): with ``normalize`` the cosine alone cannot express a prior.
    audio : bool, default=True
        Use audio features (where known) in the item encoders.
    word_vocab_size, ngram_vocab_size : int, default=20000
        Title vocabularies (most frequent words / character trigrams of training titles).
    max_title_words, max_title_ngrams : int, default=8, 48
        Title tokens kept.
    catalog_candidates : bool, default=False
        Also rank tracks known only from the feature table (never in a training playlist).
    validation_per_category : int or "auto", default="auto"
        Validation playlists per challenge category, carved from the training playlists (0: no
        validation, train ``epochs`` epochs). ``"auto"``: 1.5 % of the training playlists, 10 to 50 per
        category (``modules.challenge.validation_per_category``); the fitted ``config_`` holds the number used.
    k : int, default=500
        Recommendations returned by the exported SavedModel.
    """

    embedding_dim: int = 64
    hidden_dim: int = 256
    temperature: float = 0.2
    normalize: bool = True
    epochs: int = 15
    patience: int = 3
    min_delta: float = 0.002
    batch_size: int = 512
    learning_rate: float = 0.002
    optimizer: str = "auto"
    examples_per_track: float = 0.5
    max_seeds: int = 100
    max_context: int = 150
    empty_context_rate: float = 0.1
    prefix_rate: float = 0.5
    uniform_context_rate: float = 0.5
    title_drop_rate: float = 0.3
    id_dropout: float = 0.1
    logq_weight: float = 1.0
    mask_context_hits: bool = True
    mixed_negatives: int = 0
    dropout: float = 0.0
    min_track_count: int = 1
    track_oov_buckets: int = 16
    artist_oov_buckets: int = 16
    album_oov_buckets: int = 16
    share_item_embeddings: bool = True
    pooling: str = "mean+max"
    pool_normalized: bool = False
    item_bias: bool = True
    audio: bool = True
    word_vocab_size: int = 20000
    ngram_vocab_size: int = 20000
    max_title_words: int = 8
    max_title_ngrams: int = 48
    catalog_candidates: bool = False
    validation_per_category: int | str = "auto"
    k: int = 500

    @classmethod
    def from_dict(cls, d: dict | None) -> TwoTowerConfig:
        """A config from a dict (e.g. a JSON ``--config`` file); unknown keys are an error naming them."""
        d = dict(d or {})
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise InputError(f"unknown two-tower config keys {unknown}; known keys: {', '.join(sorted(names))}.")
        out = cls(**d)
        out.validate()
        return out

    def validate(self) -> None:
        def need(name, ok, what):
            if not ok:
                raise InputError(f"The {name!r} parameter of TwoTowerConfig must be {what}. "
                                 f"Got {getattr(self, name)!r} instead.")
        for name in ("embedding_dim", "hidden_dim", "epochs", "batch_size", "max_seeds", "max_context",
                     "min_track_count", "track_oov_buckets", "artist_oov_buckets", "album_oov_buckets",
                     "word_vocab_size", "ngram_vocab_size", "max_title_words", "max_title_ngrams", "k"):
            v = getattr(self, name)
            need(name, isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive int")
        need("patience", isinstance(self.patience, int) and self.patience >= 1, "a positive int")
        need("min_delta", isinstance(self.min_delta, (int, float)) and self.min_delta >= 0, "a float >= 0")
        need("mixed_negatives", isinstance(self.mixed_negatives, int) and self.mixed_negatives >= 0, "an int >= 0")
        need("validation_per_category", self.validation_per_category == "auto" or (
            isinstance(self.validation_per_category, int) and not isinstance(self.validation_per_category, bool)
            and self.validation_per_category >= 0), "'auto' or an int >= 0")
        need("optimizer", self.optimizer in OPTIMIZERS, " or ".join(map(repr, OPTIMIZERS)))
        need("pooling", self.pooling in ("mean", "attention", "mean+max"), "'mean', 'attention' or 'mean+max'")
        for name in ("empty_context_rate", "prefix_rate", "title_drop_rate", "id_dropout", "uniform_context_rate",
                     "dropout"):
            v = getattr(self, name)
            need(name, isinstance(v, (int, float)) and 0.0 <= v < 1.0, "a float in [0, 1)")
        for name in ("temperature", "learning_rate", "examples_per_track"):
            v = getattr(self, name)
            need(name, isinstance(v, (int, float)) and v > 0, "a positive float")
        need("logq_weight", isinstance(self.logq_weight, (int, float)) and self.logq_weight >= 0, "a float >= 0")
        need("batch_size", self.batch_size >= 2, "at least 2 (in-batch negatives)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- text ------------------------------------------------------------------------------------------------

def _standardize_words(x):
    """Lower-case (Unicode), drop punctuation and symbols: "K-Pop Hits!" -> "kpop hits"."""
    import tensorflow as tf

    x = tf.strings.lower(x, encoding="utf-8")
    return tf.strings.regex_replace(x, r"[\p{P}\p{S}]", "")


def _standardize_ngrams(x):
    """Words as above, joined by "_" with "_" at both ends, so character trigrams mark word boundaries."""
    import tensorflow as tf

    x = tf.strings.strip(tf.strings.regex_replace(_standardize_words(x), r"\s+", " "))
    return tf.strings.join(["_", tf.strings.regex_replace(x, " ", "_"), "_"])


def _text_layers(cfg: TwoTowerConfig, words=None, ngrams=None):
    """The two title vectorizers (word ids, character-trigram ids); id 0 is padding, 1 is unknown."""
    import tensorflow as tf

    w = tf.keras.layers.TextVectorization(max_tokens=cfg.word_vocab_size + 2, standardize=_standardize_words,
                                          split="whitespace", output_mode="int",
                                          output_sequence_length=cfg.max_title_words, vocabulary=words,
                                          name="title_words")
    n = tf.keras.layers.TextVectorization(max_tokens=cfg.ngram_vocab_size + 2, standardize=_standardize_ngrams,
                                          split="character", ngrams=(3,), output_mode="int",
                                          output_sequence_length=cfg.max_title_ngrams, vocabulary=ngrams,
                                          name="title_ngrams")
    return w, n


# --- vocabularies and the item table -----------------------------------------------------------------------

@dataclass
class _Items:
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
        if not hasattr(self, "_index"):
            self._index = {u: i + 1 for i, u in enumerate(self.uris.tolist())}
        return self._index

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame({"uri": self.uris, "candidate": np.arange(len(self.uris)) < self.n_candidates,
                           "track": self.track[1:], "track_oov": self.track_oov[1:], "artist": self.artist[1:],
                           "album": self.album[1:], "has_features": self.has_features[1:]})
        for j, c in enumerate(self.feature_columns):
            df[f"f_{c}"] = self.features[1:, j]
        return df

    @classmethod
    def from_frame(cls, df: pd.DataFrame, meta: dict, vocab: dict) -> _Items:
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


def _lookup(vocab: list[str], values: np.ndarray, oov_buckets: int) -> np.ndarray:
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


def _oov_bucket(values: np.ndarray, oov_buckets: int) -> np.ndarray:
    """Each value's hashed OOV bucket (what ``_lookup`` gives for a value outside the vocabulary)."""
    import tensorflow as tf

    return (tf.strings.to_hash_bucket_fast(tf.constant(np.asarray(values, dtype=str)), oov_buckets).numpy()
            + 1).astype(np.int32)


def _feature_table(features: pd.DataFrame | None) -> tuple[pd.DataFrame, list[str]]:
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


def _build_items(store, train_pids: np.ndarray, features: pd.DataFrame | None, cfg: TwoTowerConfig) -> _Items:
    entries = store.playlist_tracks
    entries = entries.loc[entries["pid"].isin(train_pids)]
    counts = entries.drop_duplicates(["pid", "track_uri"])["track_uri"].value_counts()
    meta = store.tracks.set_index("track_uri")
    train_uris = np.array(sorted(counts.index), dtype=object)
    feat, cols = _feature_table(features)
    # Tracks known only from the feature table (with artist/album) still give a seed meaning, and may be ranked.
    extra = []
    if {"artist_uri", "album_uri"} <= set(feat.columns):
        extra = sorted(set(feat.index) - set(train_uris))
    extra_meta = feat.loc[extra, ["artist_uri", "album_uri"]] if extra else pd.DataFrame(
        columns=["artist_uri", "album_uri"])
    uris = np.concatenate([train_uris, np.array(extra, object)])
    n_cand = len(train_uris) + (len(extra) if cfg.catalog_candidates else 0)
    artists = np.concatenate([meta.loc[train_uris, "artist_uri"].to_numpy(object),
                              extra_meta["artist_uri"].to_numpy(object)]).astype(str)
    albums = np.concatenate([meta.loc[train_uris, "album_uri"].to_numpy(object),
                             extra_meta["album_uri"].to_numpy(object)]).astype(str)
    track_vocab = sorted(counts.index[counts.to_numpy() >= cfg.min_track_count])
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

    return _Items(uris=uris, n_candidates=n_cand,
                  track=pad(_lookup(track_vocab, uris, cfg.track_oov_buckets), np.int32),
                  track_oov=pad(_oov_bucket(uris, cfg.track_oov_buckets), np.int32),
                  artist=pad(_lookup(artist_vocab, artists, cfg.artist_oov_buckets), np.int32),
                  album=pad(_lookup(album_vocab, albums, cfg.album_oov_buckets), np.int32),
                  features=pad(x, np.float32), has_features=pad(has, bool), track_vocab=track_vocab,
                  artist_vocab=artist_vocab, album_vocab=album_vocab, feature_columns=cols,
                  feature_mean=mean, feature_std=std)


# --- the towers (Keras layers; TFRS model) -------------------------------------------------------------------

def _masked_mean(x, mask):
    """Mean over axis 1 of ``x`` [B, L, d] where ``mask`` [B, L] is true; zeros for an empty row."""
    import tensorflow as tf

    m = tf.cast(mask, x.dtype)[..., None]
    return tf.reduce_sum(x * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)


def _make_layers(items: _Items, cfg: TwoTowerConfig, n_words: int, n_ngrams: int):
    """Build the query and candidate towers (Keras layers) for an item table."""
    import tensorflow as tf

    d = cfg.embedding_dim

    class ItemEncoder(tf.keras.layers.Layer):
        """Item ids [...] -> [..., d]: track + artist + album embeddings (+ audio, or the "missing" vector)."""

        def __init__(self, name):
            super().__init__(name=name)
            self.track_of = tf.constant(items.track)
            self.track_oov_of = tf.constant(items.track_oov)
            self.artist_of = tf.constant(items.artist)
            self.album_of = tf.constant(items.album)
            self.track_emb = tf.keras.layers.Embedding(len(items.track_vocab) + cfg.track_oov_buckets + 1, d,
                                                       name="track")
            self.artist_emb = tf.keras.layers.Embedding(len(items.artist_vocab) + cfg.artist_oov_buckets + 1, d,
                                                        name="artist")
            self.album_emb = tf.keras.layers.Embedding(len(items.album_vocab) + cfg.album_oov_buckets + 1, d,
                                                       name="album")
            self.use_audio = cfg.audio and items.features.shape[1] > 0
            if self.use_audio:
                self.features_of = tf.constant(items.features)
                self.has_features_of = tf.constant(items.has_features)
                self.audio = tf.keras.layers.Dense(d, name="audio")
                self.missing = self.add_weight(name="missing_audio", shape=(d,), initializer="zeros")

        def call(self, ids, drop=None):
            t = tf.gather(self.track_of, ids)
            if drop is not None:
                t = tf.where(drop, tf.gather(self.track_oov_of, ids), t)
            e = (self.track_emb(t) + self.artist_emb(tf.gather(self.artist_of, ids))
                 + self.album_emb(tf.gather(self.album_of, ids)))
            if self.use_audio:
                a = self.audio(tf.gather(self.features_of, ids))
                e += tf.where(tf.gather(self.has_features_of, ids)[..., None], a, self.missing)
            return e

    class QueryTower(tf.keras.layers.Layer):
        """{"seeds": [B, S] item ids (0 = padding), "words": [B, W], "ngrams": [B, N]} -> [B, d]."""

        def __init__(self, seed_encoder):
            super().__init__(name="query_tower")
            self.seed_encoder = seed_encoder
            self.word_emb = tf.keras.layers.Embedding(n_words, d, name="words")
            self.ngram_emb = tf.keras.layers.Embedding(n_ngrams, d, name="ngrams")
            self.hidden = tf.keras.layers.Dense(cfg.hidden_dim, activation="relu", name="hidden")
            self.out = tf.keras.layers.Dense(d, name="out")
            if cfg.pooling == "attention":
                self.gate = tf.keras.layers.Dense(1, name="seed_gate", kernel_initializer="zeros")

        def call(self, inputs, seed_drop=None, dropout_seed=None):
            seeds, words, ngrams = inputs["seeds"], inputs["words"], inputs["ngrams"]
            seed_mask = seeds > 0
            e = self.seed_encoder(seeds, seed_drop)
            if cfg.pool_normalized:
                e = tf.math.l2_normalize(e, axis=-1)
            if cfg.pooling == "attention":  # a learned weight per seed (softmax over the playlist's seeds)
                logit = tf.where(seed_mask, self.gate(e)[..., 0], -1e9)
                w = tf.nn.softmax(logit, axis=1) * tf.cast(tf.reduce_any(seed_mask, axis=1, keepdims=True),
                                                           tf.float32)
                pooled = tf.reduce_sum(e * w[..., None], axis=1)
            else:
                pooled = _masked_mean(e, seed_mask)
            w = _masked_mean(self.word_emb(words), words > 0)
            g = _masked_mean(self.ngram_emb(ngrams), ngrams > 0)
            n_seeds = tf.reduce_sum(tf.cast(seed_mask, tf.float32), axis=1, keepdims=True)
            has_title = tf.cast(tf.reduce_any(words > 0, axis=1, keepdims=True)
                                | tf.reduce_any(ngrams > 0, axis=1, keepdims=True), tf.float32)
            flags = tf.concat([tf.cast(n_seeds > 0, tf.float32), has_title, tf.math.log1p(n_seeds) / 5.0], axis=1)
            parts = [pooled, w, g, flags]
            if cfg.pooling == "mean+max":  # the MLP also sees the strongest value of each dimension
                parts.append(tf.reduce_max(tf.where(seed_mask[..., None], e, -1e9), axis=1)
                             * tf.cast(tf.reduce_any(seed_mask, axis=1, keepdims=True), tf.float32))
            x = tf.concat(parts, axis=1)
            if dropout_seed is not None and cfg.dropout > 0:  # training only; seeded by the batch (resumable)
                x = tf.nn.experimental.stateless_dropout(x, rate=cfg.dropout, seed=dropout_seed[0])
            q = self.out(self.hidden(x)) + pooled
            q = tf.math.l2_normalize(q, axis=-1) if cfg.normalize else q
            if cfg.item_bias:  # a constant 1 meets the candidate's bias in the dot product
                q = tf.concat([q, tf.ones_like(q[:, :1])], axis=1)
            return q

    class CandidateTower(tf.keras.layers.Layer):
        """Item ids [B] -> [B, d]."""

        def __init__(self, encoder):
            super().__init__(name="candidate_tower")
            self.encoder = encoder
            if cfg.item_bias:
                self.track_bias = tf.keras.layers.Embedding(
                    len(items.track_vocab) + cfg.track_oov_buckets + 1, 1, embeddings_initializer="zeros",
                    name="track_bias")
                self.artist_bias = tf.keras.layers.Embedding(
                    len(items.artist_vocab) + cfg.artist_oov_buckets + 1, 1, embeddings_initializer="zeros",
                    name="artist_bias")

        def call(self, ids, drop=None):
            c = self.encoder(ids, drop)
            c = tf.math.l2_normalize(c, axis=-1) if cfg.normalize else c
            if cfg.item_bias:
                # A learned prior per track (and artist), outside the cosine: normalized vectors alone
                # cannot say that one track is more likely than another whatever the playlist.
                t = tf.gather(self.encoder.track_of, ids)
                if drop is not None:
                    t = tf.where(drop, tf.gather(self.encoder.track_oov_of, ids), t)
                b = self.track_bias(t)[..., 0] + self.artist_bias(tf.gather(self.encoder.artist_of, ids))[..., 0]
                scale = cfg.temperature if cfg.normalize else 1.0  # the task divides all scores by it
                c = tf.concat([c, (b * scale)[..., None]], axis=-1)
            return c

    cand_encoder = ItemEncoder("candidate_items")
    seed_encoder = cand_encoder if cfg.share_item_embeddings else ItemEncoder("seed_items")
    return QueryTower(seed_encoder), CandidateTower(cand_encoder)


def _make_model(query_tower, candidate_tower, cfg: TwoTowerConfig, sampling_prob: np.ndarray):
    """The TFRS retrieval model: towers and task passed in, loss = in-batch softmax with logQ correction."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    class TwoTowerModel(tfrs.models.Model):
        def __init__(self, query_tower, candidate_tower, task):
            super().__init__()
            self.query_tower = query_tower
            self.candidate_tower = candidate_tower
            self.task = task
            self.sampling_prob = tf.constant(sampling_prob.astype(np.float32))

        def compute_loss(self, batch, training=False):
            q = self.query_tower(batch, seed_drop=batch.get("seed_drop"), dropout_seed=batch.get("rng"))
            ids = batch["target"]
            drop = batch.get("target_drop")
            if "negatives" in batch:  # mixed negative sampling: uniform extra candidates after the targets
                neg = tf.reshape(batch["negatives"], [-1])
                ids = tf.concat([ids, neg], axis=0)
                if drop is not None:
                    drop = tf.concat([drop, tf.zeros_like(neg, dtype=tf.bool)], axis=0)
            c = self.candidate_tower(ids, drop=drop)
            prob = None
            if cfg.logq_weight > 0:
                # Expected number of copies of each candidate in a batch's pool (targets are drawn by
                # popularity, the extra negatives uniformly); constant factors cancel in the softmax.
                prob = tf.pow(tf.gather(self.sampling_prob, ids), float(cfg.logq_weight))
            mask = None
            if cfg.mask_context_hits:
                seeds, n_q = batch["seeds"], tf.shape(batch["target"])[0]
                in_ctx = tf.reduce_any(seeds[:, :, None] == ids[None, None, :], axis=1)
                mask = ~(in_ctx & ~tf.eye(n_q, tf.shape(ids)[0], dtype=tf.bool))
            return self.task(q, c, candidate_sampling_probability=prob, candidate_ids=ids,
                             compute_metrics=False, compute_batch_metrics=False, score_mask=mask)

    task = tfrs.tasks.Retrieval(temperature=cfg.temperature if cfg.normalize else None,
                                remove_accidental_hits=True)
    return TwoTowerModel(query_tower, candidate_tower, task)


# --- optimizer ---------------------------------------------------------------------------------------------

def _fingerprint_config(cfg: TwoTowerConfig, n_tracks: int) -> dict:
    """The config a checkpoint must match: all but the stopping rule, later keys only when not default, and the
    optimizer actually used when it is not the Adam every earlier bundle was trained with."""
    conf = {k: v for k, v in cfg.to_dict().items() if k not in ("epochs", "patience", "min_delta")
            and not (k in _LATER_KEYS and v == _LATER_KEYS[k])}
    used = optimizer_name(cfg, n_tracks)
    if used != "adam":
        conf["optimizer_used"] = used
    return conf


def optimizer_name(cfg: TwoTowerConfig, n_tracks: int) -> str:
    """``cfg.optimizer`` with "auto" resolved for a vocabulary of ``n_tracks`` tracks."""
    if cfg.optimizer != "auto":
        return cfg.optimizer
    return "lazy_adam" if n_tracks > LAZY_ADAM_FROM_TRACKS else "adam"


def make_optimizer(cfg: TwoTowerConfig, n_tracks: int = 0):
    """The training optimizer ``cfg.optimizer`` names (see ``optimizer_name``), at ``cfg.learning_rate``."""
    import tensorflow as tf

    if optimizer_name(cfg, n_tracks) == "lazy_adam":
        from modules.lazy_adam import LazyAdam

        return LazyAdam(cfg.learning_rate)
    return tf.keras.optimizers.Adam(cfg.learning_rate)


# --- training examples -------------------------------------------------------------------------------------

@dataclass
class _Playlists:
    """Training playlists as item-id arrays (duplicates removed, order kept) and title token ids."""

    tracks: list[np.ndarray]
    has_title: np.ndarray  # [P] bool
    words: np.ndarray  # [P, W] int32
    ngrams: np.ndarray  # [P, N] int32


@dataclass
class _Examples:
    """One epoch of training examples, stored compactly and padded one batch at a time.

    Contexts are kept ragged (``context`` concatenated, ``offsets`` per example, in training order) and title
    token rows as an index into the playlists' table, so an epoch costs about ``mean context length × 5`` bytes
    per example instead of the ~3.5 KB of padded ``[max_seeds]`` rows, title rows and their TensorFlow copy (an
    epoch of 100,000 playlists peaked at 12.9 GB that way; docs/two_tower.md, "Memory"). ``batches`` yields exactly
    the padded arrays the materialized form held, so training is unchanged to the bit.
    """

    context: np.ndarray  # [sum of lengths] int32, training order
    offsets: np.ndarray  # [n + 1] int64
    seed_drop: np.ndarray  # [sum of lengths] bool, aligned with context
    target: np.ndarray  # [n] int32
    title_row: np.ndarray  # [n] int64, -1 = no title
    target_drop: np.ndarray  # [n] bool
    extra: dict  # "rng" [n, 2] int64, "negatives" [n, m] int32 when configured
    max_seeds: int

    def __len__(self) -> int:
        return len(self.target)

    def n_batches(self, batch_size: int) -> int:
        return len(self) // batch_size

    def signature(self, pl: _Playlists, batch_size: int) -> dict:
        import tensorflow as tf

        b, s = batch_size, self.max_seeds
        sig = {"seeds": tf.TensorSpec((b, s), tf.int32), "target": tf.TensorSpec((b,), tf.int32),
               "words": tf.TensorSpec((b, pl.words.shape[1]), tf.int32),
               "ngrams": tf.TensorSpec((b, pl.ngrams.shape[1]), tf.int32),
               "seed_drop": tf.TensorSpec((b, s), tf.bool), "target_drop": tf.TensorSpec((b,), tf.bool)}
        for k, v in self.extra.items():
            sig[k] = tf.TensorSpec((b, *v.shape[1:]), tf.as_dtype(v.dtype))
        return sig

    def batches(self, pl: _Playlists, batch_size: int):
        """Full batches in training order (the remainder is dropped), as dicts of padded arrays."""
        cols = np.arange(self.max_seeds)
        for i in range(self.n_batches(batch_size)):
            a, b = i * batch_size, (i + 1) * batch_size
            lengths = np.diff(self.offsets[a:b + 1])
            mask = cols[None, :] < lengths[:, None]
            lo, hi = self.offsets[a], self.offsets[b]
            seeds = np.zeros((batch_size, self.max_seeds), np.int32)
            seeds[mask] = self.context[lo:hi]
            drop = np.zeros((batch_size, self.max_seeds), bool)
            drop[mask] = self.seed_drop[lo:hi]
            trow = self.title_row[a:b]
            has = trow >= 0
            out = {"seeds": seeds, "target": self.target[a:b],
                   "words": np.where(has[:, None], pl.words[np.maximum(trow, 0)], 0).astype(np.int32),
                   "ngrams": np.where(has[:, None], pl.ngrams[np.maximum(trow, 0)], 0).astype(np.int32),
                   "seed_drop": drop, "target_drop": self.target_drop[a:b]}
            for k, v in self.extra.items():
                out[k] = v[a:b]
            yield out

    def dataset(self, pl: _Playlists, batch_size: int):
        import tensorflow as tf

        return tf.data.Dataset.from_generator(lambda: self.batches(pl, batch_size),
                                              output_signature=self.signature(pl, batch_size)).prefetch(2)


# rows of seed-dropout draws made at once: the draws are the same whichever the chunk (one uniform per cell, in
# row order), only the transient [rows, max_seeds] float64 buffer is bounded
_DROP_CHUNK = 65536


def _draw_examples(pl: _Playlists, cfg: TwoTowerConfig, rng: np.random.Generator) -> tuple[list, list, list]:
    """(contexts, targets, title rows) of one epoch in playlist order, before shuffling.

    From each playlist of n tracks, ``max(1, round(n * examples_per_track))`` examples: a context of size 0
    (title-only, if titled), or log-uniform in [1, min(n - 1, max_context)], taken as a prefix or a random
    subset; the target is one of the playlist's other tracks. Contexts longer than ``max_seeds`` keep a
    random subset. The title row is -1 when the example has no title.
    """
    S = cfg.max_seeds
    contexts, targets, title_rows = [], [], []
    for p, arr in enumerate(pl.tracks):
        n = len(arr)
        if n < 2:
            continue
        m = max(1, int(round(n * cfg.examples_per_track)))
        hi = min(n - 1, cfg.max_context)
        empty = (rng.random(m) < cfg.empty_context_rate) & pl.has_title[p]
        log_sizes = np.floor(np.exp(rng.random(m) * math.log(hi + 1))).astype(int)
        uniform_sizes = rng.integers(1, hi + 1, size=m)
        sizes = np.where(rng.random(m) < cfg.uniform_context_rate, uniform_sizes, log_sizes).clip(1, hi)
        sizes[empty] = 0
        prefix = rng.random(m) < cfg.prefix_rate
        drop_title = rng.random(m) < cfg.title_drop_rate
        for c, pre, drop in zip(sizes.tolist(), prefix.tolist(), drop_title.tolist(), strict=True):
            if pre:
                ctx = arr[:c]
                tgt = arr[rng.integers(c, n)]
            else:
                perm = rng.permutation(n)
                ctx, tgt = arr[perm[:c]], arr[perm[c]]
            if len(ctx) > S:
                ctx = ctx[np.sort(rng.choice(len(ctx), S, replace=False))]
            contexts.append(ctx)
            targets.append(tgt)
            title_rows.append(p if pl.has_title[p] and (c == 0 or not drop) else -1)
    return contexts, targets, title_rows


def _make_examples(pl: _Playlists, cfg: TwoTowerConfig, rng: np.random.Generator, n_candidates: int) -> _Examples:
    """One epoch of (context, title?) -> target examples (``_draw_examples``), shuffled; deterministic for
    ``rng``."""
    S = cfg.max_seeds
    contexts, targets, title_rows = _draw_examples(pl, cfg, rng)
    n_ex = len(targets)
    order = rng.permutation(n_ex)
    shuffled = [contexts[j] for j in order.tolist()]
    del contexts
    lengths = np.fromiter(map(len, shuffled), np.int64, n_ex)
    offsets = np.zeros(n_ex + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    context = np.concatenate(shuffled).astype(np.int32, copy=False) if n_ex else np.zeros(0, np.int32)
    del shuffled
    # the dropout draws cover every [max_seeds] cell of every example, as the padded form did; padding (id 0)
    # is never dropped, so only the cells holding a track are kept
    seed_drop = np.zeros(len(context), bool)
    cols = np.arange(S)
    for a in range(0, n_ex, _DROP_CHUNK):
        b = min(a + _DROP_CHUNK, n_ex)
        draws = rng.random((b - a, S)) < cfg.id_dropout
        seed_drop[offsets[a]:offsets[b]] = draws[cols[None, :] < lengths[a:b, None]]
    seed_drop &= context > 0
    target = np.asarray(targets, np.int32)[order]
    trow = np.asarray(title_rows, np.int64)[order]
    target_drop = rng.random(n_ex) < cfg.id_dropout
    extra = {}
    if cfg.dropout > 0:
        extra["rng"] = rng.integers(0, 2**31 - 1, size=(n_ex, 2)).astype(np.int64)
    if cfg.mixed_negatives:
        extra["negatives"] = rng.integers(1, n_candidates + 1, size=(n_ex, cfg.mixed_negatives)).astype(np.int32)
    return _Examples(context, offsets, seed_drop, target, trow, target_drop, extra, S)


# --- the recommender ---------------------------------------------------------------------------------------

class TwoTowerRecommender(PlaylistRecommender):
    """Inductive TFRS two-tower: answers any playlist from its seed tracks and title, no retraining.

    Parameters
    ----------
    config : TwoTowerConfig, dict or None, default=None
        Model and training configuration (``None``: the defaults).
    features : DataFrame or None, default=None
        Audio features: ``track_uri`` plus numeric columns (the ``AUDIO_FEATURES`` present are used, e.g.
        ``modules.catalog.read_catalog()``); ``None`` reads the shipped catalog. Tracks absent from it use the
        learned "missing" vector. With ``artist_uri``/``album_uri`` columns, tracks never seen in training
        still get their artist and album when they appear as seeds.
    seed : int, default=0
        Seeds weight initialization and example sampling: same seed, same data → same scores.
    checkpoint_dir : path or None, default=None
        Where to keep per-epoch checkpoints; a run interrupted there resumes from its last finished epoch
        when started again with the same data and configuration.
    show_progress : bool, default=False
        tqdm bars per epoch (loss, examples/s).
    **params
        Overrides of ``config`` fields, e.g. ``epochs=5`` (what ``--params`` passes).

    Attributes
    ----------
    curve_ : list of dict
        Per epoch: loss, seconds, examples/s, validation metrics.
    candidate_embeddings_ : ndarray of shape (n_candidates, embedding_dim)
        Cached candidate-tower outputs (``candidates`` scores against these with a matmul).

    Examples
    --------
    >>> rec = TwoTowerRecommender(epochs=5).fit(store)                       # doctest: +SKIP
    >>> uris, scores = rec.candidates(["spotify:track:..."], "chill", n=1000)  # doctest: +SKIP
    >>> rec.save("models/demo")                                               # doctest: +SKIP
    """

    def __init__(self, config: TwoTowerConfig | dict | None = None, *, features: pd.DataFrame | None = None,
                 seed: int = 0, checkpoint_dir: str | Path | None = None, show_progress: bool = False,
                 **params):
        self.config = config
        self.features = features
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.show_progress = show_progress
        self.params = params

    # -- configuration --
    def _resolved_config(self) -> TwoTowerConfig:
        base = self.config
        if isinstance(base, TwoTowerConfig):
            base = base.to_dict()
        return TwoTowerConfig.from_dict({**(base or {}), **self.params})

    # -- fit --
    def fit(self, store, pids=None):
        """Train on the playlists of ``store`` (restricted to ``pids``); returns ``self``.

        A validation split (``validation_per_category`` playlists per category) is carved from these
        playlists with ``split_store``; its held-out tracks are never trained on (its seeds are). The epoch
        with the best validation recall@500 is kept. Turns on TensorFlow op determinism for the process
        (``tf.config.experimental.enable_op_determinism``), which same seed ⇒ same scores relies on.
        """
        import tensorflow as tf

        cfg = self._resolved_config()
        t_start = time.perf_counter()
        self.config_ = cfg
        self._encode_fn = None
        tf.keras.utils.set_random_seed(int(self.seed))
        tf.config.experimental.enable_op_determinism()
        all_pids = store.playlists["pid"].to_numpy() if pids is None else np.asarray(pids, np.int64)
        if cfg.validation_per_category == "auto":
            cfg = self.config_ = dataclasses.replace(
                cfg, validation_per_category=validation_per_category(len(np.unique(all_pids))))
        split = None
        if cfg.validation_per_category > 0:
            try:
                split = split_store(store, per_category=cfg.validation_per_category, seed=int(self.seed),
                                    pids=all_pids)
            except SplitError as err:
                log.warning("no validation split (%s); training %d epochs without early stopping", err, cfg.epochs)
        train_pids = split.train_pids if split is not None else np.unique(all_pids)
        # Validation playlists are left out of training altogether, seeds included, as test playlists are.
        items = _build_items(store, train_pids, self.features, cfg)
        self.items_ = items
        entries = store.playlist_tracks
        entries = entries.loc[entries["pid"].isin(train_pids)].sort_values(["pid", "pos"], kind="stable")
        idx = items.index
        item_ids = entries["track_uri"].map(idx).to_numpy(np.int64)
        bounds = np.flatnonzero(np.diff(entries["pid"].to_numpy())) + 1
        tracks = [pd.unique(a).astype(np.int32) for a in np.split(item_ids, bounds)] if len(item_ids) else []
        names = store.playlists.set_index("pid")["name"]
        titles = [names.get(p) for p in np.unique(entries["pid"].to_numpy()).tolist()]
        titles = [t if isinstance(t, str) and t.strip() else "" for t in titles]

        words_layer, ngrams_layer = _text_layers(cfg)
        titled = [t for t in titles if t]
        words_layer.adapt(tf.constant(titled or [""]))
        ngrams_layer.adapt(tf.constant(titled or [""]))
        self.words_layer_, self.ngrams_layer_ = words_layer, ngrams_layer
        tt = tf.constant(titles) if titles else tf.constant([""])
        pl = _Playlists(tracks=tracks, has_title=np.array([bool(t) for t in titles]),
                        words=words_layer(tt).numpy().astype(np.int32),
                        ngrams=ngrams_layer(tt).numpy().astype(np.int32))

        # Sampling probability of each item as an in-batch candidate: its share of training entries.
        counts = np.bincount(np.concatenate(tracks) if tracks else np.zeros(0, int), minlength=len(items.uris) + 1)
        prob = (cfg.batch_size * counts / max(counts.sum(), 1)
                + cfg.batch_size * cfg.mixed_negatives / max(items.n_candidates, 1))
        prob = np.maximum(prob, 1e-6)
        self.query_tower_, self.candidate_tower_ = _make_layers(items, cfg, words_layer.vocabulary_size(),
                                                                ngrams_layer.vocabulary_size())
        model = _make_model(self.query_tower_, self.candidate_tower_, cfg, prob)
        self.model_ = model
        self.optimizer_ = optimizer_name(cfg, len(items.uris))
        log.info("two-tower: %d tracks, optimizer %s", len(items.uris), self.optimizer_)
        optimizer = make_optimizer(cfg, len(items.uris))
        self._build(model, optimizer, cfg)
        self.fallback_ = popularity_order(store, train_pids)

        fingerprint = self._fingerprint(store, train_pids, cfg)
        ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)
        state = {"fingerprint": fingerprint, "epoch": 0, "curve": [], "best_epoch": 0, "best": -1.0, "bad": 0}
        ckdir = Path(self.checkpoint_dir) if self.checkpoint_dir else None
        best_weights = None
        if ckdir is not None:
            state, best_weights = self._resume(ckdir, ckpt, state)

        step = self._train_step_fn(model, optimizer)
        for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
            if split is not None and state["bad"] >= cfg.patience:
                break
            rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), epoch, 3]))
            t0 = time.perf_counter()
            ex = _make_examples(pl, cfg, rng, items.n_candidates)
            n_batches = ex.n_batches(cfg.batch_size)
            ds = ex.dataset(pl, cfg.batch_size)
            losses = []
            bar = tqdm(ds, total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch",
                       disable=not self.show_progress, leave=False)
            for batch in bar:
                losses.append(float(step(batch)))
                if len(losses) % 20 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-20:]) / cfg.batch_size:.3f}")
            bar.close()
            if hasattr(optimizer, "catch_up"):
                optimizer.catch_up(model.trainable_variables)
            train_s = time.perf_counter() - t0
            row = {"epoch": epoch, "examples": n_batches * cfg.batch_size,
                   "loss": float(np.mean(losses) / cfg.batch_size) if losses else float("nan"),
                   "train_seconds": round(train_s, 2),
                   "examples_per_s": round(n_batches * cfg.batch_size / max(train_s, 1e-9), 1)}
            if split is not None:
                self._cache_candidates()
                self.fitted_ = True
                summary = self._validate(split, store)
                row["validation"] = {k: round(v, 6) for k, v in summary["ALL"].items() if k != "count"}
                metric = summary["ALL"]["recall"]
                if metric > state["best"] + cfg.min_delta:
                    state.update(best=metric, best_epoch=epoch, bad=0)
                    best_weights = [w.copy() for w in model.get_weights()]
                    if ckdir is not None:
                        tf.train.Checkpoint(model=model).write(str(ckdir / "best" / "weights"))
                else:
                    state["bad"] += 1
            row["seconds"] = round(time.perf_counter() - t0, 2)
            state["curve"].append(row)
            state["epoch"] = epoch
            log.info("epoch %d: loss %.4f, %.0f examples/s%s", epoch, row["loss"], row["examples_per_s"],
                     f", validation recall@500 {row['validation']['recall']:.4f} ndcg "
                     f"{row['validation']['ndcg']:.4f}" if "validation" in row else "")
            if self.show_progress:
                tqdm.write(f"epoch {epoch}: loss {row['loss']:.4f}, {row['examples_per_s']:.0f} examples/s"
                           + (f", val recall@500 {row['validation']['recall']:.4f}, ndcg "
                              f"{row['validation']['ndcg']:.4f}" if "validation" in row else ""))
            if ckdir is not None:
                ckpt.write(str(ckdir / "last" / "state"))
                (ckdir / "state.json").write_text(json.dumps(state, indent=1))
        if best_weights is not None:
            model.set_weights(best_weights)
        self.curve_ = state["curve"]
        self.best_epoch_ = state["best_epoch"] if split is not None else state["epoch"]
        self.fit_seconds_ = round(time.perf_counter() - t_start, 1)
        self.fingerprint_ = fingerprint
        self._cache_candidates()
        self.fitted_ = True
        return self

    @staticmethod
    def _build(model, optimizer, cfg):
        """Create every variable (model and optimizer slots), so checkpoints can be restored into them."""
        import tensorflow as tf

        B, S = 2, 2
        dummy = {"seeds": tf.zeros((B, S), tf.int32), "target": tf.ones((B,), tf.int32),
                 "words": tf.zeros((B, cfg.max_title_words), tf.int32),
                 "ngrams": tf.zeros((B, cfg.max_title_ngrams), tf.int32),
                 "seed_drop": tf.zeros((B, S), tf.bool), "target_drop": tf.zeros((B,), tf.bool)}
        model.compute_loss(dummy)
        optimizer.build(model.trainable_variables)

    @staticmethod
    def _train_step_fn(model, optimizer):
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def step(batch):
            with tf.GradientTape() as tape:
                loss = model.compute_loss(batch, training=True)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        return step

    def _fingerprint(self, store, train_pids, cfg) -> str:
        """What a checkpoint must match to be resumed: data, seed and config (bar epochs and patience)."""
        h = hashlib.sha256()
        h.update(str(getattr(store, "fingerprint", "")).encode())
        h.update(np.asarray(train_pids, np.int64).tobytes())
        h.update(json.dumps([_fingerprint_config(cfg, len(self.items_.uris)), int(self.seed), len(self.items_.uris),
                             self.items_.feature_columns], sort_keys=True).encode())
        return h.hexdigest()[:16]

    def _resume(self, ckdir: Path, ckpt, state: dict):
        """Restore the last finished epoch from ``ckdir`` when it was written for the same data and config."""
        import tensorflow as tf

        f = ckdir / "state.json"
        best_weights = None
        if f.exists():
            old = json.loads(f.read_text())
            if old.get("fingerprint") == state["fingerprint"] and (ckdir / "last" / "state.index").exists():
                ckpt.read(str(ckdir / "last" / "state")).assert_consumed()
                state = old
                if (ckdir / "best" / "weights.index").exists():
                    current = [w.copy() for w in self.model_.get_weights()]
                    tf.train.Checkpoint(model=self.model_).read(str(ckdir / "best" / "weights")).assert_consumed()
                    best_weights = [w.copy() for w in self.model_.get_weights()]
                    self.model_.set_weights(current)
                log.info("resuming from %s after epoch %d", ckdir, state["epoch"])
            else:
                log.warning("checkpoints in %s are from other data or another config; starting afresh", ckdir)
                shutil.rmtree(ckdir, ignore_errors=True)
        ckdir.mkdir(parents=True, exist_ok=True)
        return state, best_weights

    def _validate(self, split, store) -> dict:
        rows = {}
        pls = split.challenge["playlists"]
        seeds = [[t["track_uri"] for t in p["tracks"]] for p in pls]
        res = self._candidates_batch(seeds, [p.get("name") for p in pls], 500)
        for p, (uris, _) in zip(pls, res, strict=True):
            rows[p["pid"]] = uris
        artist_of = dict(zip(store.tracks["track_uri"], store.tracks["artist_name"], strict=True))
        return evaluate(rows, split.truth, artist_of=artist_of).summary()

    # -- inference --
    def _cache_candidates(self):
        import tensorflow as tf

        n = self.items_.n_candidates
        ids = np.arange(1, n + 1, dtype=np.int32)
        out = [self.candidate_tower_(tf.constant(ids[a:a + 65536])).numpy() for a in range(0, n, 65536)]
        dim = self.config_.embedding_dim + int(self.config_.item_bias)
        self.candidate_embeddings_ = (np.concatenate(out) if out else np.zeros((0, dim), np.float32)).astype(
            np.float32)
        self.candidate_uris_ = self.items_.uris[:n]

    def encode_queries(self, seed_lists: list[list[str]], titles: list[str | None]) -> np.ndarray:
        """Query-tower outputs for playlists, ``[len(seed_lists), embedding_dim]``; unknown seeds are ignored."""
        import tensorflow as tf

        if getattr(self, "_encode_fn", None) is None:
            words, ngrams, tower = self.words_layer_, self.ngrams_layer_, self.query_tower_

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.string)])
            def encode(seeds, titles):
                return tower({"seeds": seeds, "words": words(titles), "ngrams": ngrams(titles)})

            # the concrete function: one signature, so calls skip tf.function's dispatch
            self._encode_fn = encode.get_concrete_function()
        idx = self.items_.index
        ids = [[idx[u] for u in s if u in idx] for s in seed_lists]
        width = max([len(i) for i in ids] + [1])
        arr = np.zeros((len(ids), width), np.int32)
        for r, i in enumerate(ids):
            arr[r, :len(i)] = i
        t = [x if isinstance(x, str) else "" for x in titles]
        return self._encode_fn(tf.constant(arr), tf.constant(t, dtype=tf.string)).numpy()

    def top_batch(self, seed_lists, titles, n) -> list[tuple[np.ndarray, np.ndarray]]:
        """``candidates`` for several queries (e.g. a playlist and its last seeds), as positions in
        ``candidate_uris_`` instead of URIs (for a later stage that keeps integer ids).

        Each query's answer is exactly what it gets alone: the query tower runs once per query (a batched call
        pads the seeds to the longest list and multiplies other matrix shapes, which changes the float sums), and
        the catalog scan is ``modules.scan.scan``. A tower call costs ~0.5 ms; the scan is shared by the batch."""
        from modules.scan import scan

        Q = [self.encode_queries([s], [t])[0] for s, t in zip(seed_lists, titles, strict=True)]
        S = scan(self.candidate_embeddings_, Q)
        nc = len(self.candidate_uris_)
        idx = self.items_.index
        out = []
        for r, seeds in enumerate(seed_lists):
            s = S[r]
            ex = [idx[u] - 1 for u in seeds if u in idx and idx[u] <= nc]
            if ex:
                s[ex] = -np.inf
            m = min(n, nc)
            top = np.argpartition(s, nc - m)[nc - m:] if m < nc else np.arange(nc)  # the m best (no negated copy)
            top = top[np.lexsort((top, -s[top]))]
            top = top[np.isfinite(s[top])]
            out.append((top, s[top].astype(np.float32)))
        return out

    def _candidates_batch(self, seed_lists, titles, n):
        return [(self.candidate_uris_[top].tolist(), scores) for top, scores in self.top_batch(seed_lists, titles, n)]

    def candidates(self, seed_track_uris=(), title: str | None = None, n: int = 1000) -> tuple[list[str], np.ndarray]:
        """The ``n`` best-scoring tracks (seeds excluded) and their scores, best first.

        For a later stage (the hybrid) that re-ranks a top-N: one query-tower call and a numpy matmul over
        the cached candidate embeddings. Unknown seeds are ignored; no seeds and no title still answers.
        """
        self._check_fitted()
        if isinstance(seed_track_uris, str):
            raise TypeError("seed_track_uris must be a list of track URIs, not one string; wrap it in a list.")
        return self._candidates_batch([list(seed_track_uris)], [title], int(n))[0]

    def _recommend(self, seeds, title, k):
        return self._candidates_batch([seeds], [title], k)[0]

    def recommend_batch(self, playlists, k=500, show_progress=False):
        """``recommend`` for challenge-format playlists, 256 per catalog scan (``top_batch``)."""
        playlists = list(playlists)
        self._check_fitted()
        out = []
        for a in tqdm(range(0, len(playlists), 256), desc="recommend", disable=not show_progress):
            chunk = playlists[a:a + 256]
            seeds = [list(dict.fromkeys(t["track_uri"] for t in p.get("tracks", ()))) for p in chunk]
            titles = [p.get("name") if isinstance(p.get("name"), str) and p.get("name").strip() else None
                      for p in chunk]
            for s, (uris, scores) in zip(seeds, self._candidates_batch(seeds, titles, k), strict=True):
                out.append(self._complete(uris, scores, set(s), k))
        return out

    def _check_fitted(self):
        if not getattr(self, "fitted_", False):
            from modules.base import NotFittedError

            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(store) or load(dir).")

    # -- export / bundle --
    def export_saved_model(self, path: str | Path, k: int | None = None) -> Path:
        """Write a SavedModel answering ``serving_default(seed_track_uris, title)`` with plain TensorFlow."""
        import tensorflow as tf

        self._check_fitted()
        path = Path(path)
        k = int(min(k or self.config_.k, len(self.candidate_uris_)))
        module = _ServingModule(self, k)
        with atomic_directory(path) as tmp:
            tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
        return path

    def save(self, bundle_dir: str | Path) -> Path:
        """Write the bundle to ``bundle_dir/two_tower/`` (see the module docstring); returns that folder."""
        import tensorflow as tf

        self._check_fitted()
        root = Path(bundle_dir) / BUNDLE_SUBDIR
        (root / "vocab").mkdir(parents=True, exist_ok=True)
        it = self.items_
        for name, vocab in (("tracks", it.track_vocab), ("artists", it.artist_vocab), ("albums", it.album_vocab),
                            ("words", self.words_layer_.get_vocabulary(include_special_tokens=False)),
                            ("ngrams", self.ngrams_layer_.get_vocabulary(include_special_tokens=False))):
            (root / "vocab" / f"{name}.txt").write_text("".join(f"{v}\n" for v in vocab), encoding="utf-8")
        it.to_frame().to_parquet(root / "items.parquet", index=False)
        (root / "training_curve.json").write_text(json.dumps(
            {"best_epoch": self.best_epoch_, "epochs": self.curve_}, indent=1))
        shutil.rmtree(root / "weights", ignore_errors=True)
        tf.train.Checkpoint(model=self.model_).write(str(root / "weights" / "weights"))
        self.export_saved_model(root / "saved_model")
        import tensorflow_recommenders as tfrs

        meta = {"format": BUNDLE_FORMAT, "config": self.config_.to_dict(), "seed": int(self.seed),
                "fingerprint": self.fingerprint_, "feature_columns": it.feature_columns,
                "feature_mean": it.feature_mean.tolist(), "feature_std": it.feature_std.tolist(),
                "fallback": self.fallback_[:2000], "n_items": int(len(it.uris)),
                "n_candidates": int(it.n_candidates), "best_epoch": self.best_epoch_,
                "optimizer": getattr(self, "optimizer_", None),
                "fit_seconds": getattr(self, "fit_seconds_", None),
                "versions": {"modules": modules.__version__, "tensorflow": tf.__version__,
                             "tensorflow_recommenders": tfrs.__version__}}
        (root / "config.json").write_text(json.dumps(meta, indent=1))
        return root

    @classmethod
    def load(cls, bundle_dir: str | Path) -> TwoTowerRecommender:
        """A fitted recommender from ``bundle_dir`` (the bundle or its ``two_tower/`` folder).

        Raises
        ------
        BundleError
            When files are missing (they are named) or the bundle was written by another format version.
        """
        import tensorflow as tf

        root = Path(bundle_dir)
        if not root.exists():
            raise BundleError(f"two-tower bundle {root} does not exist; train one with: python -m modules "
                              f"train-two-tower --mpd MPD_DIR --out {root}")
        if (root / BUNDLE_SUBDIR).is_dir():
            root = root / BUNDLE_SUBDIR
        missing = [f for f in REQUIRED_FILES if not (root / f).exists()]
        if not missing and not any((root / "weights").glob("weights.data-*")):
            missing.append("weights/weights.data-*")
        if missing:
            raise BundleError(f"two-tower bundle {root} is incomplete: missing {', '.join(missing)}. Re-train "
                              "with: python -m modules train-two-tower --mpd MPD_DIR --out BUNDLE_DIR")
        try:
            meta = json.loads((root / "config.json").read_text())
        except json.JSONDecodeError as err:
            raise BundleError(f"two-tower bundle {root}: config.json is not valid JSON ({err}).") from None
        if meta.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"two-tower bundle {root} has format {meta.get('format')!r}; this code reads "
                              f"{BUNDLE_FORMAT!r}. Re-train it.")
        cfg = TwoTowerConfig.from_dict(meta["config"])
        vocab = {n: [line for line in (root / "vocab" / f"{n}.txt").read_text(encoding="utf-8").split("\n")[:-1]]
                 for n in ("tracks", "artists", "albums", "words", "ngrams")}
        self = cls(cfg, seed=meta.get("seed", 0))
        self.config_ = cfg
        self.items_ = _Items.from_frame(pd.read_parquet(root / "items.parquet"), meta, vocab)
        self.words_layer_, self.ngrams_layer_ = _text_layers(cfg, vocab["words"] or None, vocab["ngrams"] or None)
        self.query_tower_, self.candidate_tower_ = _make_layers(
            self.items_, cfg, self.words_layer_.vocabulary_size(), self.ngrams_layer_.vocabulary_size())
        self.model_ = _make_model(self.query_tower_, self.candidate_tower_, cfg,
                                  np.ones(len(self.items_.uris) + 1, np.float32))
        TwoTowerRecommender._build(self.model_, make_optimizer(cfg), cfg)
        status = tf.train.Checkpoint(model=self.model_).read(str(root / "weights" / "weights"))
        try:
            status.assert_existing_objects_matched()
        except AssertionError as err:
            raise BundleError(f"two-tower bundle {root}: weights do not match config.json/vocab ({err}).") from None
        self.fallback_ = list(meta.get("fallback", []))
        self.best_epoch_ = meta.get("best_epoch")
        self.optimizer_ = meta.get("optimizer")
        self.fingerprint_ = meta.get("fingerprint")
        self.curve_ = json.loads((root / "training_curve.json").read_text())["epochs"] \
            if (root / "training_curve.json").exists() else []
        self._cache_candidates()
        self.fitted_ = True
        return self


def _serving_module_class():
    import tensorflow as tf

    class ServingModule(tf.Module):
        """Plain-TensorFlow serving: URIs -> item ids (hash table), title -> token ids, query tower, top-k."""

        def __init__(self, rec: TwoTowerRecommender, k: int):
            super().__init__(name="two_tower_serving")
            uris = rec.items_.uris.astype(str)
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(uris), tf.range(1, len(uris) + 1, dtype=tf.int32)),
                default_value=0)
            self.words = rec.words_layer_
            self.ngrams = rec.ngrams_layer_
            self.query_tower = rec.query_tower_
            self.candidates = tf.Variable(rec.candidate_embeddings_, trainable=False, name="candidate_embeddings")
            self.candidate_uris = tf.Variable(rec.candidate_uris_.astype(str), trainable=False,
                                              name="candidate_uris")
            self.n_candidates = int(len(rec.candidate_uris_))
            self.k = int(k)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="seed_track_uris"),
                                      tf.TensorSpec([None], tf.string, name="title")])
        def serve(self, seed_track_uris, title):
            items = self.table.lookup(seed_track_uris)
            q = self.query_tower({"seeds": items, "words": self.words(title), "ngrams": self.ngrams(title)})
            scores = tf.matmul(q, self.candidates, transpose_b=True)
            # Seeds are never recommended: their scores go to -inf before the top-k.
            hit = tf.where((items >= 1) & (items <= self.n_candidates))
            cols = tf.cast(tf.gather_nd(items, hit) - 1, tf.int64)
            scores = tf.tensor_scatter_nd_update(scores, tf.stack([hit[:, 0], cols], axis=1),
                                                 tf.fill(tf.shape(cols), float("-inf")))
            top = tf.math.top_k(scores, k=self.k)
            return {"track_uris": tf.gather(self.candidate_uris, top.indices), "scores": top.values}

    return ServingModule


def _ServingModule(rec, k):
    return _serving_module_class()(rec, k)
