"""``PlaylistIdTwoTowerRecommender``: the original proof of concept, a TFRS two-tower over playlist *IDs*.

A playlist it has not seen can only be answered with the out-of-vocabulary ID's vector, i.e. the same,
essentially popularity, list for every new playlist. It is here to show what the inductive tower
(``modules.two_tower``) buys.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from modules.baselines.shared import _Baseline, _check_param

log = logging.getLogger(__name__)


class PlaylistIdTwoTowerRecommender(_Baseline):
    """The proof of concept: a TFRS two-tower whose query tower embeds the playlist ID.

    Trained like the TFRS retrieval tutorial on (playlist ID, track) pairs with in-batch softmax. A
    playlist outside training has no ID embedding; the honest answer without retraining is the
    out-of-vocabulary ID's vector, which is trained on the ``oov_rate`` share of examples whose ID is masked,
    so it learns the average playlist: every new playlist gets the same, popularity-like, ranking (seeds are
    only excluded, never used; titles are not used).

    Parameters
    ----------
    embedding_dim : int, default=32
    epochs : int, default=3
    batch_size : int, default=1024
    learning_rate : float, default=0.1
        Adagrad step size (as in the TFRS tutorial).
    oov_rate : float, default=0.05
        Share of training examples whose playlist ID is replaced by the OOV token.
    show_progress : bool, default=False
    seed : int, default=0
    """

    def __init__(self, *, embedding_dim: int = 32, epochs: int = 3, batch_size: int = 1024,
                 learning_rate: float = 0.1, oov_rate: float = 0.05, show_progress: bool = False, seed: int = 0):
        self.embedding_dim = embedding_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.oov_rate = oov_rate
        self.show_progress = show_progress
        self.seed = seed

    def fit(self, store, pids=None):
        _check_param("PlaylistIdTwoTowerRecommender", "oov_rate", self.oov_rate,
                     0.0 < float(self.oov_rate) < 1.0, "a float in (0, 1)")
        import tensorflow as tf
        import tensorflow_recommenders as tfrs

        import modules  # noqa: F401  (sets TF_USE_LEGACY_KERAS; already imported with this module anyway)

        self._fit_common(store, pids)
        m = self.matrix_
        tf.keras.utils.set_random_seed(self.seed)
        rows, cols = m.X.nonzero()
        pid_str = np.array([str(p) for p in m.pids.tolist()], dtype=object)
        rng = np.random.default_rng(self.seed)
        playlist_ids = pid_str[rows].copy()
        playlist_ids[rng.random(len(rows)) < self.oov_rate] = "[OOV]"
        d = self.embedding_dim
        query = tf.keras.Sequential([
            tf.keras.layers.StringLookup(vocabulary=pid_str.tolist(), mask_token=None),
            tf.keras.layers.Embedding(len(pid_str) + 1, d)])
        cand = tf.keras.Sequential([
            tf.keras.layers.StringLookup(vocabulary=m.uris.tolist(), mask_token=None),
            tf.keras.layers.Embedding(len(m.uris) + 1, d)])

        class PocModel(tfrs.models.Model):
            def __init__(self):
                super().__init__()
                self.query, self.cand = query, cand
                self.task = tfrs.tasks.Retrieval()

            def compute_loss(self, features, training=False):
                return self.task(self.query(features["pid"]), self.cand(features["track"]),
                                 compute_metrics=False)

        model = PocModel()
        model.compile(optimizer=tf.keras.optimizers.Adagrad(self.learning_rate))
        order = rng.permutation(len(rows))
        ds = tf.data.Dataset.from_tensor_slices({"pid": playlist_ids[order].astype(str),
                                                 "track": m.uris[cols[order]].astype(str)})
        ds = ds.shuffle(100_000, seed=self.seed, reshuffle_each_iteration=True).batch(self.batch_size)
        t0 = time.perf_counter()
        hist = model.fit(ds, epochs=self.epochs, verbose=1 if self.show_progress else 0)
        log.info("POC two-tower: %d pairs x %d epochs in %.1f s, loss %s", len(rows), self.epochs,
                 time.perf_counter() - t0, [round(x, 1) for x in hist.history["loss"]])
        # Every playlist outside training maps to the OOV ID: one query vector, one ranking for all.
        q = query(tf.constant(["[never-seen-playlist]"])).numpy()[0]
        c = cand(tf.constant(m.uris.astype(str))).numpy()
        self.model_ = model
        self.query_vector_ = q
        scores = c @ q
        self.order_ = np.lexsort((m.uris, -scores))
        self.scores_ = scores.astype(np.float32)
        self.fitted_ = True
        return self

    def _recommend(self, seeds, title, k):
        top = self.order_[: k + len(seeds)]
        return self.matrix_.uris[top].tolist(), self.scores_[top]
