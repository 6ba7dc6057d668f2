"""The evidence filter, its tuning on validation playlists, and the explanations: known answers and brute force."""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from modules.errors import InputError
from modules.rules import Evidence, RuleModel, Transactions, apply_evidence, load_transactions, mine_rules, read_rules
from modules.rules.evidence import check_evidence, consequent_rank
from modules.rules.explain import rule_reason
from modules.rules.tuning import GRID_CAPS, GRID_MIN_COUNTS, choose, grid_rule_counts, tune_evidence
from tests.test_rules import assert_same_rules, run_cli

T = "spotify:track:"


def _brute_force(rules, ev: Evidence) -> set[tuple]:
    """The rules ``ev`` keeps, by hand: per antecedent, sorted by count (desc), consequent count (asc), URIs."""
    f = rules.to_frame()
    f = f[f["count"] >= ev.min_count]
    by_ante: dict[tuple, list] = {}
    for a, c, cnt, cc in zip(f["antecedents"], f["consequents"], f["count"], f["consequent_count"], strict=True):
        by_ante.setdefault(tuple(a), []).append((-cnt, cc, tuple(c)))
    keep = set()
    for a, items in by_ante.items():
        items.sort()
        for _, _, c in items[: ev.max_consequents or len(items)]:
            keep.add((a, c))
    return keep


def _keys(rules) -> set[tuple]:
    f = rules.to_frame()
    return {(tuple(a), tuple(c)) for a, c in zip(f["antecedents"], f["consequents"], strict=True)}


@pytest.fixture(scope="module")
def world_rules(store):
    return mine_rules(load_transactions(store), min_support=0.01, min_confidence=0.1, max_len=3)  # count >= 4


@pytest.mark.parametrize("ev", [Evidence(6), Evidence(1, 3), Evidence(5, 2, 2.0), Evidence(4, 1)])
def test_apply_evidence_equals_brute_force(world_rules, ev):
    rules = world_rules
    out = apply_evidence(rules, ev)
    assert _keys(out) == _brute_force(rules, ev)
    assert 0 < len(out) < len(rules)
    assert (out.count >= ev.min_count).all()
    assert out.meta["evidence"] == ev.as_dict() and out.meta["rules"] == len(out)
    # the order of the mined table is kept (lift, confidence, support)
    lift = out.lift
    assert (np.diff(lift) <= 1e-12).all()


@pytest.mark.parametrize("ev,max_len", [(Evidence(4, 3, 2.0), 3), (Evidence(3, 5), 2), (Evidence(5), 3)])
def test_engines_agree_after_the_same_evidence(store, ev, max_len):
    tx = load_transactions(store)
    s = apply_evidence(mine_rules(tx, engine="sparse", min_support=0.0075, min_confidence=0.1, max_len=max_len), ev)
    m = apply_evidence(mine_rules(tx, engine="mlxtend", min_support=0.0075, min_confidence=0.1, max_len=max_len), ev)
    assert len(s) > 0
    assert_same_rules(s, m)


def test_cap_breaks_ties_by_lift_then_uri():
    # X is with A, B and C once each (ties at count 1); B is in one more playlist than A and C
    x, a, b, c = (T + n for n in "XABC")
    tx = Transactions.from_lists([[x, a], [x, b], [x, c], [b]])
    rules = mine_rules(tx, min_support=0.2, min_confidence=0.01, max_len=2)
    out = apply_evidence(rules, Evidence(1, 2))
    kept = {cons[0] for ante, cons in _keys(out) if ante == (x,)}
    assert kept == {a, c}  # B is more common, so its rule has the lower lift; A before C by URI
    rank = consequent_rank(rules)
    assert rank.min() == 0 and len(rank) == len(rules)


