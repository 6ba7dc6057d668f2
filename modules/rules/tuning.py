"""Choosing the evidence filter on validation playlists, under a budget of rules.

The hybrid hands its validation split (carved once, ``modules.validation``) to ``tune_evidence`` together with the
playlists outside it. Every setting of the grid ``GRID_MIN_COUNTS`` × ``GRID_CAPS`` × ``GRID_SMOOTHING``
(``evidence.py``) is scored by the NDCG of the rules alone (rules first, popularity to fill 500) on the validation
playlists that have seeds, and the choice is the **smallest rule table whose NDCG is within one standard error
of the best** (the best setting's NDCG over the playlists): a table ten times larger that wins by noise is not
worth its memory.

The budget (``max_rules``, default ``DEFAULT_MAX_RULES``) keeps the table bounded. The rule count of every
(min count, cap) is known before mining anything (``sparse_miner.pair_rule_degrees``: pair counts block by block;
exact for pair rules, a lower bound with ``max_len`` 3), so settings over the budget are never mined. The grid is
then mined once, at the smallest min count left, as long as that uncapped table stays within
``MINING_FACTOR`` times the budget (the cap is applied after mining; mining more would cost the memory the budget
is there to save), and every setting is a filter of that one table.

The grid's min counts reach higher when the data needs them. Pairs seen in ten playlists grow faster than the data
(31.5k rules at 10k MPD-shaped playlists, 13.2 M at 300k, 46.3 M at 1M; docs/rules.md): past some size
every setting of the grid is over the mining budget, and the smallest of them would be mined anyway. So the same
counting pass also counts the ``LADDER_MIN_COUNTS`` rungs above the grid (free: few pairs reach them), and
``search_min_counts`` adds rungs to the searched grid, one at a time, while the highest min count searched is out
of reach: its uncapped table over ``MINING_FACTOR`` times the budget (mining it would cost what the budget saves),
or none of its caps within the budget (nothing there could be chosen). Where min count 10 is within reach, nothing
is added: the grid, the choice and the rule table are what they were without the ladder.
"""

from __future__ import annotations

import logging
import time
from numbers import Integral

import numpy as np
from tqdm import tqdm

from modules.base import complete
from modules.errors import RulesError
from modules.metrics import SUBMISSION_SIZE, score_playlist, standard_error
from modules.rules.evidence import Evidence, apply_evidence
from modules.rules.mining import mine_rules
from modules.rules.scoring import RuleModel
from modules.rules.sparse_miner import pair_rule_degrees
from modules.rules.transactions import Transactions

log = logging.getLogger(__name__)

GRID_MIN_COUNTS = (1, 2, 3, 5, 10)
GRID_CAPS = (None, 200, 50)
GRID_SMOOTHING = (0.0, 2.0)
DEFAULT_MAX_RULES = 5_000_000
MINING_FACTOR = 4
# Min counts above the grid's, counted with it and searched only while the grid's highest is out of the budget's
# reach (``search_min_counts``); rungs above the number of playlists are not counted (no pair reaches them).
LADDER_MIN_COUNTS = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def check_max_rules(max_rules) -> int:
    if isinstance(max_rules, bool) or not isinstance(max_rules, Integral) or max_rules < 1:
        raise RulesError(f"max_rules must be a positive integer (got {max_rules!r}): the most rules the tuned "
                         f"rule table may hold, e.g. {DEFAULT_MAX_RULES:,} (the default).")
    return int(max_rules)


def grid_rule_counts(tx: Transactions, min_confidence: float, min_counts=GRID_MIN_COUNTS, caps=GRID_CAPS,
                     n_jobs: int = 1, chunk_pairs: int | None = None, spill_dir=None,
                     show_progress: bool = False) -> dict[tuple[int, int | None], int]:
    """``{(min_count, cap): number of pair rules}`` for every pair of the grid, without mining (``chunk_pairs``:
    how the pairs are counted, as in ``sparse_miner.count_itemsets``)."""
    min_counts = sorted(min_counts)
    deg = pair_rule_degrees(tx, min_counts, min_confidence, n_jobs=n_jobs, chunk_pairs=chunk_pairs,
                            spill_dir=spill_dir, show_progress=show_progress)
    return {(mc, cap): int(deg[:, t].sum() if cap is None else np.minimum(deg[:, t], cap).sum())
            for t, mc in enumerate(min_counts) for cap in caps}


