"""Model selection on the validation playlists: which fusion is served, with which blend weights.

Every fusion kind is scored by two-fold cross-fitting (each cut scored by a model fitted on the other fold's
playlists), blended (``modules.hybrid.blend``: weights chosen on one fold, scored on the other) and scored over
*all* cuts, about four times the official ones, so less noisy. The best linear kind is served unless the trees beat
it by more than one standard error of the paired difference per playlist plus ``TREES_SERVING_PRICE``
(``choose_fusion_kind``: the trees cost about a hundred tree walks per candidate, over a third of a request's CPU,
and fit noise more easily). The chosen kind is then refitted on every cut.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from modules.base import one_blas_thread
from modules.hybrid.blend import choose_blend
from modules.hybrid.fusion import LINEAR_FUSIONS, fusion_score
from modules.metrics import evaluate, standard_error

log = logging.getLogger(__name__)

PER_CUT = "PER_CUT"  # score_cuts' key for the NDCG of every cut (not a category)
# validation NDCG the trees must add, beyond one standard error, to be served instead of the best linear fusion:
# their serving cost. On the demo bundle (3,000 playlists) they took 6.5 of 17.8 ms of CPU per /recommend request
# and doubled the REST p99 at 32 clients; a gain of 0.0056 (2.3 standard errors) did not pay for that.
TREES_SERVING_PRICE = 0.01


def cross_fitted_scores(data: dict, new_fusion: Callable) -> list[np.ndarray]:
    """The score of every validation cut of ``data`` (``modules.hybrid.examples.fusion_data``), each from a model
    ``new_fusion()`` fitted on the other fold's playlists."""
    X, y, fold, sets = data["X"], data["y"], data["fold"], data["sets"]
    out: list[np.ndarray] = [np.zeros(0)] * len(sets)
    with one_blas_thread():  # the same numbers on any machine (modules.base.one_blas_thread)
        for f in (0, 1):
            tr = fold != f
            model = new_fusion().fit(X[tr], y[tr])
            for i, (g, *_rest) in enumerate(data["examples"]):
                if g % 2 == f:
                    out[i] = fusion_score(model, sets[i].X)
    return out


def score_cuts(data: dict, split, scores: list[np.ndarray]) -> dict:
    """Metrics of per-cut ``scores`` (e.g. ``cross_fitted_scores``): per category on the official cuts, and
    ``"ALL_CUTS"`` (mean NDCG / R-precision over every cut, four times the examples, so less noisy) which the
    fusion is chosen by; ``PER_CUT`` holds every cut's NDCG."""
    from modules.metrics import score_playlist

    pls = split.challenge["playlists"]
    sets, first = data["sets"], data["first"]
    rows, per_cut = {}, []
    for i, (g, _official, _seeds, _title, held) in enumerate(data["examples"]):
        top = sets[i].uris[sets[i].order(scores[i], 500)].tolist()
        per_cut.append(score_playlist(top, list(held)))
        if first[g] == i:
            rows[pls[g]["pid"]] = top
    summary = evaluate(rows, split.truth, artist_of=data["artist_of"]).summary()
    summary["ALL_CUTS"] = {m: float(np.mean([c[m] for c in per_cut])) for m in ("ndcg", "r_precision")}
    summary["ALL_CUTS"]["count"] = len(per_cut)
    summary[PER_CUT] = np.array([c["ndcg"] for c in per_cut])
    return summary


def choose_fusion_kind(evals: dict, playlist_of_cut) -> tuple[str, dict]:
    """The fusion kind to serve, from each kind's blended validation scores (``score_cuts``).

    The best linear kind, unless the gradient-boosted trees beat it by more than one standard error of the
    paired difference (per validation playlist, since a playlist's cuts are not independent) plus
    ``TREES_SERVING_PRICE``: the trees cost over a third of a query's CPU (demo bundle) and fit noise
    more easily, so a tie, or a gain too small to pay for their serving cost, goes to the linear fusion."""
    mean = {k: v["ALL_CUTS"]["ndcg"] for k, v in evals.items()}
    linear = [k for k in evals if k in LINEAR_FUSIONS]
    if "hgb" not in evals or not linear:
        best = max(evals, key=mean.get)
        return best, {"rule": "best mean NDCG over the validation cuts"}
    best_linear = max(linear, key=mean.get)
    diff = evals["hgb"][PER_CUT] - evals[best_linear][PER_CUT]
    groups = np.asarray(playlist_of_cut)
    _, inverse = np.unique(groups, return_inverse=True)
    per_playlist = np.bincount(inverse, diff) / np.bincount(inverse)
    se = standard_error(per_playlist, single=float("inf"))
    gain = float(diff.mean())
    best = "hgb" if gain > se + TREES_SERVING_PRICE else best_linear
    return best, {"rule": "trees only when they beat the best linear fusion by more than one standard error plus "
                          "their serving price",
                  "best_linear": best_linear, "trees_gain": gain, "standard_error": se,
                  "serving_price": TREES_SERVING_PRICE, "playlists": int(len(per_playlist))}


