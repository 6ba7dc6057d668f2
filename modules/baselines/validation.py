"""Validation of a baseline on a split carved from the training playlists (never the test split), and a grid search.

Used by the tuning benchmarks to choose each baseline's defaults (docs/two_tower.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

from tqdm import tqdm

from modules.base import PlaylistRecommender, recommend_challenge
from modules.challenge import Split, split_store
from modules.metrics import evaluate

log = logging.getLogger(__name__)


def validation_split(store, *, per_category: int, seed: int = 0, pids=None) -> Split:
    """A validation split carved from training playlists (``split_store``), never from the test split."""
    return split_store(store, per_category=per_category, seed=seed, pids=pids)


def validate(recommender: PlaylistRecommender, store, split: Split, *, fit: bool = True,
             show_progress: bool = False) -> dict[str, dict[str, float]]:
    """Fit ``recommender`` on ``split.train_pids`` (if ``fit``) and score it on the split's challenge.

    Returns ``Evaluation.summary()``: ``{"ALL": {...}, "<category>": {...}}``.
    """
    if fit:
        recommender.fit(store, split.train_pids)
    rows = recommend_challenge(recommender, split.challenge, None, show_progress=show_progress)
    artist_of = dict(zip(store.tracks["track_uri"], store.tracks["artist_name"], strict=True))
    return evaluate(rows, split.truth, artist_of=artist_of).summary()


def grid_search(make: Callable[..., PlaylistRecommender], grid: Iterable[Mapping], store, split: Split, *,
                metric: str = "ndcg", show_progress: bool = True) -> tuple[dict, list[dict]]:
    """Try each parameter set of ``grid`` on a validation split; returns ``(best params, rows)``.

    Each row is ``{"params", "metrics" (ALL summary), "seconds"}``; the best maximizes ``metric`` over ALL.
    """
    rows = []
    for params in tqdm(list(grid), desc="grid", disable=not show_progress):
        t0 = time.perf_counter()
        summary = validate(make(**params), store, split)
        rows.append({"params": dict(params), "metrics": summary["ALL"],
                     "seconds": round(time.perf_counter() - t0, 1)})
        log.info("%s -> %s %.4f", params, metric, summary["ALL"][metric])
    best = max(rows, key=lambda r: r["metrics"][metric])
    return best["params"], rows