def plan_grid(counts: dict, max_rules: int, min_counts=GRID_MIN_COUNTS, caps=GRID_CAPS, smoothings=GRID_SMOOTHING
              ) -> tuple[list[dict], int]:
    """The grid's rows (each setting with its rule count from ``grid_rule_counts``, ``"skipped"`` with the reason
    where the budget rules it out) and the min count to mine at: the smallest left whose uncapped table stays
    within ``MINING_FACTOR`` times the budget."""
    rows = [{"min_count": mc, "max_consequents": cap, "smoothing": float(m), "rules": counts[(mc, cap)]}
            for mc in sorted(min_counts) for cap in caps for m in smoothings]
    for r in rows:
        if r["rules"] > max_rules:
            r["skipped"] = f"over the budget of {max_rules:,} rules (counted before mining)"
    left = sorted({r["min_count"] for r in rows if "skipped" not in r})
    if not left:  # nothing fits: the smallest table of the grid, said loudly
        smallest = min(rows, key=lambda r: (r["rules"], -r["min_count"]))
        log.warning("rules: no evidence setting fits the budget of %d rules; taking the smallest (%d rules)",
                    max_rules, smallest["rules"])
        smallest.pop("skipped")
        left = [smallest["min_count"]]
    base = left[0]
    while len(left) > 1 and counts[(base, None)] > MINING_FACTOR * max_rules:
        for r in rows:
            if r["min_count"] == base and "skipped" not in r:
                r["skipped"] = (f"mining {counts[(base, None)]:,} rules before the cap is over {MINING_FACTOR}x "
                                "the budget")
        left = left[1:]
        base = left[0]
    return rows, base


def search_min_counts(counts: dict, max_rules: int, min_counts=GRID_MIN_COUNTS, ladder=LADDER_MIN_COUNTS
                      ) -> tuple[int, ...]:
    """``min_counts`` and, while the highest of them is out of reach (its uncapped table, ``counts`` from
    ``grid_rule_counts``, over ``MINING_FACTOR`` times ``max_rules``, or none of its caps within ``max_rules``),
    the next rung of ``ladder`` (one that was counted)."""
    out = sorted(int(mc) for mc in min_counts)

    def out_of_reach(mc: int) -> bool:
        smallest = min(v for (m, _), v in counts.items() if m == mc)
        return counts[(mc, None)] > MINING_FACTOR * max_rules or smallest > max_rules

    for rung in sorted(int(r) for r in ladder if r > out[-1]):
        if not out_of_reach(out[-1]) or (rung, None) not in counts:
            break
        out.append(rung)
    return tuple(out)


def count_and_plan(tx: Transactions, min_confidence: float, max_rules: int, min_counts=GRID_MIN_COUNTS,
                   caps=GRID_CAPS, smoothings=GRID_SMOOTHING, ladder=LADDER_MIN_COUNTS, n_jobs: int = 1,
                   chunk_pairs: int | None = None, spill_dir=None, show_progress: bool = False
                   ) -> tuple[dict, tuple[int, ...], list[dict], int]:
    """The rule counts of the grid and of the ladder's rungs (one counting pass), the min counts searched
    (``search_min_counts``), the grid's rows and the min count to mine at (``plan_grid``)."""
    counted = ladder_to_count(tx.n_playlists, min_counts, ladder)
    counts = grid_rule_counts(tx, min_confidence, counted, caps, n_jobs, chunk_pairs, spill_dir=spill_dir,
                              show_progress=show_progress)
    return (counts, *plan_counts(counts, max_rules, min_counts, caps, smoothings, ladder))


def ladder_to_count(n_playlists: int, min_counts=GRID_MIN_COUNTS, ladder=LADDER_MIN_COUNTS) -> list[int]:
    """The min counts whose rule tables are counted: the grid's and the ladder's rungs a pair can reach."""
    return sorted({int(mc) for mc in min_counts} | {int(r) for r in ladder if max(min_counts) < r <= n_playlists})


