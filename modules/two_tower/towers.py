"""The two towers as small Keras layers: an item encoder, the query tower and the candidate tower.

* ``ItemEncoder``: item ids -> track + artist + album embeddings, plus audio features where known (a learned
  "missing" vector where not); seeds and candidates share one by default.
* ``QueryTower``: what a challenge playlist has (its seeds, masked-mean pooled over any number including none,
  the per-dimension max as an extra input, and its title's words and trigrams) mixed by a small MLP whose
  output is added to the pooled seed vector.
* ``CandidateTower``: the item encoder's vector, plus a learned per-track/per-artist score bias carried as one
  extra dimension (the query side carries a constant 1), so retrieval stays one dot product.

This file imports TensorFlow when it is imported; the package imports it only when a model is built, so
``import modules.two_tower`` stays light.
"""

from __future__ import annotations

import tensorflow as tf  # (the package's __init__, run first, sets TF_USE_LEGACY_KERAS)

from modules.two_tower.config import TwoTowerConfig
from modules.two_tower.items import ItemTable


class StoredTable(tf.keras.layers.Layer):
    """An embedding table kept as ``dtype`` (float16 in a bundle: half the bytes on disk and in memory) and
    read as float32: ``ids`` [...] -> [..., dim]. Training uses Keras' ``Embedding`` (float32); the bundle's
    towers use this layer, with the trained values rounded to ``dtype``. Its one variable is named
    ``embeddings``, as ``Embedding``'s, so both keep the same place in a checkpoint."""

    def __init__(self, rows: int, dim: int, name: str, dtype_stored: str = "float16"):
        super().__init__(name=name)
        self.rows, self.dim, self.dtype_stored = int(rows), int(dim), dtype_stored

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=(self.rows, self.dim), initializer="zeros",
                                          dtype=self.dtype_stored, trainable=False, experimental_autocast=False)
        super().build(input_shape)

    def call(self, ids):
        return tf.cast(tf.gather(self.embeddings, ids), tf.float32)


def table(rows: int, dim: int, name: str, stored: str | None):
    """Keras' ``Embedding`` to train (``stored`` None), a ``StoredTable`` of dtype ``stored`` to serve."""
    if stored is None:
        return tf.keras.layers.Embedding(rows, dim, name=name)
    return StoredTable(rows, dim, name, stored)


def masked_mean(x, mask):
    """Mean over axis 1 of ``x`` [B, L, d] where ``mask`` [B, L] is true; zeros for an empty row."""
    m = tf.cast(mask, x.dtype)[..., None]
    return tf.reduce_sum(x * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)


class ItemEncoder(tf.keras.layers.Layer):
    """Item ids [...] -> [..., d]: track + artist + album embeddings (+ audio, or the "missing" vector)."""

    def __init__(self, items: ItemTable, cfg: TwoTowerConfig, name: str, stored: str | None = None):
        super().__init__(name=name)
        d = cfg.embedding_dim
        self.track_of = tf.constant(items.track)
        self.track_oov_of = tf.constant(items.track_oov)
        self.artist_of = tf.constant(items.artist)
        self.album_of = tf.constant(items.album)
        self.track_emb = table(len(items.track_vocab) + cfg.track_oov_buckets + 1, d, "track", stored)
        self.artist_emb = table(len(items.artist_vocab) + cfg.artist_oov_buckets + 1, d, "artist", stored)
        self.album_emb = table(len(items.album_vocab) + cfg.album_oov_buckets + 1, d, "album", stored)
        self.use_audio = cfg.audio and items.features.shape[1] > 0
        if self.use_audio:  # a bundle keeps the standardized features as it keeps the tables (``stored``)
            self.features_of = tf.constant(items.features.astype(stored or items.features.dtype))
            self.has_features_of = tf.constant(items.has_features)
            self.audio = tf.keras.layers.Dense(d, name="audio")
            self.missing = self.add_weight(name="missing_audio", shape=(d,), initializer="zeros")

    def call(self, ids, drop=None):
        """``drop`` [...] bool: read those items' track as its OOV bucket (ID dropout, training only)."""
        t = tf.gather(self.track_of, ids)
        if drop is not None:
            t = tf.where(drop, tf.gather(self.track_oov_of, ids), t)
        e = (self.track_emb(t) + self.artist_emb(tf.gather(self.artist_of, ids))
             + self.album_emb(tf.gather(self.album_of, ids)))
        if self.use_audio:
            a = self.audio(tf.cast(tf.gather(self.features_of, ids), tf.float32))
            e += tf.where(tf.gather(self.has_features_of, ids)[..., None], a, self.missing)
        return e


