"""The rule-based candidate pool: ``RuleModel`` scores the tracks a playlist's seeds point to through rules.

What it is
----------
``RuleModel`` holds a ``RuleSet`` (``ruleset.py``) in memory, indexed by antecedent (1→1 and 2→1 rules), and
``RuleModel.score(seeds, k)`` returns ``RuleScores``: the candidates best first, their aggregated scores, the
rule that best explains each (``explain`` turns it into a sentence, ``explain.py``) and every rule that fired.
Confidence here is the smoothed one, ``count / (antecedent_count + m)`` (``evidence.py``; ``m`` from the rule
file's metadata). ``RuleRecommender`` (``recommender.py``) ranks with it alone (rules first, then popularity).
The hybrid reaches it only through its adapter, ``RuleSource`` in ``modules/hybrid/sources/rules.py``, which mines
it on the training playlists (``fit_rules``, with the evidence filter chosen on validation), asks
``score(seeds, k=n_rule_candidates)`` (default 300) in ``retrieve(queries, n)``, fills the rule features
(``PART_FEATURES["rules"]``: summed confidence, best rule's confidence and log lift, rank, found) from the same
``RuleScores`` in ``features(query, candidates)``, and saves and loads it as the bundle's ``rules.parquet``
(``Bundle.rules_file``).

What you may change
-------------------
* Free parameters: ``aggregation`` (one of ``AGGREGATIONS``; ``sum_confidence`` won on validation,
  docs/rules.md) and the mining thresholds given through ``HybridRecommender(rules={...})`` or
  ``RuleRecommender``: ``min_count`` or ``min_support``, the evidence filter's ``max_consequents`` and
  ``smoothing`` (without any of these the hybrid chooses them on its validation playlists, ``tuning.py``),
  ``min_confidence``, ``max_len`` (2 or 3 with the sparse engine);
  ``n_jobs`` changes speed only. Each changes a trained bundle's answers, so re-validate
  (``python benchmarks/rules_bench.py tune``).
* Invariants the tests rely on (``tests/test_rules.py``): ``score`` equals a brute-force aggregation for every
  aggregation; it is deterministic (ties: best rule's confidence, its lift, then URI order) and ``k`` returns
  exactly the head of the full ranking; seeds are never candidates; a 2→1 rule fires only when both its
  antecedents are seeds; ``best_rule`` and ``firing`` are rows of ``RuleModel.rules``; ``save``/``load``
  round-trips. Upstream, the sparse miner gives exactly mlxtend's rules (same rules, order and metrics): a
  change to counting belongs in ``sparse_miner.py`` and must keep those tests green.

What must stay
--------------
* The contract ``RuleSource`` reads: ``score(seed_track_uris, k)`` → ``RuleScores`` (``ids`` index
  ``rules.track_uris``, ``best_rule`` rows of ``rules``), ``rules.track_uris``, ``rules.metrics(rows)``
  (``confidence``, ``lift``), ``rule(row)`` / ``explain(row)`` for the explanations, ``load(path, aggregation)``
  and ``save(path)``. A new rule signal is a new column in ``RuleSource.features`` (and its name in
  ``PART_FEATURES``), not a change to the hybrid.
* Determinism: the same rules and seeds give the same candidates and scores, bit for bit, in every process
  (the service's batches and the same-bytes check on the 3k world depend on it).
* The file format: ``rules.parquet`` is ``RuleSet.write`` / ``read_rules`` (``RULES_FORMAT``); changing it means
  a new ``RULES_FORMAT``, with ``read_rules`` loading or refusing (with a message) files of the old one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from modules.errors import RulesError
from modules.rules.evidence import evidence_of, smoothed_confidence
from modules.rules.explain import MIN_EXPLAIN_COUNT, rule_reason
from modules.rules.ruleset import RULE_COLUMNS, RuleSet, read_rules

if TYPE_CHECKING:
    from modules.uri_pool import UriPool

log = logging.getLogger(__name__)

AGGREGATIONS = ("max_confidence", "sum_confidence", "max_lift", "sum_lift", "noisy_or")


@dataclass
class RuleScores:
    """Candidates for one playlist, best first.

    ``uris`` and ``scores`` are arrays of shape ``[n_candidates]``; ``best_rule[i]`` is the row (in
    ``RuleModel.rules``) of the rule that best explains ``uris[i]`` (highest confidence, then lift);
    ``firing`` holds every rule row whose antecedent is contained in the seeds; ``ids`` are the candidates'
    positions in ``RuleSet.track_uris``. ``fired`` is what ``RuleModel.fire`` gave for the seeds (rows of the
    model's index, seeds' consequents included), so the same request's explanations (``explain_many(fired=…)``)
    do not fire the rules again.
    """

    uris: np.ndarray
    scores: np.ndarray
    best_rule: np.ndarray
    firing: np.ndarray
    ids: np.ndarray
    fired: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.uris)


class RuleModel:
    """Rules held in memory, indexed by antecedent, to score a playlist's candidates from its seeds.

    Only rules with one consequent and one or two antecedent tracks are indexed (1→1 and 2→1; longer
    antecedents would need every subset of the seeds to be looked up). The index is a sorted array of
    antecedent keys with the span of their rules (strongest first): a playlist of 100 seeds costs one
    vectorised lookup of its seeds and one of the pairs of seeds that both start some 2→1 rule.

    Parameters
    ----------
    rules : RuleSet
    aggregation : {"max_confidence", "sum_confidence", "max_lift", "sum_lift", "noisy_or"}, default="sum_confidence"
        How the rules that fire for one candidate combine into its score (see ``score``).
    smoothing : float, default=None
        The ``m`` of the smoothed confidence ``count / (antecedent_count + m)`` that ranks and scores
        (``evidence.py``); ``None`` takes the one recorded in ``rules.meta["evidence"]`` (0 when there is none).

    Examples
    --------
    >>> model = RuleModel.load("rules.parquet")                      # doctest: +SKIP
    >>> res = model.score(["spotify:track:a", "spotify:track:b"])     # doctest: +SKIP
    >>> model.explain(res.best_rule[0], names)                       # doctest: +SKIP
    'in 23 of 41 playlists with Harlequin Dream by Boy & Bear'
    """

    COMPACT = 16  # fewer fired rules than tracks / COMPACT: ``_scores`` keeps its per-candidate arrays compact

    def __init__(self, rules: RuleSet, aggregation: str = "sum_confidence", smoothing: float | None = None):
        if aggregation not in AGGREGATIONS:
            raise RulesError(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {aggregation!r}).")
        self.rules = rules
        self.aggregation = aggregation
        self.smoothing = evidence_of(rules).smoothing if smoothing is None else float(smoothing)
        self._build()

    @classmethod
    def load(cls, path: str | Path, aggregation: str = "sum_confidence") -> RuleModel:
        """A model from a rules Parquet file (the output of ``python -m modules rules``)."""
        return cls(read_rules(path), aggregation)

    def save(self, path: str | Path) -> Path:
        return self.rules.write(path)

    def share_uris(self, pool: UriPool) -> None:
        """Hold ``pool``'s strings for the rules' track URIs (``modules.uri_pool``: equal strings, so no score
        changes) and build ``index_`` again over them (it holds the old strings)."""
        self.rules.track_uris = pool.share(self.rules.track_uris)
        self._index_uris()

    def _index_uris(self) -> None:
        self.index_ = {u: i for i, u in enumerate(self.rules.track_uris.tolist())}

    def _build(self) -> None:
        r = self.rules
        ante, cons = r.antecedents, r.consequents
        n_ante = (ante >= 0).sum(axis=1)
        n_cons = (cons >= 0).sum(axis=1)
        usable = np.flatnonzero((n_cons == 1) & (n_ante >= 1) & (n_ante <= 2))
        if len(usable) < len(r):
            log.debug("RuleModel indexes %d of %d rules (one consequent, 1-2 antecedent tracks)", len(usable), len(r))
        a0 = ante[usable, 0].astype(np.int64)
        a1 = ante[usable, 1].astype(np.int64) if ante.shape[1] > 1 else np.full(len(usable), -1, np.int64)
        lift = r.metrics(usable, names=["lift"])["lift"]
        conf = self.confidence(usable)
        # group by antecedent; inside a group, strongest rule first (lexsort is stable: then by rule row)
        order = np.lexsort((-lift, -conf, a0 * (len(r.track_uris) + 1) + (a1 + 1)))
        self.rule_ids_ = usable[order]
        self.consequent_ = cons[self.rule_ids_, 0].astype(np.int64)
        self.confidence_ = conf[order]
        self.lift_ = lift[order]
        del conf, lift
        a0, a1 = a0[order], a1[order]
        if len(a0):
            starts = np.flatnonzero(np.r_[True, (a0[1:] != a0[:-1]) | (a1[1:] != a1[:-1])])
            ends = np.r_[starts[1:], len(a0)]
        else:
            starts = ends = np.zeros(0, np.int64)
        n_items = len(r.track_uris)
        single = a1[starts] < 0
        # sorted keys of the antecedents (one item: the item; two: a0 * n_items + a1) and their row spans
        self.single_keys_ = a0[starts[single]]
        self.single_spans_ = np.column_stack([starts[single], ends[single]])
        self.pair_keys_ = a0[starts[~single]] * n_items + a1[starts[~single]]
        self.pair_spans_ = np.column_stack([starts[~single], ends[~single]])
        self.pair_item_ = np.zeros(n_items, bool)
        self.pair_item_[a0[starts[~single]]] = True
        self.pair_item_[a1[starts[~single]]] = True
        self._index_uris()

    @property
    def n_rules(self) -> int:
        return len(self.rule_ids_)

    def set_smoothing(self, smoothing: float) -> RuleModel:
        """Score with another ``m`` from now on (the index keeps its order: for one antecedent the smoothed
        confidence orders its rules as the plain one does); returns ``self``."""
        self.smoothing = float(smoothing)
        self.confidence_ = self.confidence(self.rule_ids_)
        return self

    def confidence(self, rows) -> np.ndarray:
        """The smoothed confidence (the one that scores) of rule rows of ``rules``; with ``m`` 0, the rule
        table's own confidence, bit for bit."""
        r = self.rules
        if self.smoothing == 0:
            return r.metrics(rows, names=["confidence"])["confidence"]
        return smoothed_confidence(r.count[rows], r.antecedent_count[rows], self.smoothing)

    @staticmethod
    def _lookup(keys: np.ndarray, spans: np.ndarray, query: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(keys, query)
        pos = pos[pos < len(keys)]
        hit = pos[keys[pos] == query[: len(pos)]] if len(pos) else pos
        return spans[hit]

    def _seed_ids(self, seed_track_uris) -> np.ndarray:
        """The known seeds' columns, sorted, each once."""
        get = self.index_.get
        return np.unique(np.fromiter((i for i in (get(u) for u in seed_track_uris) if i is not None), np.int64))

    def fire(self, seed_track_uris) -> tuple[np.ndarray, np.ndarray]:
        """Rows (in the index arrays) of the rules whose antecedent is inside the seeds; and the seed ids.

        Vectorised lookups in sorted key arrays: the seeds' own rules, then every pair of seeds that both
        start some 2→1 rule (4,950 pairs for 100 such seeds, one ``searchsorted``).
        """
        ids = self._seed_ids(seed_track_uris)
        spans = [self._lookup(self.single_keys_, self.single_spans_, ids)]
        p = ids[self.pair_item_[ids]]
        if len(p) > 1:
            i, j = np.triu_indices(len(p), 1)
            spans.append(self._lookup(self.pair_keys_, self.pair_spans_, p[i] * len(self.pair_item_) + p[j]))
        sp = np.concatenate(spans)
        if len(sp) == 0:
            return np.zeros(0, np.int64), ids
        lengths = sp[:, 1] - sp[:, 0]
        offsets = np.repeat(sp[:, 0] - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
        return offsets + np.arange(int(lengths.sum())), ids

    def score(self, seed_track_uris, k: int | None = None, aggregation: str | None = None) -> RuleScores:
        """Score every candidate a rule points to from these seeds (seeds themselves excluded).

        Aggregations of the rules ``r`` that fire for a candidate:
        ``max_confidence`` = max conf(r); ``sum_confidence`` = Σ conf(r); ``max_lift`` = max lift(r);
        ``sum_lift`` = Σ lift(r); ``noisy_or`` = 1 − Π (1 − conf(r)). Ties are broken by the best rule's
        confidence, then its lift, then URI order, so results are deterministic. Cost: linear in the number
        of firing rules (dense per-track accumulators, no sort of the rules), plus a sort of the candidates.

        Parameters
        ----------
        seed_track_uris : iterable of str
        k : int, default=None
            Keep the best ``k`` candidates (all if None).
        aggregation : str, default=None
            Override the model's aggregation for this call.
        """
        agg = self._aggregation(aggregation, seed_track_uris)
        rows, seeds = self.fire(seed_track_uris)
        return self._scores(rows, seeds, k, agg)

    @staticmethod
    def _aggregation(aggregation: str | None, seed_track_uris) -> str:
        if aggregation and aggregation not in AGGREGATIONS:
            raise RulesError(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {aggregation!r}).")
        if isinstance(seed_track_uris, str):
            raise TypeError("seed_track_uris must be a list of track URIs, not one string; wrap it in a list.")
        return aggregation

    def _scores(self, rows: np.ndarray, seeds: np.ndarray, k: int | None, agg: str | None) -> RuleScores:
        """The candidates of the fired index ``rows`` (seeds' columns ``seeds`` excluded), ranked (``score``)."""
        agg = agg or self.aggregation
        fired = rows
        cons = self.consequent_[rows]
        if len(seeds) and len(cons):
            is_seed = np.zeros(len(self.pair_item_), bool)
            is_seed[seeds] = True
            keep = ~is_seed[cons]
            rows, cons = rows[keep], cons[keep]
        if len(rows) == 0:
            z = np.zeros(0, np.int64)
            return RuleScores(np.zeros(0, object), np.zeros(0, np.float64), z, self.rule_ids_[rows], z, fired)
        n_items = len(self.pair_item_)
        conf, lift = self.confidence_[rows], self.lift_[rows]
        if self.COMPACT * len(cons) < n_items:
            # few rules fired: the per-candidate arrays span the candidates, not every track (the same numbers:
            # maxima and minima do not depend on the order, and bincount adds each slot's weights in the rows'
            # order either way); ~0.1 ms less per call on the demo bundle's 32,257 rule tracks
            cand, slot = np.unique(cons, return_inverse=True)
            width, pick = len(cand), slice(None)
        else:
            cand, slot, width = None, cons, n_items
        # best rule per candidate: highest confidence, then highest lift, then first row
        best_conf = np.full(width, -np.inf)
        np.maximum.at(best_conf, slot, conf)
        m = conf == best_conf[slot]
        best_lift = np.full(width, -np.inf)
        np.maximum.at(best_lift, slot[m], lift[m])
        m &= lift == best_lift[slot]
        best_row = np.full(width, np.iinfo(np.int64).max)
        np.minimum.at(best_row, slot[m], rows[m])
        if cand is None:
            cand = pick = np.flatnonzero(best_conf > -np.inf)
        best = best_row[pick]
        if agg == "max_confidence":
            score = best_conf[pick]
        elif agg == "max_lift":
            top = np.full(width, -np.inf)
            np.maximum.at(top, slot, lift)
            score = top[pick]
        elif agg == "sum_confidence":
            score = np.bincount(slot, weights=conf, minlength=width)[pick]
        elif agg == "sum_lift":
            score = np.bincount(slot, weights=lift, minlength=width)[pick]
        else:  # noisy_or
            with np.errstate(divide="ignore"):
                score = -np.expm1(np.bincount(slot, weights=np.log1p(-conf), minlength=width)[pick])
        if k is not None and k < len(cand) and np.isfinite(score).all():
            # only what can reach the top k (score at least the k-th best, ties included) goes through the
            # four-key sort: a 100-seed playlist fires rules for thousands of candidates
            kth = np.partition(score, len(score) - k)[len(score) - k]
            sel = np.flatnonzero(score >= kth)
            cand, best, score = cand[sel], best[sel], score[sel]
        rank = np.lexsort((cand, -self.lift_[best], -self.confidence_[best], -score))
        if k is not None:
            rank = rank[:k]
        return RuleScores(self.rules.track_uris[cand[rank]], score[rank], self.rule_ids_[best[rank]],
                          self.rule_ids_[rows], cand[rank], fired)

    def rule(self, row: int) -> dict:
        """One rule as a plain dict (antecedents, consequents, counts, support, confidence, lift, …)."""
        r = self.rules
        out = {"antecedents": [r.track_uris[i] for i in r.antecedents[row] if i >= 0],
               "consequents": [r.track_uris[i] for i in r.consequents[row] if i >= 0]}
        m = r.metrics([row])
        for name in RULE_COLUMNS[2:]:
            v = m[name][0] if name in m else getattr(r, name)[row]
            out[name] = int(v) if name.endswith("count") else float(v)
        return out

    def explain_many(self, seed_track_uris, candidate_uris, names: dict | None = None,
                     fired: np.ndarray | None = None) -> list[str]:
        """Why each candidate follows from these seeds, citing the firing rule with the most playlists behind it
        (ties: the higher smoothed confidence, then the first row), not the best-scoring one: "in 23 of 41
        playlists with A" convinces where "in 1 of 1" does not. ``""`` where no rule with at least
        ``explain.MIN_EXPLAIN_COUNT`` playlists points to the candidate. ``fired``: the seeds' ``RuleScores.fired``
        when they were scored already (the same answer without firing the rules again)."""
        uris = list(candidate_uris)
        out = [""] * len(uris)
        rows = self.fire(seed_track_uris)[0] if fired is None else fired
        ids = np.fromiter((self.index_.get(u, -1) for u in uris), np.int64, len(uris))
        if not len(rows) or not (ids >= 0).any():
            return out
        r = self.rules
        want = np.zeros(len(self.pair_item_) + 1, bool)
        want[ids[ids >= 0]] = True
        cons = self.consequent_[rows]
        rule = self.rule_ids_[rows]
        keep = want[cons] & (r.count[rule] >= MIN_EXPLAIN_COUNT)
        rows, cons, rule = rows[keep], cons[keep], rule[keep]
        order = np.lexsort((rule, -self.confidence_[rows], -r.count[rule], cons))
        cons, rule = cons[order], rule[order]
        first = np.r_[True, cons[1:] != cons[:-1]] if len(cons) else np.zeros(0, bool)
        best = dict(zip(cons[first].tolist(), rule[first].tolist(), strict=True))
        at = [(i, best[c]) for i, c in enumerate(ids.tolist()) if c in best]
        if at:
            # the rows' counts and antecedents in a few array reads, then ``explain``'s sentence for each
            chosen = np.array([row for _, row in at], np.int64)
            ante = r.antecedents[chosen]
            uris = np.where(ante >= 0, r.track_uris[np.maximum(ante, 0)], None).tolist()
            for (i, _), a, count, ante_count in zip(at, uris, r.count[chosen].tolist(),
                                                    r.antecedent_count[chosen].tolist(), strict=True):
                out[i] = rule_reason([u for u in a if u is not None], int(count), int(ante_count), names)
        return out

    def explain(self, row: int, names: dict | None = None) -> str:
        """Why a rule row (e.g. from ``RuleScores.best_rule``) points to its consequent, as a person would say it
        (``explain.rule_reason``: "in 23 of 41 playlists with A"); ``""`` when the rule rests on fewer than
        ``explain.MIN_EXPLAIN_COUNT`` playlists. ``names`` maps URI -> display name."""
        r, row = self.rules, int(row)
        ante = [r.track_uris[i] for i in r.antecedents[row] if i >= 0]
        return rule_reason(ante, int(r.count[row]), int(r.antecedent_count[row]), names)
