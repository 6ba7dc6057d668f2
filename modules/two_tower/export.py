"""The SavedModel export: the artifact answers a query with plain TensorFlow, no project code.

``serving_default(seed_track_uris [batch, None] string padded with "", title [batch] string)`` ->
``{"track_uris": [batch, k] string, "scores": [batch, k] float32}``, seeds excluded. URIs become item ids
through a hash table, titles go through the same ``TextVectorization`` layers as in training, the query tower
runs, and the top k of its dot products with the cached candidate embeddings are returned. The embedding
tables and the candidate table are kept as float16 (``towers.TABLE_DTYPE``) and read as float32; the Python
model loads its query tower and candidate table from this SavedModel's variables (``bundle.py``).

Every call reads the whole candidate table: cast from float16 on each call, that cast cost about as much as the
product (``benchmarks/predict_cost.py``). So the SavedModel holds a float32 copy made once, when it is loaded
(``Float32Copy``: a resource whose initializer runs after the variables are restored, as a lookup table's does, in
TensorFlow Serving as in ``tf.saved_model.load``); the files keep only the float16 table, so the bundle does not
grow. The scores are a plain float32 product (what NumPy gives); with the cast TensorFlow had fused it into the
product and summed in another order, so scores moved in their last bits (at most ~1e-7 on the demo bundle)::

    serve = tf.saved_model.load(path).signatures["serving_default"]
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf  # (the package's __init__, run first, sets TF_USE_LEGACY_KERAS)

from modules.atomic import atomic_directory
from modules.two_tower.towers import TABLE_DTYPE


class Float32Copy(tf.saved_model.experimental.TrackableResource):
    """A float32 copy of a float16 variable, made when the SavedModel is loaded and never saved.

    ``read()`` gives the copy. Its initializer (cast the variable) runs once per load, after the variables are
    restored: ``tf.saved_model.load`` and TensorFlow Serving both run a SavedModel's resource initializers then,
    as they do for the URI hash table. The files hold only the float16 variable, so the bundle does not grow and
    ``TwoTowerRecommender.load`` reads the same checkpoint as before.
    """

    def __init__(self, source: tf.Variable):
        self._source = source
        super().__init__()
        self._initialize()  # usable before it is saved too, as a lookup table is

    def _create_resource(self):
        return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=self._source.shape, shared_name="")

    def _initialize(self):
        return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=tf.cast(self._source, tf.float32))

    def read(self) -> tf.Tensor:
        return tf.raw_ops.ReadVariableOp(resource=self.resource_handle, dtype=tf.float32)


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
        self.candidates_f32 = Float32Copy(self.candidates)  # what serve multiplies by: no cast per call
        self.n_candidates = int(len(rec.candidate_uris_))
        self.k = int(k)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="seed_track_uris"),
                                  tf.TensorSpec([None], tf.string, name="title")])
    def serve(self, seed_track_uris, title):
        items = self.table.lookup(seed_track_uris)
        q = self.query_tower({"seeds": items, "words": self.words(title), "ngrams": self.ngrams(title)})
        scores = tf.matmul(q, self.candidates_f32.read(), transpose_b=True)
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
