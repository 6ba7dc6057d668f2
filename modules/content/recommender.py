"""``ContentRecommender``: the content model alone, as a ``PlaylistRecommender`` ranking the whole catalog.

The nearest tracks to the playlist's centre (``ContentModel.nearest``), optionally nudged by a popularity
prior; the hybrid uses ``ContentModel`` directly, as a re-ranking feature, not this class.

Its sound/tags blend, album weight and popularity prior are chosen on validation playlists by default
(``"auto"``, ``modules.content.tuning``), as the hybrid chooses its content blend: the fixed 0.6/0.4 of the
first worlds ranked far below a tuned setting on MPD-shaped data, where most tracks have no audio features.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import numpy as np

from modules.base import PlaylistRecommender, popularity_order
from modules.content.model import ALBUM_WEIGHT, ContentModel

log = logging.getLogger(__name__)

AUTO = "auto"
DEFAULTS = {"w_num": 0.6, "w_text": 0.4, "album_weight": ALBUM_WEIGHT, "popularity_weight": 0.0}  # without a split


class ContentRecommender(PlaylistRecommender):
    """Nearest tracks to the playlist's centre over the whole catalog (content only, no co-occurrence).

    Parameters
    ----------
    w_num, w_text : float or "auto", default="auto"
        The sound/tags blend (see ``ContentModel``). ``"auto"`` (both) chooses ``w_num`` on validation playlists
        carved from the training playlists (``w_text = 1 - w_num``, grid ``GRID_W_NUM``); one given and the
        other ``"auto"``: the other is ``1 -`` it.
    album_weight : float or "auto", default="auto"
        See ``ContentModel``; ``"auto"`` chooses it on the same validation playlists (``GRID_ALBUM_WEIGHTS``).
    popularity_weight : float or "auto", default="auto"
        Adds ``popularity_weight × log-popularity`` (training playlist counts, scaled to [0, 1]) to the
        similarity; 0 is pure content. ``"auto"`` chooses it on validation (``GRID_POPULARITY_WEIGHTS``).
        Whatever stays ``"auto"`` when the data is too small for a validation split takes
        ``0.6 / 0.4 / ALBUM_WEIGHT / 0.0``. The choice is in ``tuning_`` (``None`` when nothing was tuned).
    query_title_weight, feature_weights, artist_weight, genre_weight, title_weight, min_title_count :
        see ``ContentModel``.
    catalog : path, default=None
        Catalog file (default: the shipped one); a feature store path (``*.sqlite``) works too.
    seed : int, default=0
        Seeds the validation split the ``"auto"`` parameters are chosen on; the model itself has no randomness.

    Examples
    --------
    >>> rec = ContentRecommender().fit(store)                             # doctest: +SKIP
    >>> uris, scores = rec.recommend(["spotify:track:…"], title="chill", k=10)   # doctest: +SKIP
    """

    def __init__(self, *, w_num: float | str = AUTO, w_text: float | str = AUTO, query_title_weight: float = 1.0,
                 feature_weights: Mapping[str, float] | None = None, artist_weight: float = 1.0,
                 genre_weight: float = 1.0, title_weight: float = 1.0, min_title_count: int = 2,
                 popularity_weight: float | str = AUTO, catalog: str | os.PathLike | None = None, seed: int = 0,
                 album_weight: float | str = AUTO):
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
        """Fit the content model on the catalog and the titles of ``store``'s playlists (``pids`` if given),
        after choosing the ``"auto"`` parameters on validation playlists carved from them."""
        self._validate()
        catalog = self.catalog
        if catalog is not None and str(catalog).endswith((".sqlite", ".db")):
            from modules.features import FeatureStore

            catalog = FeatureStore(catalog)
        chosen, self.tuning_ = self._choose(catalog, store, pids)
        self.model_ = self._model(chosen).fit(catalog, store, pids)
        self.popularity_weight_ = chosen["popularity_weight"]
        self.popularity_ = popularity_prior(self.model_, store, pids)
        self.fallback_ = popularity_order(store, pids)
        self.fitted_ = True
        return self

    def _validate(self) -> None:
        for name in ("w_num", "w_text", "album_weight", "popularity_weight"):
            value = getattr(self, name)
            if value != AUTO and (isinstance(value, str) or not np.isfinite(float(value)) or float(value) < 0):
                raise ValueError(f"ContentRecommender: {name} must be a number >= 0 or \"auto\", not {value!r}")

    def _fixed(self) -> dict:
        """The parameters not left to validation; a blend half given fixes the other half."""
        fixed = {k: getattr(self, k) for k in DEFAULTS if getattr(self, k) != AUTO}
        if "w_num" in fixed and "w_text" not in fixed:
            fixed["w_text"] = 1.0 - float(fixed["w_num"])
        if "w_text" in fixed and "w_num" not in fixed:
            fixed["w_num"] = 1.0 - float(fixed["w_text"])
        return fixed

    def _model(self, chosen: dict) -> ContentModel:
        return ContentModel(
            w_num=chosen["w_num"], w_text=chosen["w_text"], query_title_weight=self.query_title_weight,
            feature_weights=self.feature_weights, artist_weight=self.artist_weight, genre_weight=self.genre_weight,
            title_weight=self.title_weight, min_title_count=self.min_title_count, album_weight=chosen["album_weight"])

    def _choose(self, catalog, store, pids) -> tuple[dict, dict | None]:
        """The parameters to fit with, and the tuning report (``None`` when nothing was ``"auto"`` or the data
        has no validation split)."""
        from modules.content.tuning import GRID_ALBUM_WEIGHTS, GRID_POPULARITY_WEIGHTS, GRID_W_NUM, tune_content
        from modules.validation import carve_validation

        fixed = self._fixed()
        if len(fixed) == len(DEFAULTS):
            return fixed, None
        all_pids = store.playlists["pid"].to_numpy() if pids is None else np.unique(np.asarray(pids, np.int64))
        split = carve_validation(store, all_pids, seed=self.seed).split
        if split is None:
            log.info("content: too few playlists for a validation split; %s take their defaults",
                     ", ".join(k for k in DEFAULTS if k not in fixed))
            return {**DEFAULTS, **fixed}, None
        train = split.train_pids

        def fit(album_weight: float) -> ContentModel:
            return self._model({**DEFAULTS, **fixed, "album_weight": album_weight}).fit(catalog, store, train)

        def grid(name: str, default: tuple) -> tuple:
            return (fixed[name],) if name in fixed else default

        chosen, _, report = tune_content(
            fit, split, popularity_order(store, train), w_nums=grid("w_num", GRID_W_NUM),
            album_weights=grid("album_weight", GRID_ALBUM_WEIGHTS),
            popularity=lambda model: popularity_prior(model, store, train),
            popularity_weights=grid("popularity_weight", GRID_POPULARITY_WEIGHTS))
        chosen = {k: float(v) for k, v in {**chosen, **fixed}.items()}
        return chosen, report

    def _recommend(self, seeds: list[str], title: str | None, k: int) -> tuple[list[str], np.ndarray]:
        prior = self.popularity_weight_ * self.popularity_ if self.popularity_weight_ else None
        return self.model_.nearest(seeds, k, title=title, prior=prior)


def popularity_prior(model: ContentModel, store, pids=None) -> np.ndarray:
    """Log playlist counts of ``model``'s tracks in ``store`` (``pids``), scaled to [0, 1], aligned with its
    ``uris_``: what ``popularity_weight`` multiplies."""
    inter = store.interactions(pids)
    counts = np.zeros(len(model.uris_))
    rows = model._rows(inter.track_uris.tolist())
    known = rows >= 0  # a track the model does not hold (no catalog row, no tags) has no prior
    counts[rows[known]] = np.asarray(inter.matrix.sum(axis=0)).ravel()[known]
    return (np.log1p(counts) / max(np.log1p(counts.max()), 1e-12)).astype(np.float32)
