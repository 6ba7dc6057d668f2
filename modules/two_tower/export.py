"""The SavedModel export: the artifact answers a query with plain TensorFlow, no project code.

``serving_default(seed_track_uris [batch, None] string padded with "", title [batch] string)`` ->
``{"track_uris": [batch, k] string, "scores": [batch, k] float32}``, seeds excluded. URIs become item ids
through a hash table, titles go through the same ``TextVectorization`` layers as in training, the query tower
runs, and the top k of its dot products with the cached candidate embeddings are returned. The embedding
tables and the candidate table are kept as float16 (``towers.TABLE_DTYPE``) and read as float32; the Python
model loads its query tower and candidate table from this SavedModel's variables (``bundle.py``)::

    serve = tf.saved_model.load(path).signatures["serving_default"]
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf  # (the package's __init__, run first, sets TF_USE_LEGACY_KERAS)

from modules.atomic import atomic_directory
from modules.two_tower.towers import TABLE_DTYPE


class ServingModule(tf.Module):
    """Plain-TensorFlow serving: URIs -> item ids (hash table), title -> token ids, query tower, top-k."""

    def __init__(self, rec, k: int):
        super().__init__(name="two_tower_serving")
        # every known track's URI, once: the hash table's keys, and (the candidates being the first
        # n_candidates items) what the top-k positions are read from
        self.uris = tf.constant(rec.items_.uris.astype(str))
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self.uris, tf.range(1, len(rec.items_.uris) + 1, dtype=tf.int32)),
            default_value=0)
        self.words = rec.words_layer_
        self.ngrams = rec.ngrams_layer_
        self.query_tower = rec.query_tower_
        self.candidates = tf.Variable(rec.candidate_embeddings_.astype(TABLE_DTYPE), trainable=False,
                                      name="candidate_embeddings")
        self.n_candidates = int(len(rec.candidate_uris_))
        self.k = int(k)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="seed_track_uris"),
                                  tf.TensorSpec([None], tf.string, name="title")])
    def serve(self, seed_track_uris, title):
        items = self.table.lookup(seed_track_uris)
        q = self.query_tower({"seeds": items, "words": self.words(title), "ngrams": self.ngrams(title)})
        scores = tf.matmul(q, tf.cast(self.candidates, tf.float32), transpose_b=True)
        # Seeds are never recommended: their scores go to -inf before the top-k.
        hit = tf.where((items >= 1) & (items <= self.n_candidates))
        cols = tf.cast(tf.gather_nd(items, hit) - 1, tf.int64)
        scores = tf.tensor_scatter_nd_update(scores, tf.stack([hit[:, 0], cols], axis=1),
                                             tf.fill(tf.shape(cols), float("-inf")))
        top = tf.math.top_k(scores, k=self.k)
        return {"track_uris": tf.gather(self.uris, top.indices), "scores": top.values}


def export_saved_model(rec, path: str | Path, k: int) -> Path:
    """Write ``rec``'s (a fitted ``TwoTowerRecommender``) SavedModel to ``path``, atomically; returns ``path``."""
    path = Path(path)
    module = ServingModule(rec, k)
    with atomic_directory(path) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
    return path
