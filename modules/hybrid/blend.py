"""The blend: the fusion's logit, standardized within the playlist, plus ``a`` × the ALS z-score plus ``c`` × the
two-tower z-score, with ``(a, c)`` chosen per playlist length.

A pointwise classifier trained on every length at once has one weight per feature for all of them; two weights per
length let the two-tower count more on short playlists and ALS on long ones without new features. The weights are
chosen on the validation cuts from ``BLEND_GRID``² (``choose_blend``), with an honest estimate of what they add
(chosen on one fold, scored on the other).
"""

from __future__ import annotations

import numpy as np

from modules.base import zscore

# the blend's weights and the playlist lengths (seeds) they may change at: 0 | 1–4 | 5–9 | 10–24 | 25–99 | 100+
BLEND_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
BLEND_OBJECTIVE = ("ndcg",)  # what the blend weights maximize on the validation cuts
BLEND_BUCKETS = (1, 5, 10, 25, 100)
ALS_UNKNOWN_Z = -10.0  # a candidate ALS cannot score ranks last on the ALS side


def length_bucket(n_seeds, edges=BLEND_BUCKETS):
    """Bucket of a playlist length (number of seeds): 0 below ``edges[0]``, then one per edge passed."""
    return np.searchsorted(np.asarray(edges), n_seeds, side="right")


def n_seeds(X: np.ndarray, n_seeds_col: int) -> np.ndarray:
    """Seeds per candidate row, back from the ``n_seeds_log`` feature."""
    return np.rint(np.expm1(X[:, n_seeds_col]))


def blend(fused: np.ndarray, cs, a: float, c: float) -> np.ndarray:
    """``z(logit fused) + a·ALS z + c·two-tower z`` within one playlist's candidates (a ``CandidateSet``)."""
    p = np.clip(np.asarray(fused, np.float64), 1e-12, 1 - 1e-12)
    out = zscore(np.log(p) - np.log1p(-p))
    if a and "als_z" in cs.feature_names:
        out = out + a * np.nan_to_num(cs.column("als_z"), nan=ALS_UNKNOWN_Z)
    if c:
        out = out + c * cs.column("tt_z")
    return out


def blended(fused: np.ndarray, cs, weights: dict | None) -> np.ndarray:
    """What is served: ``fused`` blended by the weights chosen for the playlist's length (``fused`` itself without
    weights, as an older bundle had none)."""
    if not weights or len(fused) == 0:
        return fused
    bucket = int(length_bucket(n_seeds(cs.X[:1], cs.feature_names.index("n_seeds_log"))[0]))
    a, c = weights.get(bucket, (0.0, 0.0))
    return blend(fused, cs, a, c)


def choose_blend(data: dict, scores: list[np.ndarray], with_als: bool, objective: tuple[str, ...] | None = None,
                 bucket: np.ndarray | None = None) -> tuple[dict, list[np.ndarray]]:
    """Per playlist-length bucket, the weights ``(a, c)`` with the best mean ``objective`` (the sum of those
    metrics; default ``BLEND_OBJECTIVE``) over the validation cuts of ``data`` (``modules.hybrid.examples``),
    ``scores`` being each cut's cross-fitted fusion scores; ``a`` stays 0 without ALS (``with_als``).

    Returns the weights chosen on all cuts, and blended scores whose weights were chosen on the *other* fold (an
    honest estimate of what the blend adds). ``bucket`` (one id per validation cut) replaces the length buckets,
    for experiments."""
    from modules.metrics import score_playlist

    sets, examples = data["sets"], data["examples"]
    objective = objective or BLEND_OBJECTIVE
    a_grid = BLEND_GRID if with_als else (0.0,)
    combos = [(a, c) for a in a_grid for c in BLEND_GRID]
    ndcg = np.zeros((len(sets), len(combos)))  # the objective per cut and weights
    for i, (_g, _official, _seeds, _title, held) in enumerate(examples):
        for j, (a, c) in enumerate(combos):
            top = sets[i].uris[sets[i].order(blend(scores[i], sets[i], a, c), 500)].tolist()
            got = score_playlist(top, list(held))
            ndcg[i, j] = sum(got[m] for m in objective)
    if bucket is None:
        bucket = length_bucket([len(e[2]) for e in examples])
    fold = np.array([e[0] % 2 for e in examples])

    def pick(rows):
        return {int(b): combos[int(np.argmax(ndcg[rows & (bucket == b)].mean(axis=0)))]
                for b in np.unique(bucket[rows]).tolist()}

    chosen = pick(np.ones(len(sets), bool))
    honest = list(scores)
    for f in (0, 1):
        other = pick(fold != f)
        for i in np.flatnonzero(fold == f):
            a, c = other.get(int(bucket[i]), (0.0, 0.0))
            honest[i] = blend(scores[i], sets[i], a, c)
    return chosen, honest
