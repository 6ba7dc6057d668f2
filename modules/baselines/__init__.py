"""The peers every result is reported against: popularity, item-kNN, implicit ALS and the POC's ID two-tower.

A method counts as better only side by side with these, on the same split, fitted on the same training
playlists (docs/two_tower.md). Each is a ``PlaylistRecommender`` (``modules.base``): ``fit(store, pids=None)``
then ``recommend(seeds, title, k)``, deterministic for a given ``seed``. One module per method, behind a small
shared base:

* ``popularity.py``: ``PopularityRecommender``, the most frequent tracks;
* ``itemknn.py``: ``ItemKNNRecommender``, item-item co-occurrence (cosine or conditional probability);
* ``als.py``: ``ALSRecommender``, ``implicit`` ALS with new playlists folded in from their seeds;
* ``poc.py``: ``PlaylistIdTwoTowerRecommender``, the proof of concept that embeds playlist *IDs*;
* ``shared.py``: the training matrix and the fit steps every baseline shares (``_Baseline``);
* ``title_popularity.py``: the answer for title-only playlists, in every baseline (``normalize_title``);
* ``validation.py``: ``validation_split``, ``validate`` and ``grid_search`` on training playlists only.

The private classes are re-exported so that bundles pickled before ``modules.baselines`` was a package
(``bundle convert --trust-pickles``) still load.
"""

from modules.baselines.als import ALS_FORMAT, ALS_PARAMS, ALSRecommender
from modules.baselines.itemknn import ItemKNNRecommender
from modules.baselines.poc import PlaylistIdTwoTowerRecommender
from modules.baselines.popularity import PopularityRecommender
from modules.baselines.shared import _Baseline, _Matrix
from modules.baselines.title_popularity import _TitleIndex, _TitlePopularity, normalize_title
from modules.baselines.validation import grid_search, validate, validation_split

__all__ = ["ALS_FORMAT", "ALS_PARAMS", "ALSRecommender", "ItemKNNRecommender", "PlaylistIdTwoTowerRecommender",
           "PopularityRecommender", "_Baseline", "_Matrix", "_TitleIndex", "_TitlePopularity", "grid_search",
           "normalize_title", "validate", "validation_split"]
