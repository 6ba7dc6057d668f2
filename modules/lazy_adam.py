"""Moved to ``modules.two_tower.lazy_adam``; this name keeps ``from modules.lazy_adam import LazyAdam`` working."""

from modules.two_tower.lazy_adam import LazyAdam

__all__ = ["LazyAdam"]
