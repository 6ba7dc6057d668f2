"""Association rules: known answers, sparse == mlxtend exactly, scoring, the CLI and its error messages."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from modules.rules import (
    AGGREGATIONS,
    RULE_COLUMNS,
    MemoryBudgetError,
    RuleModel,
    RuleRecommender,
    RulesError,
    RuleSet,
    Transactions,
    check_params,
    load_transactions,
    mine_rules,
    read_rules,
)

T = "spotify:track:"
A, B, C, D, E = (T + x for x in "ABCDE")

# Five playlists. Counts: A, B, C = 4; D, E = 2. Pairs: AB = AC = BC = 3, DE = BD = BE = 2, others 1.
# Triples: ABC = 2 (p1, p5), BDE = 2 (p2, p4), the rest at most 1.
FIVE = [[A, B, C], [A, B, D, E], [A, C], [B, C, D, E], [A, B, C]]


def rule_keys(frame: pd.DataFrame) -> list[tuple]:
    return [(tuple(a), tuple(c)) for a, c in zip(frame["antecedents"], frame["consequents"], strict=True)]


def assert_same_rules(x: RuleSet, y: RuleSet) -> None:
    fx, fy = x.to_frame(), y.to_frame()
    assert rule_keys(fx) == rule_keys(fy)  # same rules, same order
    for col in RULE_COLUMNS[2:]:
        a, b = fx[col].to_numpy(dtype=float), fy[col].to_numpy(dtype=float)
        assert np.array_equal(np.isinf(a), np.isinf(b)), col
        fin = np.isfinite(a)
        np.testing.assert_allclose(a[fin], b[fin], rtol=0, atol=1e-9, err_msg=col)


# ------------------------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("engine", ["sparse", "mlxtend"])
def test_known_answer_five_playlists(engine):
    rules = mine_rules(Transactions.from_lists(FIVE), engine=engine, min_support=0.4, min_confidence=0.9,
                       max_len=3)
    f = rules.to_frame()
    # Confidence 1 rules. Lift 2.5 = 1 / support(E) = 1 / 0.4 (or 1 / support({B, E}) for D -> {B, E});
    # lift 1.25 = 1 / support(B) = 1 / 0.8. Ties are ordered by antecedent URIs, then consequent URIs.
    assert rule_keys(f) == [
        ((B, D), (E,)), ((B, E), (D,)), ((D,), (B, E)), ((D,), (E,)), ((E,), (B, D)), ((E,), (D,)),
        ((D,), (B,)), ((D, E), (B,)), ((E,), (B,)),
    ]
    np.testing.assert_allclose(f["lift"], [2.5] * 6 + [1.25] * 3)
    np.testing.assert_allclose(f["confidence"], 1.0)
    np.testing.assert_allclose(f["support"], 0.4)
    assert np.isinf(f["conviction"]).all()  # confidence 1: mlxtend's conviction is inf
    # leverage = 0.4 - s(A) s(C): D -> E: 0.4 - 0.4 * 0.4; D -> B: 0.4 - 0.4 * 0.8
    assert f["leverage"][3] == pytest.approx(0.24) and f["leverage"][6] == pytest.approx(0.08)
    assert list(f["antecedent_count"]) == [2, 2, 2, 2, 2, 2, 2, 2, 2]
    assert list(f["consequent_count"]) == [2, 2, 2, 2, 2, 2, 4, 4, 4]
    assert list(f.columns) == list(RULE_COLUMNS)


def test_known_answer_lower_confidence_and_pairs_only():
    tx = Transactions.from_lists(FIVE)
    f = mine_rules(tx, min_support=0.4, min_confidence=0.5, max_len=2).to_frame()
    # pairs with count >= 2: AB, AC, BC (3), BD, BE, DE (2); both directions
    assert len(f) == 12
    ab = f[[a == [A] and c == [B] for a, c in zip(f["antecedents"], f["consequents"], strict=True)]].iloc[0]
    # A -> B: confidence 3/4, lift 0.75 / 0.8, conviction (1 - 0.8) / (1 - 0.75)
    assert ab["confidence"] == pytest.approx(0.75) and ab["lift"] == pytest.approx(0.9375)
    assert ab["conviction"] == pytest.approx(0.8) and ab["leverage"] == pytest.approx(0.6 - 0.64)
    b_d = f[[a == [B] and c == [D] for a, c in zip(f["antecedents"], f["consequents"], strict=True)]].iloc[0]
    assert b_d["confidence"] == pytest.approx(0.5)
    assert f["lift"].is_monotonic_decreasing


def test_float_rounding_quirk_matches_mlxtend():
    # 0.07 * 100 = 7.000000000000001, so mlxtend grows pairs only from count 8, while a single track
    # in 7 of 100 playlists is frequent (7 / 100 >= 0.07). Both engines must agree on that.
    lists = [[A, B]] * 7 + [[C, D]] * 8 + [[E]] * 85
    tx = Transactions.from_lists(lists)
    s = mine_rules(tx, engine="sparse", min_support=0.07, min_confidence=0.5, max_len=2)
    m = mine_rules(tx, engine="mlxtend", min_support=0.07, min_confidence=0.5, max_len=2)
    assert_same_rules(s, m)
    assert rule_keys(s.to_frame()) == [((C,), (D,)), ((D,), (C,))]


# ------------------------------------------------------------------------------------ sparse == mlxtend


@pytest.mark.parametrize("min_support,min_confidence,max_len", [
    (0.01, 0.1, 3), (0.0075, 0.3, 3), (0.0125, 0.05, 2), (0.0125, 0.5, 3), (0.0075, 1.0, 2),
])
def test_sparse_equals_mlxtend_on_world(store, min_support, min_confidence, max_len):
    tx = load_transactions(store)
    s = mine_rules(tx, engine="sparse", min_support=min_support, min_confidence=min_confidence, max_len=max_len)
    m = mine_rules(tx, engine="mlxtend", min_support=min_support, min_confidence=min_confidence, max_len=max_len)
    assert len(s) > 0
    assert_same_rules(s, m)


def test_sparse_equals_mlxtend_on_random_transactions_with_pid_subset(train_store):
    rng = np.random.default_rng(7)
    pids = rng.choice(train_store.playlists["pid"].to_numpy(), size=150, replace=False)
    tx = load_transactions(train_store, pids)
    assert tx.n_playlists == 150
    for ms in (0.01, 0.02):
        s = mine_rules(tx, engine="sparse", min_support=ms, min_confidence=0.2, max_len=3)
        m = mine_rules(tx, engine="mlxtend", min_support=ms, min_confidence=0.2, max_len=3)
        assert len(s) > 0
        assert_same_rules(s, m)


def test_transactions_match_store_interactions(store):
    tx = load_transactions(store)
    inter = store.interactions()
    assert np.array_equal(tx.pids, inter.pids) and np.array_equal(tx.track_uris, inter.track_uris)
    assert (tx.matrix != inter.matrix.astype(np.int32)).nnz == 0


def test_mlxtend_longer_rules_contain_the_sparse_ones(store):
    tx = load_transactions(store)
    long = mine_rules(tx, engine="mlxtend", min_support=0.01, min_confidence=0.2, max_len=4).to_frame()
    short = mine_rules(tx, engine="sparse", min_support=0.01, min_confidence=0.2, max_len=3).to_frame()
    assert len(short) > 0
    size = [len(a) + len(c) for a, c in zip(long["antecedents"], long["consequents"], strict=True)]
    assert set(rule_keys(long[[s <= 3 for s in size]])) == set(rule_keys(short))


# ---------------------------------------------------------------------------------------------- scoring


def _model(aggregation="max_confidence") -> RuleModel:
    rs = mine_rules(Transactions.from_lists(FIVE), min_support=0.4, min_confidence=0.5, max_len=3)
    return RuleModel(rs, aggregation)


def _by_hand(seeds, agg):
    """Scores computed from the rule table by brute force (antecedent within seeds, one consequent)."""
    f = mine_rules(Transactions.from_lists(FIVE), min_support=0.4, min_confidence=0.5, max_len=3).to_frame()
    out: dict[str, list] = {}
    for a, c, conf, lift in zip(f["antecedents"], f["consequents"], f["confidence"], f["lift"], strict=True):
        if len(c) == 1 and set(a) <= set(seeds) and c[0] not in seeds:
            out.setdefault(c[0], []).append((conf, lift))
    fn = {"max_confidence": lambda r: max(x for x, _ in r), "sum_confidence": lambda r: sum(x for x, _ in r),
          "max_lift": lambda r: max(y for _, y in r), "sum_lift": lambda r: sum(y for _, y in r),
          "noisy_or": lambda r: 1 - math.prod(1 - x for x, _ in r)}[agg]
    return {u: fn(r) for u, r in out.items()}


@pytest.mark.parametrize("agg", AGGREGATIONS)
@pytest.mark.parametrize("seeds", [[D], [B, D], [A, B], [A, D, "spotify:track:unknown"], [E, D]])
def test_score_matches_brute_force(agg, seeds):
    res = _model(agg).score(seeds)
    expected = _by_hand(seeds, agg)
    assert set(res.uris) == set(expected)
    for u, s in zip(res.uris, res.scores, strict=True):
        assert s == pytest.approx(expected[u])
    assert list(res.scores) == sorted(res.scores, reverse=True)
    assert not set(res.uris) & set(seeds)


@pytest.mark.parametrize("agg", AGGREGATIONS)
def test_score_top_k_is_the_head_of_the_full_ranking(agg):
    """``k`` only sorts what can reach the top k; ties at the k-th score must still break as in the full sort."""
    rng = np.random.default_rng(3)
    lists = [[f"spotify:track:{t}" for t in rng.choice(30, size=rng.integers(3, 9), replace=False)]
             for _ in range(200)]
    model = RuleModel(mine_rules(Transactions.from_lists(lists), min_support=0.02, min_confidence=0.1,
                                 max_len=3), agg)
    seeds = lists[0] + lists[1]
    full = model.score(seeds)
    assert len(full) > 10
    if agg == "max_confidence":  # ties at the cut exist here, so the tie-break is checked
        assert len(set(full.scores.tolist())) < len(full)
    for k in (1, 3, 7, len(full) - 1, len(full), len(full) + 5):
        top = model.score(seeds, k=k)
        assert top.uris.tolist() == full.uris[:k].tolist()
        assert top.scores.tolist() == full.scores[:k].tolist()
        assert top.best_rule.tolist() == full.best_rule[:k].tolist()


def test_score_pair_rules_fire_only_with_both_seeds_and_best_rule_explains():
    model = _model()
    # seeds {B, D}: B -> D? conf 0.5; D -> E conf 1, {B, D} -> E conf 1 (pair rule), D -> B is a seed
    res = model.score([B, D])
    assert E in set(res.uris)
    firing = {(tuple(model.rule(r)["antecedents"]), tuple(model.rule(r)["consequents"])) for r in res.firing}
    assert ((B, D), (E,)) in firing and ((D, E), (B,)) not in firing
    best = model.rule(res.best_rule[list(res.uris).index(E)])
    assert best["consequents"] == [E] and best["confidence"] == 1.0
    text = model.explain(res.best_rule[0], names={B: "Song B", D: "Song D"})
    rule = model.rule(res.best_rule[0])
    assert text == (f"in {rule['count']} of {rule['antecedent_count']} playlists with "
                    + " and ".join({B: "Song B", D: "Song D"}.get(u, u) for u in rule["antecedents"]))
    assert model.score([]).uris.size == 0 and model.score(["spotify:track:nope"]).uris.size == 0
    assert len(model.score([B, D], k=1)) == 1


def test_noisy_or_combines_rules():
    model = _model("noisy_or")
    # seeds {A, B}: candidates C via A -> C (0.75), B -> C (0.75), {A, B} -> C (2/3): 1 - 0.25 * 0.25 * 1/3
    res = model.score([A, B])
    assert res.scores[list(res.uris).index(C)] == pytest.approx(1 - 0.25 * 0.25 / 3)


def test_rule_model_save_load_roundtrip(tmp_path):
    model = _model("sum_lift")
    path = model.save(tmp_path / "rules.parquet")
    again = RuleModel.load(path, "sum_lift")
    for seeds in ([A], [B, D], [A, B, C]):
        x, y = model.score(seeds), again.score(seeds)
        assert list(x.uris) == list(y.uris)
        np.testing.assert_array_equal(x.scores, y.scores)
    assert_same_rules(model.rules, read_rules(path))


def test_a_model_without_rules_saves_and_loads(tmp_path):
    """The evidence filter may keep no rule (small data, the smallest table within a standard error of the
    best); the bundle must still load."""
    from modules.rules.ruleset import _empty_ruleset

    path = RuleModel(_empty_ruleset(270), "sum_confidence").save(tmp_path / "rules.parquet")
    again = RuleModel.load(path, "sum_confidence")
    assert len(again.rules) == 0 and again.rules.n_playlists == 270
    assert len(again.score([A]).uris) == 0


# ------------------------------------------------------------------------------------------- recommender


def test_rule_recommender_fills_500_deterministically(train_store, split_dir):
    from modules.mpd import read_challenge

    rec = RuleRecommender(min_count=2, min_confidence=0.1).fit(train_store)
    twin = RuleRecommender(min_count=2, min_confidence=0.1).fit(train_store)
    assert rec.model_.n_rules > 0
    playlists = [p for p in read_challenge(split_dir / "challenge_set.json")["playlists"] if p["tracks"]]
    fired = 0
    for p in playlists[:10]:
        seeds = [t["track_uri"] for t in p["tracks"]]
        uris, scores = rec.recommend(seeds, p.get("name"))
        assert len(uris) == 500 and len(set(uris)) == 500 and not set(uris) & set(seeds)
        assert list(scores) == sorted(scores, reverse=True)
        res = rec.model_.score(seeds)
        assert uris[: len(res)] == list(res.uris[:500])  # rules first, then popularity
        fired += len(res) > 0
        assert twin.recommend(seeds, p.get("name"))[0] == uris
    assert fired > 0
    title_only, _ = rec.recommend([], "chill")
    assert title_only == rec.fallback_[:500]


def test_rule_recommender_without_rules_is_popularity(train_store):
    rec = RuleRecommender(min_support=1.0).fit(train_store)
    assert rec.model_.n_rules == 0
    assert rec.recommend([rec.fallback_[0]], k=20)[0] == rec.fallback_[1:21]


def test_rule_recommender_min_count_is_exact(train_store):
    rec = RuleRecommender(min_count=3, max_len=2, min_confidence=0.01).fit(train_store)
    assert rec.model_.rules.count.min() == 3


# --------------------------------------------------------------------------------------- bad input, CLI


@pytest.mark.parametrize("kwargs,match", [
    ({"min_support": 0.0}, r"min_support \(--min-support\) must be a number in \(0, 1\] \(got 0.0\)"),
    ({"min_support": 1.5}, r"min_support .* \(got 1.5\)"),
    ({"min_confidence": -0.1}, r"min_confidence .* \(got -0.1\)"),
    ({"max_len": 1}, r"max_len \(--max-len\) must be an integer of at least 2 \(got 1\)"),
    ({"max_len": 4}, r"sparse engine .* use --engine mlxtend"),
    ({"engine": "spark", "max_len": 4}, r"spark engine .* use --engine mlxtend"),
    ({"engine": "hadoop"}, r"engine must be one of mlxtend, sparse, spark \(got 'hadoop'\)"),
])
def test_bad_thresholds_say_what_to_do(kwargs, match):
    args = {"min_support": 0.1, "min_confidence": 0.1, "max_len": 3, "engine": "sparse"} | kwargs
    with pytest.raises(RulesError, match=match):
        check_params(**args)


def test_mlxtend_refuses_over_budget_before_running(store, monkeypatch):
    import modules.rules.mlxtend_engine as rules_module

    # far over budget: refused from item counts alone, before any pair is counted
    def no_counting(*args, **kwargs):
        raise AssertionError("counted itemsets before refusing")

    with monkeypatch.context() as m:
        m.setattr(rules_module, "count_itemsets", no_counting)
        with pytest.raises(MemoryBudgetError, match=r"would need at least .* GB .* --engine sparse .* --min-support"):
            mine_rules(store, engine="mlxtend", min_support=0.005, min_confidence=0.1, memory_budget=1e6)
    # the floor fits, the itemsets and rules do not: refused after the exact counts
    tx = load_transactions(store)
    est = rules_module.estimate_mlxtend(tx, 0.005, 3, min_confidence=0.1)
    floor = sum(rules_module._mlxtend_parts(400, est["frequent_tracks"], est["entries"], 0, 0).values())
    assert floor < est["bytes"]
    with pytest.raises(MemoryBudgetError, match=r"would need about .* GB .* frequent pairs"):
        mine_rules(tx, engine="mlxtend", min_support=0.005, min_confidence=0.1,
                   memory_budget=(floor + est["bytes"]) / 2)


def test_sparse_bounds_triples():
    with pytest.raises(MemoryBudgetError, match="candidate triples .* --max-len 2"):
        mine_rules(Transactions.from_lists(FIVE), min_support=0.4, min_confidence=0.5, max_candidate_triples=1)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "modules", "-q", *args], capture_output=True, text=True)


def test_cli_writes_sorted_rules_from_mpd_slices(world_dir, tmp_path):
    out = tmp_path / "rules.parquet"
    res = run_cli("rules", "--mpd", str(world_dir), "--out", str(out), "--min-support", "0.01",
                  "--min-confidence", "0.2")
    assert res.returncode == 0, res.stderr
    assert "rules (sparse):" in res.stdout and "400 playlists" in res.stdout
    f = pd.read_parquet(out)
    assert list(f.columns) == list(RULE_COLUMNS) and len(f) > 0
    assert all(isinstance(u, str) and u.startswith(T) for lst in f["antecedents"] for u in lst)
    assert (f["confidence"] >= 0.2).all() and (f["support"] >= 0.01).all()
    keys = list(zip(-f["lift"], -f["confidence"], -f["support"], f["antecedents"].map(tuple),
                    f["consequents"].map(tuple), strict=True))
    assert keys == sorted(keys)
    assert (f["count"] == np.rint(f["support"] * 400)).all()


@pytest.mark.parametrize("args,match", [
    (["--min-support", "0"], "error: min_support (--min-support) must be a number in (0, 1]"),
    (["--min-confidence", "2"], "error: min_confidence (--min-confidence) must be a number in (0, 1]"),
    (["--max-len", "1"], "error: max_len (--max-len) must be an integer of at least 2"),
    (["--engine", "mlxtend", "--memory-budget", "0.0001"], "--engine sparse"),
    (["--min-count", "0"], "error: min_count (--min-count) must be an integer >= 1"),
    (["--max-consequents", "0"], "error: max_consequents (--max-consequents) must be an integer >= 1"),
    (["--smoothing", "-1"], "error: smoothing (--smoothing) must be a number >= 0"),
])
def test_cli_bad_input_is_one_line(store, tmp_path, args, match):
    res = run_cli("rules", "--mpd", str(store.path), "--out", str(tmp_path / "r.parquet"), *args)
    assert res.returncode == 2
    assert match in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r.parquet").exists()


def test_threads_give_the_same_rules(store):
    tx = load_transactions(store)
    one = mine_rules(tx, min_support=0.0075, min_confidence=0.1, max_len=3)
    two = mine_rules(tx, min_support=0.0075, min_confidence=0.1, max_len=3, n_jobs=2)
    assert len(one) > 0
    assert_same_rules(one, two)


def test_transactions_from_several_slices(tmp_path, catalog):
    from modules.store import PlaylistStore, ingest
    from modules.world import write_world

    write_world(tmp_path / "w", 2100, seed=3, catalog=catalog, show_progress=False)  # three slice files
    ingest(tmp_path / "w", tmp_path / "s", show_progress=False)
    st = PlaylistStore(tmp_path / "s")
    pids = st.playlists["pid"].to_numpy()[::3]
    for sel in (None, pids):
        tx, inter = load_transactions(st, sel), st.interactions(sel)
        assert np.array_equal(tx.pids, inter.pids)
        assert (tx.matrix != inter.matrix.astype(np.int32)).nnz == 0


@pytest.mark.parametrize("way", ["rows", "columns"])
def test_both_triple_counting_ways_agree_with_mlxtend(store, monkeypatch, way):
    import modules.rules.sparse_miner as rules_module

    tx = load_transactions(store)
    m = mine_rules(tx, engine="mlxtend", min_support=0.0075, min_confidence=0.1, max_len=3)
    monkeypatch.setattr(rules_module, "_TRIPLE_WAY", way)
    s = mine_rules(tx, min_support=0.0075, min_confidence=0.1, max_len=3)
    assert (np.array([len(a) for a in s.to_frame()["antecedents"]]) == 2).any()
    assert_same_rules(s, m)