def test_smoothing_ranks_supported_rules_first_and_round_trips(tmp_path):
    x, y, w, z = (T + n for n in "XYWZ")
    # X in 4 playlists, with Y in 3 (3 of 4); W in one playlist, with Z (1 of 1)
    tx = Transactions.from_lists([[x, y], [x, y], [x, y], [x], [w, z]])
    rules = mine_rules(tx, min_support=0.1, min_confidence=0.01, max_len=2)
    plain = RuleModel(rules)
    assert plain.score([x, w]).uris.tolist()[:2] == [z, y]  # confidence 1.0 before 0.75
    smoothed = apply_evidence(rules, Evidence(1, None, 2.0))
    model = RuleModel(smoothed)  # smoothing from the table's metadata
    assert model.smoothing == 2.0
    res = model.score([x, w])
    assert res.uris.tolist()[:2] == [y, z]  # 3 / (4 + 2) = 0.5 before 1 / (1 + 2)
    assert res.scores[:2] == pytest.approx([0.5, 1 / 3])
    path = smoothed.write(tmp_path / "r.parquet")
    back = RuleModel.load(path)
    assert back.smoothing == 2.0 and back.score([x, w]).uris.tolist() == res.uris.tolist()
    assert model.set_smoothing(0).score([x, w]).uris.tolist()[:2] == [z, y]


def test_check_evidence_says_what_to_do():
    assert check_evidence(2, 50, 2) == Evidence(2, 50, 2.0)
    for bad, word in (((0, None, 0), "min_count"), ((1.5, None, 0), "min_count"), ((2, 0, 0), "max_consequents"),
                      ((2, True, 0), "max_consequents"), ((2, None, -1), "smoothing"),
                      ((2, None, float("nan")), "smoothing")):
        with pytest.raises(InputError, match=word):
            check_evidence(*bad)


# ------------------------------------------------------------------------------------------------- tuning

def test_grid_rule_counts_equal_the_mined_tables(train_store):
    tx = load_transactions(train_store)
    counts = grid_rule_counts(tx, 0.02)
    rules = mine_rules(tx, min_support=0.5 / tx.n_playlists, min_confidence=0.02, max_len=2)
    assert counts[(1, None)] == len(rules) > 0
    for mc in GRID_MIN_COUNTS:
        for cap in GRID_CAPS:
            assert counts[(mc, cap)] == len(apply_evidence(rules, Evidence(mc, cap))), (mc, cap)
    assert counts[(2, None)] < counts[(1, None)]


def test_choose_takes_the_smallest_table_within_one_standard_error():
    rows = [{"min_count": 1, "max_consequents": None, "smoothing": 0.0, "rules": 1000, "ndcg": 0.30, "se": 0.02},
            {"min_count": 2, "max_consequents": None, "smoothing": 0.0, "rules": 100, "ndcg": 0.285, "se": 0.02},
            {"min_count": 3, "max_consequents": None, "smoothing": 0.0, "rules": 10, "ndcg": 0.27, "se": 0.02}]
    pick, why = choose(rows)
    assert pick["min_count"] == 2 and why["best"]["min_count"] == 1
    assert why["threshold"] == pytest.approx(0.28)


@pytest.fixture(scope="module")
def validation(train_store):
    from modules.validation import carve_validation

    v = carve_validation(train_store, train_store.playlists["pid"].to_numpy(), per_category=3, seed=0)
    assert v.split is not None
    return v.split


def test_tune_evidence_reports_the_grid_and_chooses_by_its_rule(train_store, validation):
    tx = load_transactions(train_store, validation.train_pids)
    chosen, model, report = tune_evidence(tx, validation)
    grid = report["grid"]
    assert len(grid) == 5 * 3 * 2
    scored = [r for r in grid if "ndcg" in r]
    assert scored and all(0 <= r["ndcg"] <= 1 for r in scored)
    best = max(r["ndcg"] for r in scored)
    pick = report["chosen"]
    assert pick["ndcg"] >= report["threshold"] - 1e-12 and report["best_ndcg"] == best
    # nothing smaller is within one standard error of the best
    assert not [r for r in scored if r["rules"] < pick["rules"] and r["ndcg"] >= report["threshold"]]
    assert len(model.rules) == pick["rules"] and Evidence(**{k: pick[k] for k in Evidence().as_dict()}) == chosen
    assert model.smoothing == chosen.smoothing
    assert model.rules.meta["evidence"]["tuning"]["chosen"] == pick
    # the rules-only NDCG really depends on the setting (the grid is not scoring one thing 30 times)
    assert len({round(r["ndcg"], 9) for r in scored}) > 1


