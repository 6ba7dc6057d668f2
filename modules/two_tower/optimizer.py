"""Which optimizer trains the two-tower: Keras' Adam, or the same updates computed lazily on large vocabularies.

Adam's step grows with the track vocabulary (it moves every embedding row at every step); ``LazyAdam``
(``lazy_adam.py``) touches only the rows of a batch. ``"auto"`` picks by vocabulary size so that every
published result (all below the threshold) still reproduces bit for bit (docs/two_tower.md, "The optimizer
and the track vocabulary").
"""

from __future__ import annotations

from modules.two_tower.config import TwoTowerConfig

# "auto" trains with Adam up to this many tracks (every published result is below it and reproduces bit for bit)
# and with the lazy form above, where Adam's step grows with the vocabulary (docs/two_tower.md).
LAZY_ADAM_FROM_TRACKS = 200_000


def optimizer_name(cfg: TwoTowerConfig, n_tracks: int) -> str:
    """``cfg.optimizer`` with "auto" resolved for a vocabulary of ``n_tracks`` tracks."""
    if cfg.optimizer != "auto":
        return cfg.optimizer
    return "lazy_adam" if n_tracks > LAZY_ADAM_FROM_TRACKS else "adam"


def make_optimizer(cfg: TwoTowerConfig, n_tracks: int = 0):
    """The training optimizer ``cfg.optimizer`` names (see ``optimizer_name``), at ``cfg.learning_rate``."""
    import tensorflow as tf

    if optimizer_name(cfg, n_tracks) == "lazy_adam":
        from modules.two_tower.lazy_adam import LazyAdam

        return LazyAdam(cfg.learning_rate)
    return tf.keras.optimizers.Adam(cfg.learning_rate)
