"""``ContentRecommender``: the content model alone, as a ``PlaylistRecommender`` ranking the whole catalog.

The nearest tracks to the playlist's centre (``ContentModel.nearest``), optionally nudged by a popularity
prior; the hybrid uses ``ContentModel`` directly, as a re-ranking feature, not this class.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from modules.base import PlaylistRecommender, popularity_order
from modules.content.model import ALBUM_WEIGHT, ContentModel


class ContentRecommender(PlaylistRecommender):
    """Nearest tracks to the playlist's centre over the whole catalog (content only, no co-occurrence).

    Parameters
    ----------
    w_num, w_text, query_title_weight, feature_weights, artist_weight, genre_weight, title_weight,
    min_title_count, album_weight : see ``ContentModel``.
    popularity_weight : float, default=0.0
        Adds ``popularity_weight × log-popularity`` (training playlist counts, scaled to [0, 1]) to the
        similarity; 0 is pure content.
    catalog : path, default=None
        Catalog file (default: the shipped one); a feature store path (``*.sqlite``) works too.
    seed : int, default=0
        Accepted for the shared ``submit`` surface; the model has no randomness.

    Examples
    --------
    >>> rec = ContentRecommender().fit(store)                             # doctest: +SKIP
    >>> uris, scores = rec.recommend(["spotify:track:…"], title="chill", k=10)   # doctest: +SKIP
    """

    def __init__(self, *, w_num: float = 0.6, w_text: float = 0.4, query_title_weight: float = 1.0,
                 feature_weights: Mapping[str, float] | None = None, artist_weight: float = 1.0,
                 genre_weight: float = 1.0, title_weight: float = 1.0, min_title_count: int = 2,
                 popularity_weight: float = 0.0, catalog: str | os.PathLike | None = None, seed: int = 0,
                 album_weight: float = ALBUM_WEIGHT):
        self.w_num = w_num
        self.w_text = w_text
        self.query_title_weight = query_title_weight
        self.feature_weights = feature_weights
        self.artist_weight = artist_weight
        self.genre_weight = genre_weight
        self.title_weight = title_weight
        self.min_title_count = min_title_count
        self.popularity_weight = popularity_weight
        self.catalog = catalog
        self.seed = seed
        self.album_weight = album_weight

    def fit(self, store, pids=None) -> ContentRecommender:
        """Fit the content model on the catalog and the titles of ``store``'s playlists (``pids`` if given)."""
        catalog = self.catalog
        if catalog is not None and str(catalog).endswith((".sqlite", ".db")):
            from modules.features import FeatureStore

            catalog = FeatureStore(catalog)
        self.model_ = ContentModel(
            w_num=self.w_num, w_text=self.w_text, query_title_weight=self.query_title_weight,
            feature_weights=self.feature_weights, artist_weight=self.artist_weight, genre_weight=self.genre_weight,
            title_weight=self.title_weight, min_title_count=self.min_title_count,
            album_weight=self.album_weight).fit(catalog, store, pids)
        inter = store.interactions(pids)
        counts = np.zeros(len(self.model_.uris_))
        rows = self.model_._rows(inter.track_uris.tolist())
        counts[rows] = np.asarray(inter.matrix.sum(axis=0)).ravel()
        self.popularity_ = (np.log1p(counts) / max(np.log1p(counts.max()), 1e-12)).astype(np.float32)
        self.fallback_ = popularity_order(store, pids)
        self.fitted_ = True
        return self

    def _recommend(self, seeds: list[str], title: str | None, k: int) -> tuple[list[str], np.ndarray]:
        prior = self.popularity_weight * self.popularity_ if self.popularity_weight else None
        return self.model_.nearest(seeds, k, title=title, prior=prior)
