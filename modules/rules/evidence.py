"""The evidence filter: which mined rules have enough evidence to rank candidates and explain them.

A rule seen in one playlist has confidence 1 when its antecedent is in that playlist only, and on real playlists
most tracks are (67 % of the distinct tracks of a 6,000-playlist MPD subset): such rules are most of the table,
carry no evidence and cost memory. Three settings, applied to a mined ``RuleSet`` (after mining, so both engines
give the same filtered table):

* ``min_count``: keep rules whose itemset is in at least this many playlists;
* ``max_consequents``: keep, per antecedent, the ``N`` consequents with the highest smoothed confidence (for one
  antecedent that is the highest count; ties: the higher lift, i.e. the rarer consequent, then URI order);
* ``smoothing`` ``m``: the confidence that ranks and scores is ``count / (antecedent_count + m)``, so 1 of 1 ranks
  below 20 of 25 (``m = 0`` is the plain confidence). It changes no rule, only ``RuleModel``'s scores; it is
  recorded in the rule file's metadata, which ``RuleModel.load`` reads.

``tuning.py`` chooses the three on validation playlists; ``docs/rules.md`` has the measurements.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from numbers import Integral, Real

import numpy as np

from modules.errors import RulesError
from modules.rules.ruleset import RuleSet

EVIDENCE_KEYS = ("min_count", "max_consequents", "smoothing")


@dataclass(frozen=True)
class Evidence:
    """The evidence settings (see the module docstring); the defaults keep every rule and the plain confidence."""

    min_count: int = 1
    max_consequents: int | None = None
    smoothing: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        cap = "none" if self.max_consequents is None else str(self.max_consequents)
        return f"min_count {self.min_count}, cap {cap}, m {self.smoothing:g}"


def check_evidence(min_count=1, max_consequents=None, smoothing=0.0) -> Evidence:
    """``Evidence`` from user values, or ``RulesError`` (an ``InputError``) saying what to give instead."""
    if isinstance(min_count, bool) or not isinstance(min_count, Integral) or min_count < 1:
        raise RulesError(f"min_count (--min-count) must be an integer >= 1 (got {min_count!r}): the number of "
                         "playlists a rule's tracks must share, e.g. 2 to drop rules seen in one playlist.")
    if max_consequents is not None and (isinstance(max_consequents, bool) or not isinstance(max_consequents, Integral)
                                        or max_consequents < 1):
        raise RulesError(f"max_consequents (--max-consequents) must be an integer >= 1 or left out for no cap (got "
                         f"{max_consequents!r}), e.g. 200 keeps each track's 200 best-supported rules.")
    if (isinstance(smoothing, bool) or not isinstance(smoothing, Real) or not np.isfinite(float(smoothing))
            or smoothing < 0):
        raise RulesError(f"smoothing (--smoothing) must be a number >= 0 (got {smoothing!r}): the m in count / "
                         "(antecedent count + m); 0 is the plain confidence, 2 ranks 1 of 1 below 20 of 25.")
    return Evidence(int(min_count), None if max_consequents is None else int(max_consequents), float(smoothing))


def smoothed_confidence(count, antecedent_count, smoothing: float) -> np.ndarray:
    """``count / (antecedent_count + smoothing)`` as float64 (``smoothing`` 0: the plain confidence)."""
    return np.asarray(count, np.float64) / (np.asarray(antecedent_count, np.float64) + float(smoothing))


def consequent_rank(rules: RuleSet) -> np.ndarray:
    """Each rule's rank (0 = best) among the rules of its antecedent: the highest count first (the highest
    smoothed confidence for any ``m``, the antecedent count being shared), then the lower consequent count (the
    higher lift), then the consequent's track columns (URI order). Integer keys only: both engines agree."""
    n = len(rules)
    if n == 0:
        return np.zeros(0, np.int64)
    ante, cons = rules.antecedents, rules.consequents
    keys = [cons[:, j] for j in range(cons.shape[1] - 1, -1, -1)]
    keys += [rules.consequent_count.astype(np.int64), -rules.count.astype(np.int64)]
    keys += [ante[:, j] for j in range(ante.shape[1] - 1, -1, -1)]
    order = np.lexsort(keys)
    a = ante[order]
    start = np.r_[True, (a[1:] != a[:-1]).any(axis=1)]
    group_start = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - group_start
    return rank


def apply_evidence(rules: RuleSet, evidence: Evidence) -> RuleSet:
    """The rules of ``rules`` that pass ``evidence`` (``min_count``, then the cap per antecedent), in their order;
    ``meta["evidence"]`` records the settings (``smoothing`` included) and ``meta["rules"]`` the new count."""
    keep = rules.count >= evidence.min_count
    out = rules._take(np.flatnonzero(keep)) if not keep.all() else rules._take(slice(None))
    if evidence.max_consequents is not None and len(out):
        out = out._take(np.flatnonzero(consequent_rank(out) < evidence.max_consequents))
    out.meta = {**rules.meta, "rules": len(out), "evidence": {**rules.meta.get("evidence", {}), **evidence.as_dict()}}
    return out


def evidence_of(rules: RuleSet) -> Evidence:
    """The settings recorded in ``rules.meta`` (defaults for files written before the filter existed)."""
    e = rules.meta.get("evidence") or {}
    return Evidence(int(e.get("min_count", 1)), e.get("max_consequents"), float(e.get("smoothing", 0.0)))