def test_tune_evidence_skips_what_the_budget_rules_out_before_mining(train_store, validation):
    tx = load_transactions(train_store, validation.train_pids)
    counts = grid_rule_counts(tx, 0.02)
    budget = counts[(2, None)]  # min count 1 without a cap is over it
    assert counts[(1, None)] > budget
    chosen, model, report = tune_evidence(tx, validation, max_rules=budget)
    over = [r for r in report["grid"] if r["rules"] > budget]
    assert over and all("over the budget" in r["skipped"] for r in over)
    assert all("ndcg" not in r for r in over)
    assert len(model.rules) <= budget and report["max_rules"] == budget


# ---------------------------------------------------------------------------------------------- explanations

def test_rule_reason_reads_like_a_person_and_never_cites_one_playlist():
    names = {T + "a": "Harlequin Dream by Boy & Bear", T + "b": "Song by X"}
    assert rule_reason([T + "a"], 23, 41, names) == "in 23 of 41 playlists with Harlequin Dream by Boy & Bear"
    assert rule_reason([T + "a", T + "b"], 2, 1234, names) == (
        "in 2 of 1,234 playlists with Harlequin Dream by Boy & Bear and Song by X")
    assert rule_reason([T + "a"], 1, 1, names) == ""
    assert rule_reason([T + "c"], 5, 9) == f"in 5 of 9 playlists with {T}c"


def test_model_explain_skips_single_playlist_rules():
    x, y, w, z = (T + n for n in "XYWZ")
    rules = mine_rules(Transactions.from_lists([[x, y], [x, y], [x], [w, z]]), min_support=0.1,
                       min_confidence=0.01, max_len=2)
    model = RuleModel(rules)
    res = model.score([x, w])
    text = {u: model.explain(r, {x: "Ex by A"}) for u, r in zip(res.uris, res.best_rule, strict=True)}
    assert text[y] == "in 2 of 3 playlists with Ex by A"
    assert text[z] == ""
    assert "lift" not in text[y] and "conf" not in text[y]


def test_rules_cli_writes_the_evidence(store, tmp_path):
    out = tmp_path / "r.parquet"
    res = run_cli("rules", "--mpd", str(store.path), "--out", str(out), "--min-support", "0.005", "--max-len", "2",
                  "--min-count", "3", "--max-consequents", "4", "--smoothing", "2")
    assert res.returncode == 0, res.stderr
    assert "evidence min_count 3, cap 4, m 2" in res.stdout
    rules = read_rules(out)
    meta = orjson.loads(pq.read_schema(out).metadata[b"rules"])
    assert meta["evidence"] == {"min_count": 3, "max_consequents": 4, "smoothing": 2.0}
    assert len(rules) > 0 and (rules.count >= 3).all() and consequent_rank(rules).max() < 4
    assert RuleModel.load(out).smoothing == 2.0


@pytest.mark.parametrize("rules,match", [
    ({"min_count": 0}, "min_count (--min-count) must be an integer >= 1"),
    ({"max_rules": -5}, "max_rules must be a positive integer"),
    ({"smoothing": "a lot"}, "smoothing (--smoothing) must be a number >= 0"),
    ({"min_cont": 2}, "unknown rules parameters ['min_cont']"),
])
def test_train_refuses_bad_rule_settings_before_reading_data(tmp_path, rules, match):
    res = run_cli("train", "--mpd", str(tmp_path / "no-such-dir"), "--out", str(tmp_path / "b"),
                  "--params", orjson.dumps({"rules": rules}).decode())
    assert res.returncode == 2 and match in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "b").exists()


def test_explain_many_cites_the_rule_with_most_playlists_not_the_best_scoring():
    x, y, w, z = (T + n for n in "XYWZ")
    # Y: from X in 2 of 3 playlists, from W in 1 of 1 (confidence 1, the best rule); Z: only from W, 1 of 1
    rules = mine_rules(Transactions.from_lists([[x, y], [x, y], [x], [w, y, z]]), min_support=0.1,
                       min_confidence=0.01, max_len=2)
    model = RuleModel(rules)
    res = model.score([x, w])
    best_y = model.rule(res.best_rule[list(res.uris).index(y)])
    assert best_y["antecedents"] == [w] and best_y["count"] == 1  # the scoring's best rule has no evidence
    said = model.explain_many([x, w], [y, z, T + "nope"], {x: "Ex by A"})
    assert said == ["in 2 of 3 playlists with Ex by A", "", ""]
    assert model.explain_many([], [y]) == [""]
