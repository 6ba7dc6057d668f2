"""Association rules as a source: the seeds' rule consequents join the pool, and the rules that fire score them.

What may change here: how the hybrid mines its rules (``fit_rules``: the evidence filter, ``min_count``,
``max_consequents`` and ``smoothing``, is chosen on the validation playlists under a budget of ``max_rules`` rules,
``modules.rules.tuning``, unless the user sets one of them or ``min_support`` in ``HybridRecommender(rules=…)``),
how many consequents join the pool (``n_rule_candidates``) and the rule features (``PART_FEATURES["rules"]``): the
summed (smoothed) confidence of the firing rules, per known seed and from the last ``RECENT_SEEDS`` seeds, the
best rule's confidence and log lift, the log rank and whether a rule found the candidate. The best rule's row
rides along (``BEST_RULE``) for the explanations ("in 23 of 41 playlists with A"). Mining and scoring themselves
live in ``modules.rules`` (docs/rules.md).
"""

from __future__ import annotations

import math

import numpy as np

from modules.bundle import PART_ENTRIES, Bundle
from modules.hybrid.sources.base import RECENT_SEEDS, Candidates, CandidateSource, Query, Retrieved

BEST_RULE = "best_rule"  # not a fusion feature: each candidate's best firing rule (-1 where none)


TUNING_KEYS = ("max_rules",)  # ``rules`` keys of the tuning, not of ``RuleRecommender``
RULE_KEYS = ("min_count", "max_consequents", "smoothing", "min_support", "min_confidence", "max_len",
             "aggregation", "engine", "n_jobs", *TUNING_KEYS)


def check_rule_params(params) -> None:
    """``InputError`` for a ``rules`` parameter the hybrid cannot use, before any data is read."""
    from modules.errors import InputError
    from modules.rules.evidence import check_evidence
    from modules.rules.tuning import check_max_rules

    if params is None:
        return
    if not isinstance(params, dict):
        raise InputError(f"the 'rules' parameter must be an object of rule settings, e.g. {{\"min_count\": 2}} "
                         f"(got {params!r}).")
    unknown = sorted(set(params) - set(RULE_KEYS))
    if unknown:
        raise InputError(f"unknown rules parameters {unknown}; known: {', '.join(RULE_KEYS)}.")
    check_evidence(params.get("min_count", 1), params.get("max_consequents"), params.get("smoothing", 0.0))
    if "max_rules" in params:
        check_max_rules(params["max_rules"])


def rule_params(params: dict | None) -> dict:
    """``RuleRecommender`` parameters (``params`` without the tuning's keys)."""
    return {k: v for k, v in (params or {}).items() if k not in TUNING_KEYS}


def tunes(params: dict | None) -> bool:
    """Whether the evidence filter is chosen on validation: none of its settings (nor ``min_support``) given."""
    return not set(params or {}) & {"min_count", "max_consequents", "smoothing", "min_support"}


def fit_rules(store, pids, params: dict | None, validation=None, tuning: dict | None = None,
              show_progress: bool = False):
    """The ``RuleModel`` mined from ``pids`` of ``store``, and the report of the evidence tuning (``None`` when
    the filter was not tuned).

    With ``validation`` (the hybrid's split, whose training playlists are ``pids``) and no evidence setting given
    by the user, the filter is chosen on its playlists (``modules.rules.tuning``); with ``tuning`` (that choice's
    report) it is applied as chosen; otherwise the user's settings hold (or none: every rule). The report goes into
    the rule table's metadata (``meta["evidence"]["tuning"]``), so ``rules.parquet`` records it.
    """
    from modules.rules import RuleRecommender
    from modules.rules.evidence import Evidence
    from modules.rules.transactions import load_transactions
    from modules.rules.tuning import DEFAULT_MAX_RULES, tune_evidence

    params = dict(params or {})
    check_rule_params(params)
    rp = rule_params(params)
    on_spark = rp.get("engine") == "spark"  # train --engine spark: the transactions stay on Spark
    if tunes(params) and tuning is None and validation is not None:
        keep = {k: rp[k] for k in ("min_confidence", "max_len", "aggregation", "engine", "n_jobs") if k in rp}
        budget = params.get("max_rules", DEFAULT_MAX_RULES)
        if on_spark:
            from modules.spark.tuning import tune_evidence_spark

            _, model, report = tune_evidence_spark(store, validation, pids=pids, max_rules=budget,
                                                   show_progress=show_progress, **keep)
            return model, report
        tx = load_transactions(store, pids)
        _, model, report = tune_evidence(tx, validation, max_rules=budget, show_progress=show_progress, **keep)
        return model, report
    if on_spark:
        from modules.spark.tuning import fit_rule_model_spark as fit_model
    else:
        def fit_model(store, pids, **kw):
            return RuleRecommender(**kw).fit(store, pids).model_
    if not tunes(params) or tuning is None:
        return fit_model(store, pids, **rp), None
    c = tuning["chosen"]
    chosen = Evidence(c["min_count"], c["max_consequents"], c["smoothing"])
    # the tuning counted this table within its max_rules, so the sparse engine's size check (a counting pass of its
    # own at scale) is skipped; the mlxtend engine keeps its memory guard
    no_check = {"memory_budget": math.inf} if rp.get("engine", "sparse") == "sparse" else {}
    model = fit_model(store, pids, **rp, **chosen.as_dict(), **no_check)
    model.rules.meta["evidence"]["tuning"] = tuning
    return model, tuning


