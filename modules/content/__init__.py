"""Content: tracks compared by how they sound (audio features) and what they are called (text tags).

One file per part:

* ``model.py``: ``ContentModel``, the estimator the hybrid recommender calls (``similarity``, ``explain``,
  ``save``/``load``): cosine over standardized audio features and over TF-IDF tags, blended;
* ``preparation.py``: how the catalog and the training playlists become its track vectors (``title_tokens``);
* ``query.py``: a playlist as a query, its centre in both spaces;
* ``explain.py``: why a candidate fits, in a listener's words (``LISTENER_WORDS``);
* ``persistence.py``: the model's folder on disk (``MODEL_FORMAT``);
* ``recommender.py``: ``ContentRecommender``, the same model alone, ranking the whole catalog;
* ``catalog_map.py``: the app's Explore map, 2-D PCA and KMeans clusters (``feature_map``).

Its error, ``ContentError``, is defined in ``modules.errors`` with all the others and re-exported here.

The on-disk song feature store is ``modules.features`` (used here, not part of this package).
"""

from modules.content.catalog_map import MAP_FEATURES, feature_map, read_feature_map, write_feature_map
from modules.content.explain import LISTENER_WORDS
from modules.content.model import ContentModel
from modules.content.persistence import MODEL_FORMAT
from modules.content.preparation import title_tokens
from modules.content.recommender import ContentRecommender
from modules.errors import ContentError

__all__ = ["LISTENER_WORDS", "MAP_FEATURES", "MODEL_FORMAT", "ContentError", "ContentModel", "ContentRecommender",
           "feature_map", "read_feature_map", "title_tokens", "write_feature_map"]