def plan_counts(counts: dict, max_rules: int, min_counts=GRID_MIN_COUNTS, caps=GRID_CAPS, smoothings=GRID_SMOOTHING,
                ladder=LADDER_MIN_COUNTS) -> tuple[tuple[int, ...], list[dict], int]:
    """From the counted tables: the min counts searched (``search_min_counts``), the grid's rows and the min count
    to mine at (``plan_grid``). Shared by the local and the Spark engine."""
    searched = search_min_counts(counts, max_rules, min_counts, ladder)
    if len(searched) > len(min_counts):
        top = max(min_counts)
        log.info("rules: %d rules at min count %d (uncapped) are out of reach of the budget of %d; the grid's min "
                 "counts extend to %s (uncapped: %s rules)", counts[(top, None)], top, max_rules,
                 ", ".join(map(str, searched[len(min_counts):])),
                 ", ".join(f"{counts[(mc, None)]:,}" for mc in searched[len(min_counts):]))
    rows, base = plan_grid(counts, max_rules, searched, caps, smoothings)
    return searched, rows, base


def _validation_playlists(split) -> list[tuple[list[str], list[str]]]:
    """(seeds, held-out tracks) of the validation playlists with seeds (without seeds every setting gives the
    same popularity list)."""
    out = []
    for pl in split.challenge["playlists"]:
        seeds = [t["track_uri"] for t in pl.get("tracks", [])]
        if seeds:
            out.append((seeds, list(split.truth[str(pl["pid"])]["tracks"])))
    return out


def rules_only_ndcg(model: RuleModel, playlists, popular: list[str], k: int = SUBMISSION_SIZE) -> np.ndarray:
    """Each playlist's NDCG of the rules alone: ``model``'s top ``k``, then the most popular tracks to fill."""
    out = np.zeros(len(playlists))
    for i, (seeds, truth) in enumerate(playlists):
        res = model.score(seeds, k=k)
        recs, _ = complete(res.uris.tolist(), res.scores, seeds, k, popular)
        out[i] = score_playlist(recs, truth)["ndcg"]
    return out


def choose(rows: list[dict]) -> tuple[dict, dict]:
    """The smallest rule table within one standard error of the best NDCG (ties: the higher NDCG, then the
    higher min count); returns it and the rule (best, its standard error, threshold)."""
    scored = [r for r in rows if r.get("ndcg") is not None]
    best = max(scored, key=lambda r: (r["ndcg"], -r["rules"]))
    threshold = best["ndcg"] - best["se"]
    near = [r for r in scored if r["ndcg"] >= threshold] or [best]  # NaN: the fallback's one unscored table
    pick = min(near, key=lambda r: (r["rules"], -r["ndcg"], -r["min_count"]))
    return pick, {"best": _key(best), "best_ndcg": best["ndcg"], "best_se": best["se"], "threshold": threshold}


def _key(row: dict) -> dict:
    return {k: row[k] for k in ("min_count", "max_consequents", "smoothing")}