def save_rules(model, bundle) -> str:
    model.save(Bundle(bundle).rules_file)
    return PART_ENTRIES["rules"]


def load_rules(bundle, params: dict | None):
    from modules.rules import RuleModel

    return RuleModel.load(Bundle(bundle).rules_file, (params or {}).get("aggregation", "sum_confidence"))


class RuleSource(CandidateSource):
    """Candidates and ``PART_FEATURES["rules"]`` from a ``RuleModel``; ``to_id`` maps its track columns to hybrid
    ids, ``n_candidates`` is the hybrid's ``n_rule_candidates``."""

    name = "rules"

    def __init__(self, model, to_id: np.ndarray, n_candidates: int):
        self.model = model
        self.to_id = to_id
        self.n_candidates = n_candidates  # what ``retrieve`` is asked for: one past it is "not found"'s rank

    @staticmethod
    def track_uris(model) -> np.ndarray:
        return model.rules.track_uris

    def retrieve(self, queries: list[Query], n: int) -> list[Retrieved | None]:
        """The top ``n`` consequents of each playlist's seeds; ``data`` is the ``RuleScores`` (``None`` without
        seeds or with ``n`` 0)."""
        out: list[Retrieved | None] = []
        for q in queries:
            if q.seeds and n:
                rs = self.model.score(q.seeds, k=n)
                out.append(Retrieved(self.to_id[rs.ids], rs))
            else:
                out.append(None)
        return out

    def features(self, query: Query, candidates: Candidates) -> dict[str, np.ndarray]:
        found = query.found.get(self.name)
        rs = None if found is None else found.data
        n = len(candidates)
        rule_rows = np.full(n, -1, np.int64)
        score, conf, lift = np.zeros(n), np.zeros(n), np.zeros(n)
        rank = np.full(n, np.log1p(self.n_candidates + 1))
        if rs is not None and len(rs):
            at, ok = candidates.place(found.ids)
            score[at] = rs.scores[ok]
            rank[at] = np.log1p(np.flatnonzero(ok))
            rule_rows[at] = rs.best_rule[ok]
            if len(at):
                conf[at] = self.model.confidence(rule_rows[at])
                lift[at] = np.log(np.maximum(self.model.rules.metrics(rule_rows[at], names=["lift"])["lift"], 1e-9))
        rule_recent = np.zeros(n)
        if rs is not None and len(rs) and query.long:
            rr = self.model.score(query.seeds[-RECENT_SEEDS:])
            at, ok = candidates.place(self.to_id[rr.ids])
            rule_recent[at] = rr.scores[ok]
        elif rs is not None:
            rule_recent = score
        return {"rule_score": score, "rule_norm": score / max(len(query.known), 1), "rule_recent": rule_recent,
                "rule_conf": conf, "rule_lift_log": lift, "rule_rank_log": rank,
                "rule_found": (rule_rows >= 0).astype(np.float64), BEST_RULE: rule_rows}
