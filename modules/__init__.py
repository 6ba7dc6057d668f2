"""Open playlist-continuation engine.

Stages, one module each, data flowing one way::

    world/mpd -> store -> challenge -> (two_tower, rules, content, baselines) -> recommender
                                   -> metrics

TensorFlow Recommenders 0.7.x needs Keras 2 (``tf-keras``). The switch below must be set before
TensorFlow is first imported, so it lives here, where every entry point passes first.
"""

import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
