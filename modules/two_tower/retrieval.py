"""The TFRS retrieval model: the two towers joined by the ``Retrieval`` task, and so the training loss.

The loss is an in-batch softmax (each example's negatives are the other targets of its batch, plus
``mixed_negatives`` uniform ones) with the sampling-bias (logQ) correction for popularity, accidental hits
removed and in-batch candidates that are in the query's own context masked (a track the playlist already holds
is no negative for it).
Towers and task are constructor arguments, as in TFRS' own models.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf  # (the package's __init__, run first, sets TF_USE_LEGACY_KERAS)
import tensorflow_recommenders as tfrs

from modules.two_tower.config import TwoTowerConfig


class TwoTowerModel(tfrs.models.Model):
    """``compute_loss(batch)`` of a batch of ``examples.Examples``: query tower on the context and title,
    candidate tower on the targets (and extra negatives), then the task.

    ``sampling_prob`` [n_items + 1]: expected copies of each item in a batch's candidate pool (logQ).
    """

    def __init__(self, query_tower, candidate_tower, task, cfg: TwoTowerConfig, sampling_prob: np.ndarray):
        super().__init__()
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.task = task
        self.sampling_prob = tf.constant(sampling_prob.astype(np.float32))
        self.cfg = cfg

    def embed(self, batch):
        """The batch's query vectors, candidate vectors and candidate ids (its targets, then any uniform
        negatives)."""
        q = self.query_tower(batch, seed_drop=batch.get("seed_drop"), dropout_seed=batch.get("rng"))
        ids = batch["target"]
        drop = batch.get("target_drop")
        if "negatives" in batch:  # mixed negative sampling: uniform extra candidates after the targets
            neg = tf.reshape(batch["negatives"], [-1])
            ids = tf.concat([ids, neg], axis=0)
            if drop is not None:
                drop = tf.concat([drop, tf.zeros_like(neg, dtype=tf.bool)], axis=0)
        return q, self.candidate_tower(ids, drop=drop), ids

    def batch_loss(self, q, c, ids, batch):
        """The in-batch softmax loss of queries ``q`` against candidates ``c`` (ids ``ids``, each query's own
        target first in line), log-Q corrected, with candidates already in a query's context masked out."""
        cfg = self.cfg
        prob = None
        if cfg.logq_weight > 0:
            # Expected number of copies of each candidate in a batch's pool (targets are drawn by
            # popularity, the extra negatives uniformly); constant factors cancel in the softmax.
            prob = tf.pow(tf.gather(self.sampling_prob, ids), float(cfg.logq_weight))
        seeds, n_q = batch["seeds"], tf.shape(batch["target"])[0]
        in_ctx = tf.reduce_any(seeds[:, :, None] == ids[None, None, :], axis=1)
        mask = ~(in_ctx & ~tf.eye(n_q, tf.shape(ids)[0], dtype=tf.bool))
        return self.task(q, c, candidate_sampling_probability=prob, candidate_ids=ids,
                         compute_metrics=False, compute_batch_metrics=False, score_mask=mask)

    def compute_loss(self, batch, training=False):
        q, c, ids = self.embed(batch)
        return self.batch_loss(q, c, ids, batch)


def make_model(query_tower, candidate_tower, cfg: TwoTowerConfig, sampling_prob: np.ndarray) -> TwoTowerModel:
    """The retrieval model for two towers: an in-batch softmax over cosines divided by ``cfg.temperature``."""
    task = tfrs.tasks.Retrieval(temperature=cfg.temperature, remove_accidental_hits=True)
    return TwoTowerModel(query_tower, candidate_tower, task, cfg, sampling_prob)
