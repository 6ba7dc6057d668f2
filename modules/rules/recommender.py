"""``RuleRecommender``: association rules alone as a ``PlaylistRecommender`` (rules first, popularity after).

``fit`` mines the training playlists with the sparse engine (``mining.mine_rules``), keeps the rules with evidence
(``evidence.apply_evidence``) and indexes them in a ``RuleModel``; ``recommend`` ranks that model's candidates
(``scoring.py``, which also says what may change) and ``PlaylistRecommender`` fills up to ``k`` with popularity.
The hybrid builds its rule source through this class and keeps its ``model_``.
"""

from __future__ import annotations

import logging
import math

from modules.base import PlaylistRecommender, popularity_order
from modules.errors import RulesError
from modules.rules.evidence import Evidence, apply_evidence, check_evidence
from modules.rules.mining import mine_rules
from modules.rules.scoring import AGGREGATIONS, RuleModel
from modules.rules.table_budget import check_rule_table
from modules.rules.transactions import load_transactions

log = logging.getLogger(__name__)


class RuleRecommender(PlaylistRecommender):
    """Rules first, then popularity to fill up to ``k``.

    The rules are mined from the training playlists with the sparse engine; a candidate's score is the
    aggregation of the rules its playlist's seeds fire. Title-only playlists get popularity (rules need seeds).
    The defaults were chosen on a validation split carved from the training playlists of the 3,000-playlist
    benchmark world (``benchmarks/rules_bench.py tune``; docs/rules.md): summed confidence won for every
    threshold tried, and the lowest support won. ``min_count`` is a count of playlists, so it does not carry
    over to much larger data: there, pass ``min_support`` (e.g. 0.0005 for a million playlists).

    Parameters
    ----------
    min_count : int, default=1
        Keep itemsets found in at least this many training playlists (converted to a support so that exactly
        ``count >= min_count`` passes); ignored when ``min_support`` is given.
    max_consequents : int, default=None
        Keep each antecedent's best-supported ``N`` rules (``evidence.py``); ``None``: no cap.
    smoothing : float, default=0.0
        The ``m`` of the smoothed confidence ``count / (antecedent_count + m)`` that scores (0: plain confidence).
    min_support : float, default=None
    min_confidence : float, default=0.02
    max_len : int, default=2
        2 for pair rules only (A -> C), 3 to add {A, B} -> C.
    aggregation : str, default="sum_confidence"
        See ``RuleModel.score``.
    engine : {"sparse", "mlxtend"}, default="sparse"
    memory_budget : float, default=None
        Bytes the rule table may take (default 80 % of the memory available when ``fit`` starts). The sparse
        engine's pair rules are counted before mining when a bound says they might not fit, and a table over the
        budget is refused (``MemoryBudgetError``, naming a min count that fits; ``table_budget.py``); the mlxtend
        engine has its own guard with the same budget.
    n_jobs : int, default=1
        Threads for the sparse engine.
    seed : int, default=0
        Unused (rule mining is exact); accepted so every method takes ``seed``.
    show_progress : bool, default=False
    """

    def __init__(self, *, min_count: int = 1, max_consequents: int | None = None, smoothing: float = 0.0,
                 min_support: float | None = None, min_confidence: float = 0.02, max_len: int = 2,
                 aggregation: str = "sum_confidence", engine: str = "sparse", memory_budget: float | None = None,
                 n_jobs: int = 1, seed: int = 0, show_progress: bool = False):
        self.min_count = min_count
        self.max_consequents = max_consequents
        self.smoothing = smoothing
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.max_len = max_len
        self.aggregation = aggregation
        self.engine = engine
        self.memory_budget = memory_budget
        self.n_jobs = n_jobs
        self.seed = seed
        self.show_progress = show_progress

    def _support(self, n: int) -> float:
        if self.min_support is not None:
            return float(self.min_support)
        # half a playlist below min_count: count/n >= s and ceil(s*n) both mean count >= min_count exactly
        return min(1.0, (self.min_count - 0.5) / n)

    def fit(self, store, pids=None) -> RuleRecommender:
        if self.aggregation not in AGGREGATIONS:
            raise RulesError(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {self.aggregation!r}).")
        evidence = check_evidence(self.min_count, self.max_consequents, self.smoothing)
        if self.min_support is not None:
            evidence = Evidence(1, evidence.max_consequents, evidence.smoothing)  # min_count is ignored
        tx = load_transactions(store, pids)
        if tx.n_playlists == 0:
            raise RulesError("no training playlists to mine rules from.")
        support = self._support(tx.n_playlists)
        if self.engine == "sparse":  # the count a pair needs: count / n >= support
            check_rule_table(tx, math.ceil(support * tx.n_playlists - 1e-9), self.min_confidence, self.memory_budget)
        rules = mine_rules(tx, engine=self.engine, min_support=support, min_confidence=self.min_confidence,
                           max_len=self.max_len, memory_budget=self.memory_budget, n_jobs=self.n_jobs,
                           show_progress=self.show_progress)
        rules = apply_evidence(rules, evidence)
        self.model_ = RuleModel(rules, self.aggregation)
        self.fallback_ = popularity_order(store, pids)
        self.fitted_ = True
        log.info("rules: %d rules (%d indexed) from %d playlists", len(rules), self.model_.n_rules, tx.n_playlists)
        return self

    def _recommend(self, seeds, title, k):
        res = self.model_.score(seeds, k=k)
        return res.uris.tolist(), res.scores
