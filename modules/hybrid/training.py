"""How a hybrid is trained: the validation split, the parts, the fusion, the parts again.

1. carve the validation split from the training playlists (``modules.validation``), train the two-tower (or reuse
   one trained on the same playlists), and fit the cheap parts (rules, content, ALS) and the per-track tables on the
   playlists *outside* the split: a held-out track must not be "popular" or "ruled in" because its own validation
   playlist counted it (``fit_validation_stage``);
2. build every validation cut's candidates and features and choose the fusion and its blend on them
   (``modules.hybrid.examples``, ``modules.hybrid.selection``);
3. refit the cheap parts and the tables on all training playlists, for serving.

The functions set the fitted attributes of the ``HybridRecommender`` they are given.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from modules.base import popularity_order
from modules.hybrid.examples import fusion_data, fusion_examples
from modules.hybrid.features import feature_names, track_tables
from modules.hybrid.fusion import FUSION_KINDS
from modules.hybrid.selection import select_fusion
from modules.hybrid.sources.als import fit_als
from modules.hybrid.sources.content import audio_features, fit_content
from modules.hybrid.sources.rules import check_rule_params, fit_rules
from modules.hybrid.sources.two_tower import fit_two_tower, pretrained_two_tower
from modules.validation import carve_validation

log = logging.getLogger(__name__)


def fit(h, store, pids=None) -> None:
    """Fit the parts, learn the fusion on validation playlists carved from ``store`` (``pids``), refit the cheap
    parts (rules, content, ALS) on all training playlists."""
    t0 = time.perf_counter()
    all_pids = store.playlists["pid"].to_numpy() if pids is None else np.unique(np.asarray(pids, np.int64))
    split = fit_validation_stage(h, store, all_pids)
    h.validation_, h.blend_ = {}, None
    if split is None:
        log.warning("hybrid: no validation playlists; fusion falls back to the two-tower order")
        h.fusion_kind_, h.fusion_ = "two_tower", None
    else:
        learn_fusion(h, split, store)
    fit_tables(h, store, all_pids)
    fit_parts(h, store, all_pids)
    h.fallback_ = popularity_order(store, all_pids)
    h.fit_seconds_ = time.perf_counter() - t0
    h.fitted_ = True


def fit_validation_stage(h, store, all_pids):
    """Carve the validation split, train (or reuse) the two-tower, and fit the other parts and the tables on the
    playlists outside the split; returns the split (``None`` when the data is too small for one)."""
    parts = h._check_params()
    check_rule_params(h.rules)  # before the two-tower trains
    validation = carve_validation(store, all_pids, per_category=h.validation_per_category, seed=h.seed)
    split, per_cat = validation.split, validation.per_category
    inner = split.train_pids if split is not None else all_pids
    h.parts_ = parts
    h.rules_tuning_ = None  # the evidence filter's choice on the validation playlists (fit_parts, inner stage)
    h.content_tuning_ = None  # the content blend's choice, likewise
    h.feature_names_ = feature_names(parts, audio_features(h.content) if "content" in parts and h.audio_taste
                                     else None)
    if h.two_tower_bundle:
        h.two_tower_ = pretrained_two_tower(h.two_tower_bundle, store, inner, per_cat, h.seed)
    else:
        params = {"seed": h.seed, "show_progress": h.show_progress, **(h.two_tower or {})}
        if h.features is not None:
            params.setdefault("features", h.features)
        h.two_tower_ = fit_two_tower(store, all_pids, params, validation)
    if split is not None:
        fit_tables(h, store, inner)
        fit_parts(h, store, inner, split)
    return split


def fit_parts(h, store, pids, split=None) -> None:
    """Fit the cheap parts (rules, content, ALS) that are switched on; with the validation ``split`` (``pids`` its
    training playlists) the rules' evidence filter and the content blend are chosen on it, and later fits reuse
    those choices."""
    h.rules_ = h.content_ = h.als_ = None
    h._sources_ = None
    if "rules" in h.parts_:
        h.rules_, h.rules_tuning_ = fit_rules(store, pids, h.rules, split, getattr(h, "rules_tuning_", None),
                                              h.show_progress)
    if "content" in h.parts_:
        h.content_, h.content_tuning_ = fit_content(h.features, store, pids, h.content, split,
                                                    getattr(h, "content_tuning_", None), h.show_progress)
    if "als" in h.parts_:
        h.als_ = fit_als(store, pids, h.als, h.seed)


def fit_tables(h, store, pids) -> None:
    """The per-track lookups the features read (``modules.hybrid.features.track_tables``)."""
    for name, value in track_tables(store, pids, h.n_popular_candidates).items():
        setattr(h, name, value)
    h._sources_ = None


def learn_fusion(h, split, store) -> None:
    """Choose and fit the fusion and its blend on the validation cuts of ``split``."""
    examples = fusion_examples(split, store, h.fusion_cuts, h.seed)
    data = fusion_data(examples, h.candidate_set, store, h.show_progress)
    kinds = FUSION_KINDS if h.fusion == "auto" else (h.fusion,)
    chosen = select_fusion(data, split, kinds, h._new_fusion, "als" in h.parts_, h.show_progress)
    h.fusion_kind_, h.fusion_, h.blend_, h.validation_ = chosen.kind, chosen.model, chosen.weights, chosen.validation
