"""Association rules as a source: the seeds' rule consequents join the pool, and the rules that fire score them.

What may change here: how the hybrid mines its rules (``rule_params``: a count threshold that grows with the data
unless the user sets ``min_support`` / ``min_count`` in ``HybridRecommender(rules=…)``), how many consequents join
the pool (``n_rule_candidates``) and the rule features (``PART_FEATURES["rules"]``): the summed confidence of the
firing rules, per known seed and from the last ``RECENT_SEEDS`` seeds, the best rule's confidence and log lift, the
log rank and whether a rule found the candidate. The best rule's row rides along (``BEST_RULE``) for the
explanations ("people who put A and B in a playlist also added C"). Mining and scoring themselves live in
``modules.rules`` (docs/rules.md).
"""

from __future__ import annotations

import numpy as np

from modules.bundle import PART_ENTRIES, Bundle
from modules.hybrid.sources.base import RECENT_SEEDS, Candidates, CandidateSource, Query, Retrieved

BEST_RULE = "best_rule"  # not a fusion feature: each candidate's best firing rule (-1 where none)


def rule_params(params: dict | None, n_playlists: int) -> dict:
    """``RuleRecommender`` parameters for ``n_playlists`` training playlists."""
    params = dict(params or {})
    if "min_support" not in params and "min_count" not in params:
        # pair rules seen in one playlist are the best signal on small data (docs/rules.md); on larger data
        # a count threshold keeps the rule table bounded
        params["min_count"] = max(1, int(round(n_playlists / 5000)))
    return params


def fit_rules(store, pids, params: dict | None):
    """The ``RuleModel`` mined from ``pids`` of ``store``."""
    from modules.rules import RuleRecommender

    return RuleRecommender(**rule_params(params, len(pids))).fit(store, pids).model_


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
                m = self.model.rules.metrics(rule_rows[at])
                conf[at] = m["confidence"]
                lift[at] = np.log(np.maximum(m["lift"], 1e-9))
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
