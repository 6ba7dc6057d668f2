"""Choosing the content model's sound/tags blend and album weight on validation playlists.

The fixed blend of the first worlds (``w_num`` 0.6, ``w_text`` 0.4) was tuned where every track has audio
features. On MPD-shaped data most tracks have none (the long tail is in no open catalog), tags carry the
content side, and albums group tracks the tags cannot. So the hybrid hands its validation split (carved once,
``modules.validation``) to ``tune_content``, which scores every ``w_num`` of ``GRID_W_NUM`` (``w_text`` is
``1 - w_num``) for each ``album_weight`` of ``GRID_ALBUM_WEIGHTS`` by the NDCG of the content model alone (its
nearest tracks over the whole model, the most popular tracks to fill 500) on the validation playlists that have
seeds, and keeps the best mean (ties: the earlier setting of the grid).

The blend is a query-time weight, so each playlist's two cosines are computed once per album weight and every
blend is a cheap combination of them; each album weight is one fit of the model on the playlists outside the
split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from modules.base import complete
from modules.metrics import SUBMISSION_SIZE, score_playlist, standard_error

log = logging.getLogger(__name__)

GRID_W_NUM = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
GRID_ALBUM_WEIGHTS = (0.0, 1.0)
GRID_POPULARITY_WEIGHTS = (0.0, 0.2, 0.4, 0.8)  # ContentRecommender's prior (the hybrid has its own)
TUNED_KEYS = ("w_num", "w_text", "album_weight")  # a user who sets one of these is not overruled


def tunes(params: dict | None) -> bool:
    """Whether the blend is chosen on validation: none of ``TUNED_KEYS`` given by the user."""
    return not set(params or {}) & set(TUNED_KEYS)


def validation_playlists(split) -> list[tuple[list[str], str | None, list[str]]]:
    """(seeds, title, held-out tracks) of the validation playlists with seeds (without seeds the blend of the
    two cosines has only the tags to blend)."""
    out = []
    for pl in split.challenge["playlists"]:
        seeds = [t["track_uri"] for t in pl.get("tracks", [])]
        if seeds:
            out.append((seeds, pl.get("name"), list(split.truth[str(pl["pid"])]["tracks"])))
    return out


def blend_ndcg(model, playlists, popular: list[str], w_nums=GRID_W_NUM, k: int = SUBMISSION_SIZE, *,
               popularity: np.ndarray | None = None, popularity_weights=(0.0,)) -> np.ndarray:
    """``[n_playlists, len(w_nums), len(popularity_weights)]`` (the last axis dropped when only the default
    ``(0.0,)`` is asked): each playlist's NDCG of ``model`` alone at each sound weight (tags ``1 - w``) and each
    weight of the ``popularity`` prior (aligned with ``model.uris_``): its ``k`` nearest tracks (seeds excluded),
    then the most popular tracks to fill."""
    out = np.zeros((len(playlists), len(w_nums), len(popularity_weights)))
    for i, (seeds, title, truth) in enumerate(playlists):
        q = model._query(seeds, title=title)
        if q.num is None and q.text is None:
            recs = complete([], np.zeros(0), seeds, k, popular)[0]
            out[i] = score_playlist(recs, truth)["ndcg"]
            continue
        num, text = model._score(q)
        for j, w in enumerate(w_nums):
            combined = model._combine(num, text, w, 1.0 - w)
            for m, pw in enumerate(popularity_weights):
                score = combined + pw * popularity if pw else combined
                top, scores = model.top_rows(score, seeds, k)
                recs, _ = complete(model.uris_[top].tolist(), scores, seeds, k, popular)
                out[i, j, m] = score_playlist(recs, truth)["ndcg"]
    return out[:, :, 0] if tuple(popularity_weights) == (0.0,) else out


def tune_content(fit: Callable[[float], object], split, popular: list[str], *, w_nums=GRID_W_NUM,
                 album_weights=GRID_ALBUM_WEIGHTS, popularity: Callable[[object], np.ndarray] | None = None,
                 popularity_weights=(0.0,), show_progress: bool = False) -> tuple[dict, object, dict]:
    """Choose ``w_num``/``w_text``/``album_weight`` on ``split``'s validation playlists.

    ``fit(album_weight)`` returns a ``ContentModel`` fitted on the playlists outside the split with that album
    weight; ``popular`` fills a list the model cannot (training order of popularity). With ``popularity`` (a
    fitted model → its popularity prior, aligned with its ``uris_``) ``popularity_weight`` is chosen too, among
    ``popularity_weights`` (what ``ContentRecommender`` adds to the similarity; the hybrid has its own popularity
    features and does not ask). Returns the chosen parameters, the model fitted with them (its
    ``w_num``/``w_text`` set) and the report: every setting's validation NDCG and standard error, the choice and
    the default's NDCG.
    """
    t0 = time.perf_counter()
    playlists = validation_playlists(split)
    keys = TUNED_KEYS + (("popularity_weight",) if popularity is not None else ())
    pws = tuple(popularity_weights) if popularity is not None else (0.0,)
    rows, best_model, best = [], None, None
    for aw in tqdm(album_weights, desc="content blend", unit="album weight", disable=not show_progress):
        model = fit(float(aw))
        prior = popularity(model) if popularity is not None else None
        ndcg = blend_ndcg(model, playlists, popular, w_nums, popularity=prior, popularity_weights=pws)
        ndcg = ndcg.reshape(len(playlists), len(w_nums), len(pws))
        for j, w in enumerate(w_nums):
            for m, pw in enumerate(pws):
                col = ndcg[:, j, m]
                row = {"w_num": float(w), "w_text": round(1.0 - float(w), 6), "album_weight": float(aw)}
                if popularity is not None:
                    row["popularity_weight"] = float(pw)
                row.update({"ndcg": float(col.mean()) if len(col) else 0.0,
                            "se": standard_error(col)})
                rows.append(row)
                if best is None or row["ndcg"] > best["ndcg"]:
                    best, best_model = row, model
        if best_model is not model:
            del model  # one spare model at a time
    chosen = {k: best[k] for k in keys}
    best_model.w_num, best_model.w_text = chosen["w_num"], chosen["w_text"]
    report = {"validation_playlists": len(playlists), "chosen": {**chosen, "ndcg": best["ndcg"], "se": best["se"]},
              "rule": "the best mean validation NDCG of the content model alone (ties: the earlier setting)",
              "grid": rows, "seconds": round(time.perf_counter() - t0, 1)}
    log.info("content: blend sound %.1f / tags %.1f, album weight %.1f%s chosen (validation NDCG %.4f ± %.4f, "
             "%d playlists) in %.0f s", chosen["w_num"], chosen["w_text"], chosen["album_weight"],
             f", popularity weight {chosen['popularity_weight']:.1f}" if popularity is not None else "",
             best["ndcg"], best["se"], len(playlists), report["seconds"])
    return chosen, best_model, report
