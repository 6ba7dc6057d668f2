"""The content model as a source of features: how close each candidate sounds and reads to the playlist.

It proposes no candidates (the pool comes from the two-tower, rules, ALS and popularity); its features are the
audio similarity, the tag similarity, their blend and the blend's z-score (``PART_FEATURES["content"]``), under a
listener's feature weights when given. Its rows also key the audio-taste tables (``sources.taste``). The model
itself is ``modules.content.ContentModel`` (docs/content.md).
"""

from __future__ import annotations

import numpy as np

from modules.base import zscore
from modules.bundle import PART_ENTRIES, Bundle
from modules.hybrid.sources.base import Candidates, CandidateSource, Query


def fit_content(features, store, pids, params: dict | None, validation=None, tuning: dict | None = None,
                show_progress: bool = False):
    """The ``ContentModel`` fitted on ``pids`` of ``store``, and the report of the blend tuning (``None`` when the
    blend was not tuned).

    With ``validation`` (the hybrid's split, whose training playlists are ``pids``) and none of the blend's
    parameters given by the user, the sound/tags blend and the album weight are chosen on its playlists
    (``modules.content.tuning``); with ``tuning`` (that choice's report) they are applied as chosen; otherwise the
    user's parameters (or the model's defaults) hold.
    """
    from modules.base import popularity_order
    from modules.content import ContentModel
    from modules.content.tuning import tune_content, tunes

    params = dict(params or {})
    if not tunes(params):
        return ContentModel(**params).fit(features, store, pids), None
    if tuning is not None:
        return ContentModel(**params, **tuning["chosen_params"]).fit(features, store, pids), tuning
    if validation is None:
        return ContentModel(**params).fit(features, store, pids), None
    chosen, model, report = tune_content(
        lambda album_weight: ContentModel(**params, album_weight=album_weight).fit(features, store, pids),
        validation, popularity_order(store, pids), show_progress=show_progress)
    report["chosen_params"] = chosen
    return model, report


def audio_features(params: dict | None) -> tuple[str, ...]:
    """The audio features a content model with ``params`` is fitted on."""
    from modules.content import ContentModel

    return tuple(ContentModel(**(params or {})).features)


def save_content(model, bundle) -> str:
    model.save(Bundle(bundle).content_dir)
    return PART_ENTRIES["content"]


def load_content(bundle):
    from modules.content import ContentModel

    return ContentModel.load(Bundle(bundle).content_dir)


class ContentSource(CandidateSource):
    """``PART_FEATURES["content"]`` from a fitted ``ContentModel``; ``rows`` maps hybrid ids to its rows (-1 where
    it does not know the track)."""

    name = "content"

    def __init__(self, model, rows: np.ndarray):
        self.model = model
        self.rows = rows

    @staticmethod
    def rows_in(model, uris) -> np.ndarray:
        """``model``'s row of each URI (-1 unknown)."""
        return model.rows_of(uris)

    def rows_of(self, uris) -> np.ndarray:
        return self.rows_in(self.model, uris)

    def features(self, query: Query, candidates: Candidates) -> dict[str, np.ndarray]:
        sim = self.model.similarity(query.seeds, (), query.weights, title=query.title,
                                    candidate_rows=self.rows[candidates.ids])
        return {"cont_num": sim["num"], "cont_text": sim["text"], "cont_combined": sim["combined"],
                "cont_z": zscore(sim["combined"])}