class QueryTower(tf.keras.layers.Layer):
    """{"seeds": [B, S] item ids (0 = padding), "words": [B, W], "ngrams": [B, N]} -> [B, d] (+1 with a bias)."""

    def __init__(self, seed_encoder: ItemEncoder, cfg: TwoTowerConfig, n_words: int, n_ngrams: int,
                 stored: str | None = None):
        super().__init__(name="query_tower")
        d = cfg.embedding_dim
        self.cfg = cfg
        self.seed_encoder = seed_encoder
        self.word_emb = table(n_words, d, "words", stored)
        self.ngram_emb = table(n_ngrams, d, "ngrams", stored)
        self.hidden = tf.keras.layers.Dense(cfg.hidden_dim, activation="relu", name="hidden")
        self.out = tf.keras.layers.Dense(d, name="out")

    def call(self, inputs, seed_drop=None, dropout_seed=None):
        """``seed_drop``: ID dropout of the seeds; ``dropout_seed`` [B, 2]: seeds of the MLP-input dropout."""
        cfg = self.cfg
        seeds, words, ngrams = inputs["seeds"], inputs["words"], inputs["ngrams"]
        seed_mask = seeds > 0
        e = self.seed_encoder(seeds, seed_drop)
        pooled = masked_mean(e, seed_mask)
        w = masked_mean(self.word_emb(words), words > 0)
        g = masked_mean(self.ngram_emb(ngrams), ngrams > 0)
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
        q = tf.math.l2_normalize(q, axis=-1)
        if cfg.item_bias:  # a constant 1 meets the candidate's bias in the dot product
            q = tf.concat([q, tf.ones_like(q[:, :1])], axis=1)
        return q


class CandidateTower(tf.keras.layers.Layer):
    """Item ids [B] -> [B, d] (+1 with a bias)."""

    def __init__(self, encoder: ItemEncoder, items: ItemTable, cfg: TwoTowerConfig):
        super().__init__(name="candidate_tower")
        self.cfg = cfg
        self.encoder = encoder
        if cfg.item_bias:
            self.track_bias = tf.keras.layers.Embedding(
                len(items.track_vocab) + cfg.track_oov_buckets + 1, 1, embeddings_initializer="zeros",
                name="track_bias")
            self.artist_bias = tf.keras.layers.Embedding(
                len(items.artist_vocab) + cfg.artist_oov_buckets + 1, 1, embeddings_initializer="zeros",
                name="artist_bias")

    def call(self, ids, drop=None):
        cfg = self.cfg
        c = self.encoder(ids, drop)
        c = tf.math.l2_normalize(c, axis=-1)
        if cfg.item_bias:
            # A learned prior per track (and artist), outside the cosine: normalized vectors alone
            # cannot say that one track is more likely than another whatever the playlist.
            t = tf.gather(self.encoder.track_of, ids)
            if drop is not None:
                t = tf.where(drop, tf.gather(self.encoder.track_oov_of, ids), t)
            b = self.track_bias(t)[..., 0] + self.artist_bias(tf.gather(self.encoder.artist_of, ids))[..., 0]
            # the task divides all scores by the temperature
            c = tf.concat([c, (b * cfg.temperature)[..., None]], axis=-1)
        return c


def make_towers(items: ItemTable, cfg: TwoTowerConfig, n_words: int, n_ngrams: int):
    """(query tower, candidate tower) for an item table and title vocabularies of ``n_words`` / ``n_ngrams``."""
    cand_encoder = ItemEncoder(items, cfg, "candidate_items")
    seed_encoder = cand_encoder if cfg.share_item_embeddings else ItemEncoder(items, cfg, "seed_items")
    return QueryTower(seed_encoder, cfg, n_words, n_ngrams), CandidateTower(cand_encoder, items, cfg)


TABLE_DTYPE = "float16"  # how a bundle keeps the query tower's embedding tables and the candidate table


def serving_query_tower(items: ItemTable, cfg: TwoTowerConfig, n_words: int, n_ngrams: int,
                        trained: QueryTower | None = None) -> QueryTower:
    """The query tower a bundle holds: its embedding tables as ``TABLE_DTYPE``, built (every variable exists,
    so a checkpoint can be read into it) and, given the ``trained`` tower, holding its values (the tables
    rounded to ``TABLE_DTYPE``, the dense layers as they are)."""
    tower = QueryTower(ItemEncoder(items, cfg, "seed_items", stored=TABLE_DTYPE), cfg, n_words, n_ngrams,
                       stored=TABLE_DTYPE)
    tower({"seeds": tf.zeros((1, 1), tf.int32), "words": tf.zeros((1, cfg.max_title_words), tf.int32),
           "ngrams": tf.zeros((1, cfg.max_title_ngrams), tf.int32)})
    if trained is not None:
        def key(v):  # the layer and the variable: unique in a query tower, whatever its encoder is called
            return "/".join(v.name.split("/")[-2:])

        src = {key(v): v for v in trained.variables}
        dst = {key(v): v for v in tower.variables}
        if sorted(src) != sorted(dst) or any(tuple(src[k].shape) != tuple(dst[k].shape) for k in src):
            raise ValueError(f"the trained query tower and its serving copy differ in variables ({sorted(src)} "
                             f"vs {sorted(dst)})")
        for k, d in dst.items():
            d.assign(tf.cast(src[k], d.dtype))
    return tower
