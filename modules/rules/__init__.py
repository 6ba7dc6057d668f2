"""Association rules over playlists: playlists are transactions, tracks are items.

A rule ``{A, B} -> C`` says "playlists that hold A and B also hold C" with

* ``support`` = share of playlists holding A, B and C,
* ``confidence`` = support(A, B, C) / support(A, B), and
* ``lift`` = confidence / support(C) (how much more likely C is than in a random playlist).

It is a ranking signal and an explanation a person understands at once ("in 23 of 41 playlists with A and B"),
when it has evidence. One file per step (docs/rules.md explains each):

* ``transactions.py``: playlists as a sparse 0/1 matrix (``Transactions``, ``load_transactions``);
* ``mining.py``: ``mine_rules``, the entry point, with ``check_params``; it runs one of two engines that give
  the same rules, number for number:
  ``sparse_miner.py`` (exact pair and triple counts with ``scipy.sparse``, a million playlists) and
  ``mlxtend_engine.py`` (mlxtend's ``fpgrowth``, the reference, with its memory guard);
* ``ruleset.py``: the rule table ``RuleSet``, its metrics and its Parquet file (``read_rules``);
* ``evidence.py``: the evidence filter (min count, a cap of consequents per track, a smoothed confidence);
* ``tuning.py``: ``tune_evidence``, the filter chosen on validation playlists under a budget of rules;
* ``scoring.py``: ``RuleModel``, the rule-based candidate pool (and what you may change there);
* ``explain.py``: ``rule_reason``, the one place a rule is worded for people;
* ``recommender.py``: ``RuleRecommender``, rules first, then popularity.

Its errors, ``RulesError`` and ``MemoryBudgetError``, are defined in ``modules.errors`` and re-exported here.
"""

from modules.errors import MemoryBudgetError, RulesError
from modules.rules.evidence import Evidence, apply_evidence, check_evidence
from modules.rules.explain import rule_reason
from modules.rules.mining import ENGINES, check_params, mine_rules
from modules.rules.mlxtend_engine import (
    _mlxtend_parts,
    available_memory,
    check_mlxtend_budget,
    estimate_mlxtend,
    mine_mlxtend,
)
from modules.rules.recommender import RuleRecommender
from modules.rules.ruleset import RULE_COLUMNS, RULES_FORMAT, RuleSet, read_rules, rule_metrics
from modules.rules.scoring import AGGREGATIONS, RuleModel, RuleScores
from modules.rules.sparse_miner import count_itemsets, mine_sparse
from modules.rules.transactions import Transactions, load_transactions
from modules.rules.tuning import tune_evidence

__all__ = [
    "AGGREGATIONS", "ENGINES", "RULES_FORMAT", "RULE_COLUMNS", "Evidence", "MemoryBudgetError", "RuleModel",
    "RuleRecommender", "RuleScores", "RuleSet", "RulesError", "Transactions", "available_memory", "_mlxtend_parts",
    "apply_evidence", "check_evidence", "check_mlxtend_budget", "check_params", "count_itemsets", "estimate_mlxtend",
    "load_transactions", "mine_mlxtend", "mine_rules", "mine_sparse", "read_rules", "rule_metrics", "rule_reason",
    "tune_evidence",
]
