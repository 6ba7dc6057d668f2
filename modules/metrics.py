"""RecSys Challenge 2018 metrics: R-precision (and its artist-credit variant), NDCG, clicks, recall@500.

Definitions (G = held-out tracks, R = ranked recommendations, positions from 1):

* R-precision = |G ∩ R[1..|G|]| / |G|; the artist-credit variant adds 0.25 for each track in R[1..|G|]
  that is not in G but whose artist is among G's artists, divided by |G|.
* NDCG = DCG / IDCG with DCG = Σ_{i=1..|R|} rel_i / log2(i+1) and IDCG = Σ_{i=1..min(|G|,|R|)} 1/log2(i+1).
  A track repeated in R counts once (at its first position), so a malformed submission cannot score > 1.
* clicks = ⌊(position of the first relevant track − 1) / 10⌋, 51 when none of the first 500 is relevant.
* recall@500 = |G ∩ R[1..500]| / |G| (the candidate generator's job).

Averages are over playlists, overall (``"ALL"``) and per category.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modules.challenge import CATEGORIES, validate_truth
from modules.errors import InputError

log = logging.getLogger(__name__)

CATEGORY_ORDER = tuple(c.name for c in CATEGORIES)
METRICS = ("r_precision", "r_precision_artist", "ndcg", "clicks", "recall")
MAX_CLICKS = 51
SUBMISSION_SIZE = 500
_DISCOUNT = 1.0 / np.log2(np.arange(2, SUBMISSION_SIZE * 4 + 2))


def standard_error(values, *, single: float = 0.0) -> float:
    """The standard error of the mean of ``values`` (sample standard deviation / sqrt(n)); ``single`` when fewer
    than two values give no spread: callers choose it (0.0 to report, ``inf`` where a gain must beat it)."""
    values = np.asarray(values)  # its own dtype: the same number the callers computed before
    if len(values) < 2:
        return float(single)
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def _discount(n: int) -> np.ndarray:
    return _DISCOUNT[:n] if n <= len(_DISCOUNT) else 1.0 / np.log2(np.arange(2, n + 2))


def score_playlist(recs: Sequence[str], truth_tracks: Sequence[str], truth_artists: Sequence[str] = (),
                   artist_of: Mapping[str, str] | None = None) -> dict[str, float]:
    """All metrics for one playlist.

    Parameters
    ----------
    recs : sequence of str
        Ranked recommendations R, as given (duplicates count once).
    truth_tracks : sequence of str
        Held-out tracks G.
    truth_artists : sequence of str
        Artist names of G (for the artist-credit R-precision).
    artist_of : mapping, default=None
        Track URI → artist name for recommended tracks; without it the artist variant equals R-precision.
    """
    g = set(truth_tracks)
    ng = len(g)
    if ng == 0:
        raise InputError("a playlist with no held-out tracks cannot be scored")
    seen: set[str] = set()
    rel = np.zeros(len(recs))
    for i, r in enumerate(recs):
        if r not in seen:
            seen.add(r)
            if r in g:
                rel[i] = 1.0
    top = set(recs[:ng])
    hits = len(top & g)
    extra = 0
    if artist_of is not None:
        artists = set(truth_artists)
        extra = sum(1 for r in top - g if artist_of.get(r) in artists)
    dcg = float((rel * _discount(len(rel))).sum())
    idcg = float(_discount(min(ng, len(recs))).sum())
    first = np.flatnonzero(rel[:SUBMISSION_SIZE])
    return {
        "r_precision": hits / ng,
        "r_precision_artist": (hits + 0.25 * extra) / ng,
        "ndcg": dcg / idcg if idcg > 0 else 0.0,
        "clicks": float(math.floor(first[0] / 10)) if len(first) else float(MAX_CLICKS),
        "recall": float(rel[:SUBMISSION_SIZE].sum()) / ng,
    }


@dataclass
class Evaluation:
    """Per-playlist scores, their averages and the problems found in the submission."""

    per_playlist: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    malformed_lines: int = 0

    def summary(self) -> dict[str, dict[str, float]]:
        """``{"ALL": {metric: mean, ..., "count": n}, "<category>": {...}}``."""
        df = self.per_playlist
        out = {"ALL": _means(df)}
        present = set(df["category"])
        for cat in [c for c in CATEGORY_ORDER if c in present] + sorted(present - set(CATEGORY_ORDER)):
            out[str(cat)] = _means(df.loc[df["category"] == cat])
        return out


def _means(df: pd.DataFrame) -> dict[str, float]:
    d = {m: float(df[m].mean()) if len(df) else float("nan") for m in METRICS}
    d["count"] = int(len(df))
    return d


def evaluate(rows: Mapping[int, Sequence[str]], truth: Mapping[str, Mapping], *,
             artist_of: Mapping[str, str] | None = None, seeds: Mapping[int, Sequence[str]] | None = None,
             problems: Sequence[str] = ()) -> Evaluation:
    """Score ranked recommendations ``{pid: [uri, ...]}`` against ``truth`` (the format of ``truth.json``).

    The submission is scored as given: a missing playlist scores as an empty list, duplicates and seeds
    stay where they are. What is malformed is counted and listed (``Evaluation.problems``), never fixed.
    The truth is checked first (``validate_truth``): an empty or malformed one raises ``MPDFormatError``.
    """
    validate_truth(truth)
    problems = list(problems)
    bad_lines: set[int] = set()
    records = []
    for pid_key, t in truth.items():
        pid = int(pid_key)
        recs = list(rows.get(pid, ()))
        if pid not in rows:
            problems.append(f"pid {pid}: missing from the submission (scored as empty)")
            bad_lines.add(pid)
        else:
            if len(recs) != SUBMISSION_SIZE:
                problems.append(f"pid {pid}: {len(recs)} tracks instead of {SUBMISSION_SIZE}")
                bad_lines.add(pid)
            if len(set(recs)) != len(recs):
                problems.append(f"pid {pid}: {len(recs) - len(set(recs))} duplicate tracks")
                bad_lines.add(pid)
            if seeds is not None:
                n_seed = len(set(recs) & set(seeds.get(pid, ())))
                if n_seed:
                    problems.append(f"pid {pid}: {n_seed} seed tracks recommended")
                    bad_lines.add(pid)
        s = score_playlist(recs, t["tracks"], t.get("artists", ()), artist_of)
        records.append({"pid": pid, "category": t["category"], **s})
    extra = sorted(set(rows) - {int(p) for p in truth})
    if extra:
        problems.append(f"{len(extra)} playlists not in the truth file were ignored (e.g. pid {extra[0]})")
    df = pd.DataFrame.from_records(records, columns=["pid", "category", *METRICS])
    return Evaluation(df, problems, len(bad_lines))