def tune_evidence(tx: Transactions, split, *, min_confidence: float = 0.02, max_len: int = 2,
                  aggregation: str = "sum_confidence", engine: str = "sparse", n_jobs: int = 1,
                  max_rules: int = DEFAULT_MAX_RULES, min_counts=GRID_MIN_COUNTS, caps=GRID_CAPS,
                  smoothings=GRID_SMOOTHING, ladder=LADDER_MIN_COUNTS, show_progress: bool = False,
                  chunk_pairs: int | None = None, planned: tuple | None = None) -> tuple[Evidence, RuleModel, dict]:
    """Choose the evidence settings on ``split``'s validation playlists, mining ``tx`` (the playlists outside it).

    Returns the chosen ``Evidence``, the ``RuleModel`` of ``tx`` at that setting (its rule table's
    ``meta["evidence"]["tuning"]`` holds the report) and the report: every setting's rule count and validation
    NDCG (or why it was skipped), the choice and the rule that made it. Pairs are counted as ``chunk_pairs`` says
    (``sparse_miner.count_itemsets``; None: in chunks of playlists on disk when the pair table could be large).
    ``ladder``: the min counts above ``min_counts`` the grid may extend to (``search_min_counts``; empty: never).
    ``planned``: ``count_and_plan``'s answer for these arguments, when the caller has counted already (a benchmark
    timing the steps apart).
    """
    max_rules = check_max_rules(max_rules)
    t0 = time.perf_counter()
    playlists = _validation_playlists(split)
    col_counts = np.asarray(tx.matrix.sum(axis=0)).ravel()
    popular = [str(u) for u in tx.track_uris[np.lexsort((tx.track_uris, -col_counts))][:SUBMISSION_SIZE * 4]]
    if planned is None:
        planned = count_and_plan(tx, min_confidence, max_rules, min_counts, caps, smoothings, ladder, n_jobs,
                                 chunk_pairs, show_progress=show_progress)
    rows, base = planned[2], planned[3]
    rules = mine_rules(tx, engine=engine, min_support=min(1.0, (base - 0.5) / tx.n_playlists),
                       min_confidence=min_confidence, max_len=max_len, n_jobs=n_jobs, chunk_pairs=chunk_pairs,
                       show_progress=show_progress)
    log.info("rules: tuning the evidence filter on %d validation playlists: %d rules mined at min count %d",
             len(playlists), len(rules), base)
    return score_grid(rules, rows, base, playlists, popular, aggregation=aggregation, max_rules=max_rules, t0=t0,
                      show_progress=show_progress)


def score_grid(rules, rows: list[dict], base: int, playlists, popular: list[str], *, aggregation: str,
               max_rules: int, t0: float, show_progress: bool = False) -> tuple[Evidence, RuleModel, dict]:
    """Score every planned setting of ``rows`` on the validation ``playlists`` with the ``rules`` mined at min
    count ``base``, choose (``choose``) and return the chosen ``Evidence``, its ``RuleModel`` and the report
    (``t0``: when the tuning began, for its ``seconds``). Shared by the local and the Spark engine."""
    todo = [r for r in rows if "skipped" not in r]
    models: dict[tuple, RuleModel] = {}
    bar = tqdm(todo, desc="rule evidence", unit="setting", disable=not show_progress)
    for r in bar:
        key = (r["min_count"], r["max_consequents"])
        if key not in models:
            models.clear()  # one table at a time
            table = apply_evidence(rules, Evidence(r["min_count"], r["max_consequents"]))
            models[key] = RuleModel(table, aggregation, smoothing=0.0)
        model = models[key]
        r["rules"] = len(model.rules)  # exact now (the count above is a bound with max_len 3)
        if r["rules"] > max_rules:
            r["skipped"] = f"over the budget of {max_rules:,} rules"
            continue
        ndcg = rules_only_ndcg(model.set_smoothing(r["smoothing"]), playlists, popular)
        r["ndcg"] = float(ndcg.mean()) if len(ndcg) else 0.0
        r["se"] = standard_error(ndcg)
    bar.close()
    models.clear()
    if not any("ndcg" in r for r in rows):  # every mined setting was over the budget: the smallest of them
        r = min(todo, key=lambda r: r["rules"])
        r.pop("skipped", None)
        r["ndcg"], r["se"] = float("nan"), 0.0
    pick, why = choose([r for r in rows if "ndcg" in r])
    chosen = Evidence(pick["min_count"], pick["max_consequents"], pick["smoothing"])
    report = {"max_rules": max_rules, "validation_playlists": len(playlists), "mined_min_count": base,
              "chosen": {**_key(pick), "rules": pick["rules"], "ndcg": pick["ndcg"]}, **why,
              "rule": "the smallest rule table within one standard error of the best validation NDCG",
              "grid": rows, "seconds": round(time.perf_counter() - t0, 1)}
    table = apply_evidence(rules, chosen)
    table.meta["evidence"]["tuning"] = report
    log.info("rules: evidence %s chosen (%d rules, validation NDCG %.4f; best %.4f ± %.4f at %s) in %.0f s",
             chosen.label(), pick["rules"], pick["ndcg"], why["best_ndcg"], why["best_se"],
             Evidence(**why["best"]).label(), report["seconds"])
    return chosen, RuleModel(table, aggregation), report
