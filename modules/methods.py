"""Every recommender by name, imported lazily (so naming one does not import TensorFlow).

Each entry is ``"module:Class"``; the class is a ``modules.base.PlaylistRecommender`` whose constructor takes
keyword parameters (``seed`` among them where it draws randomness). Used by ``python -m modules submit`` and
the quality benchmark.
"""

from __future__ import annotations

import importlib

from modules.errors import InputError

METHODS: dict[str, str] = {
    "popularity": "modules.baselines:PopularityRecommender",
    "itemknn": "modules.baselines:ItemKNNRecommender",
    "als": "modules.baselines:ALSRecommender",
    "poc": "modules.baselines:PlaylistIdTwoTowerRecommender",
    "two-tower": "modules.two_tower:TwoTowerRecommender",
    "rules": "modules.rules:RuleRecommender",
    "content": "modules.content:ContentRecommender",
    "hybrid": "modules.hybrid:HybridRecommender",
}


def method_class(name: str):
    """The recommender class registered under ``name``."""
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}.")
    module, cls = METHODS[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as err:
        raise InputError(f"method {name!r} is not available in this version ({err}).") from None


def make_method(name: str, **params):
    """An unfitted recommender by name, with ``params`` passed to its constructor."""
    return method_class(name)(**params)