@dataclass
class Selected:
    """What ``select_fusion`` chose: the fusion ``kind``, its ``model`` refitted on every cut, the blend
    ``weights`` (length bucket → ``(a, c)``) and the ``validation`` metrics the manifest records."""

    kind: str
    model: object
    weights: dict
    validation: dict


def select_fusion(data: dict, split, kinds: tuple[str, ...], new_fusion: Callable[..., object],
                  with_als: bool, show_progress: bool = False) -> Selected:
    """Compare the fusion ``kinds`` (``new_fusion(kind)`` makes an unfitted one) on ``data``, the validation cuts
    of ``split``, and refit the chosen one on all of them; ``with_als``: the blend may weigh ALS. A kind takes
    minutes on a million playlists' cuts, so ``show_progress`` shows a bar over kinds and their steps."""
    pls = split.challenge["playlists"]
    sets, labels, first, y = data["sets"], data["labels"], data["first"], data["y"]
    results, blends, blend_evals = {}, {}, {}
    bar = tqdm(total=3 * len(kinds) + 1, desc="fusion choice", unit="step", disable=not show_progress)
    for kind in kinds:
        bar.set_postfix_str(f"{kind}: cross-fitting")
        scores = cross_fitted_scores(data, lambda kind=kind: new_fusion(kind))
        results[kind] = score_cuts(data, split, scores)
        bar.update()
        bar.set_postfix_str(f"{kind}: blend")
        blends[kind], blended = choose_blend(data, scores, with_als)
        bar.update()
        bar.set_postfix_str(f"{kind}: scoring")
        blend_evals[kind] = score_cuts(data, split, blended)
        bar.update()
        log.info("hybrid: fusion %s scored on the validation cuts: NDCG %.4f, %.4f blended", kind,
                 results[kind]["ALL_CUTS"]["ndcg"], blend_evals[kind]["ALL_CUTS"]["ndcg"])
    bar.set_postfix_str("refit")
    tt_eval = score_cuts(data, split, [s.column("tt_score") for s in sets])
    # what is served is the blend, so the blend's honest estimate decides
    best, choice = choose_fusion_kind(blend_evals, [e[0] for e in data["examples"]])
    with one_blas_thread():
        model = new_fusion(best).fit(data["X"], y)
    bar.update()
    bar.close()
    weights, blend_eval = blends[best], blend_evals[best]
    n_held = sum(len(t["tracks"]) for t in split.truth.values())
    found = sum(int(labels[first[g]].sum()) for g in range(len(pls)))

    def per_category(summary):
        return {k: v for k, v in summary.items() if k not in ("ALL_CUTS", PER_CUT)}

    validation = {"playlists": len(pls), "cuts": len(data["examples"]), "candidates": int(len(y)),
                  "positives": int(y.sum()), "candidate_recall": found / max(n_held, 1),
                  "fusion": {k: v["ALL"] for k, v in results.items()},
                  "fusion_all_cuts": {k: v["ALL_CUTS"] for k, v in results.items()}, "chosen": best,
                  "choice": choice,
                  "blend": {"weights": {str(b): list(w) for b, w in weights.items()},
                            "official": blend_eval["ALL"], "all_cuts": blend_eval["ALL_CUTS"],
                            "all_cuts_by_fusion": {k: v["ALL_CUTS"] for k, v in blend_evals.items()}},
                  "two_tower_alone": tt_eval["ALL"], "two_tower_alone_all_cuts": tt_eval["ALL_CUTS"],
                  "per_category": per_category(blend_eval),
                  "two_tower_per_category": per_category(tt_eval)}
    log.info("hybrid: fusion %s, validation NDCG %.4f over %d cuts, %.4f blended (%.4f on the official cuts; "
             "two-tower alone %.4f)", best, results[best]["ALL_CUTS"]["ndcg"], len(data["examples"]),
             blend_eval["ALL_CUTS"]["ndcg"], blend_eval["ALL"]["ndcg"], tt_eval["ALL"]["ndcg"])
    return Selected(best, model, weights, validation)
