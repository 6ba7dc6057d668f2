"""A small public API for experiments: the steps of ``HybridRecommender.fit``, one at a time.

Why this file exists: the experiments in ``benchmarks/lab/`` compare fusion kinds, blends and extra features on
the validation cuts the hybrid learns from. They need the steps of ``fit`` separately (carve the validation split
and fit the parts outside it, build every cut's candidate set, score a fusion by cross-fitting, choose a blend),
which a user of the recommender never calls: its surface is ``fit``, ``recommend``, ``save`` and ``load``. So the
steps live here, as functions that take the ``HybridRecommender`` as their first argument and call the module
that owns each step (``training``, ``examples``, ``selection``, ``blend``): an experiment runs the code ``fit``
runs, and measures what is trained. Nothing in the product imports this file.

Typical use (``benchmarks/lab/fusion_kinds.py``)::

    h = HybridRecommender(two_tower_bundle=...)
    split = lab.fit_validation_stage(h, store)
    data = lab.fusion_data(h, split, store)
    scores = lab.cross_fitted_scores(h, data, "logistic")
    weights, blended = lab.choose_blend(h, data, scores)
    print(lab.score_cuts(h, data, split, blended)["ALL_CUTS"])
"""

from __future__ import annotations

import numpy as np

from modules.hybrid import blend, examples, selection, training

__all__ = ["audio_taste", "choose_blend", "cross_fitted_scores", "fit_parts", "fit_validation_stage",
           "fusion_data", "fusion_examples", "id_maps", "new_fusion", "score_cuts"]


def fit_validation_stage(h, store, pids=None):
    """``fit`` up to the fusion: carve the validation split of ``pids`` of ``store`` (all its playlists by default),
    train (or reuse) the two-tower holding it out, and fit the other parts and the per-track tables on the
    playlists outside it. Returns the split (``modules.challenge.Split``; ``None`` when the data is too small)."""
    all_pids = store.playlists["pid"].to_numpy() if pids is None else np.unique(np.asarray(pids, np.int64))
    return training.fit_validation_stage(h, store, all_pids)


def fit_parts(h, store, pids) -> None:
    """Fit the per-track tables and the cheap parts (rules, content, ALS) of ``h.parts_`` on ``pids`` of
    ``store``, as ``fit`` does outside the validation split (e.g. on a loaded bundle, whose parts saw every
    training playlist)."""
    training.fit_tables(h, store, pids)
    training.fit_parts(h, store, pids)


def fusion_examples(h, split, store) -> list[examples.Example]:
    """Every validation cut of ``split``: ``(playlist index, official cut?, seeds, title, held-out set)``, the
    ``h.fusion_cuts`` cuts per playlist that ``fit`` learns from (``modules.hybrid.examples``)."""
    return examples.fusion_examples(split, store, h.fusion_cuts, h.seed)


def fusion_data(h, split, store, cuts: list[examples.Example] | None = None) -> dict:
    """Candidate sets, labels and cross-fitting folds of every validation cut (``cuts``, by default
    ``fusion_examples``): the data ``fit`` chooses and fits the fusion on (``modules.hybrid.examples.fusion_data``
    lists the keys)."""
    cuts = fusion_examples(h, split, store) if cuts is None else cuts
    return examples.fusion_data(cuts, h.candidate_set, store, h.show_progress)


def new_fusion(h, kind: str, params: dict | None = None):
    """An unfitted fusion model of ``kind`` (``modules.hybrid.FUSION_KINDS``) with ``params``, seeded as ``fit``
    seeds it."""
    return h._new_fusion(kind, params)


def cross_fitted_scores(h, data: dict, kind: str, params: dict | None = None) -> list[np.ndarray]:
    """Fusion ``kind``'s score of every validation cut of ``data`` (one array per cut, one number per candidate),
    each from a model fitted on the other fold's playlists."""
    return selection.cross_fitted_scores(data, lambda: new_fusion(h, kind, params))


def score_cuts(h, data: dict, split, scores: list[np.ndarray]) -> dict:
    """Metrics of per-cut ``scores``: per category on the official cuts, ``"ALL_CUTS"`` (what ``fit`` chooses
    by) and ``PER_CUT`` (``modules.hybrid.selection.score_cuts``). ``h`` is unused; it keeps the calls alike."""
    return selection.score_cuts(data, split, scores)


def choose_blend(h, data: dict, scores: list[np.ndarray], objective: tuple[str, ...] | None = None,
                 bucket: np.ndarray | None = None) -> tuple[dict, list[np.ndarray]]:
    """The blend weights ``(a, c)`` per playlist-length bucket for per-cut fusion ``scores``, and the blended
    scores with weights chosen on the other fold (``modules.hybrid.blend.choose_blend``); ``a`` stays 0 without
    the ALS part. ``objective`` (metric names) and ``bucket`` (one id per cut) replace the defaults."""
    return blend.choose_blend(data, scores, "als" in h.parts_, objective, bucket)


def source_set(h):
    """The candidate sources of a fitted ``h`` (``modules.hybrid.sources.SourceSet``: ``pooling`` and
    ``featuring`` sources over one id space), built once per fitted state."""
    return h._sources()


def id_maps(h):
    """The id space of the candidates of a fitted ``h`` (``modules.hybrid.ids.IdMaps``: hybrid id ↔ each part's
    rows)."""
    return h._sources().ids


def audio_taste(h):
    """The audio-taste tables of a fitted ``h`` with the content part (``modules.hybrid.sources.taste.AudioTaste``),
    built once."""
    return h._sources().taste.table()
