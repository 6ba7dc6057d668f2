"""The rules fired once per request for the seeds: what the retrieval's ``RuleScores`` carries (``fired``) explains the
returned rows as firing the rules again did, and the scores over the fired candidates only equal those over every
rule track (``modules.rules.scoring``, ``Recommender._explain``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modules.rules import AGGREGATIONS, RuleModel, Transactions, mine_rules

T = "spotify:track:"


def _random_model(agg: str, seed: int = 3) -> tuple[RuleModel, list[list[str]]]:
    rng = np.random.default_rng(seed)
    lists = [[f"{T}{t}" for t in rng.choice(40, size=rng.integers(3, 10), replace=False)] for _ in range(300)]
    rules = mine_rules(Transactions.from_lists(lists), min_support=0.01, min_confidence=0.05, max_len=3)
    return RuleModel(rules, agg), lists


def _same_scores(x, y) -> None:
    for name in ("uris", "scores", "best_rule", "firing", "ids"):
        a, b = getattr(x, name), getattr(y, name)
        assert a.dtype == b.dtype and a.tolist() == b.tolist(), name


@pytest.mark.parametrize("agg", AGGREGATIONS)
def test_compact_candidate_arrays_score_as_the_per_track_ones(agg, monkeypatch):
    """``_scores`` over the fired candidates only (few rules fired) gives what the arrays over every rule track
    give, bit for bit: candidates, order, scores (summed in the same order), best rules, for every aggregation."""
    model, lists = _random_model(agg)
    rng = np.random.default_rng(7)
    for i in range(40):
        seeds = list(dict.fromkeys(lists[i] + lists[i + 1] + [f"{T}unknown{i}"]))
        rng.shuffle(seeds)
        for recent in (seeds, seeds[-5:], seeds[-1:]):
            for k in (None, 3, 25):
                monkeypatch.setattr(model, "COMPACT", 10**9)
                compact = model.score(recent, k=k)
                monkeypatch.setattr(model, "COMPACT", 0)
                _same_scores(compact, model.score(recent, k=k))
                assert compact.fired.tolist() == model.fire(recent)[0].tolist()


@pytest.mark.parametrize("agg", ["sum_confidence", "max_lift"])
def test_explanations_from_the_fired_rules_equal_firing_again(agg):
    model, lists = _random_model(agg)
    names = {u: f"song {u[-2:]}" for lst in lists for u in lst}
    for i in range(30):
        seeds = lists[i] + lists[i + 2]
        res = model.score(seeds, k=10)
        candidates = [*res.uris.tolist(), *seeds[:2], f"{T}nope", *(f"{T}{t}" for t in range(40))]
        assert model.explain_many(seeds, candidates, names, fired=res.fired) == model.explain_many(
            seeds, candidates, names)
    assert model.explain_many([], [f"{T}1"], fired=model.score([]).fired) == [""]


# -- the whole request: the shared result against firing three times (the session's tiny bundle) -----------------

@pytest.fixture(scope="module")
def rec(tiny_bundle):
    from modules.recommender import Recommender

    return Recommender.load(tiny_bundle)


def _answers(rec, requests) -> str:
    out = rec.recommend_columns_batch(requests)
    return json.dumps([{k: np.asarray(v).tolist() for k, v in a.items()} for a in out])


def test_answers_with_the_shared_rule_result_equal_firing_three_times(rec, split_dir, monkeypatch):
    """Every column of every answer (tracks, scores, parts, explanations), long playlists (recent seeds scored) and
    short, titles or not, feature weights or not, is the same when the explanations fire the rules themselves and
    the scores use arrays over every rule track."""
    from modules.mpd import read_challenge

    playlists = read_challenge(split_dir / "challenge_set.json")["playlists"]
    requests = []
    for i, p in enumerate(playlists[:60]):
        seeds = [t["track_uri"] for t in p["tracks"]]
        requests.append({"seed_track_uris": seeds, "title": p.get("name"), "k": 40, "explain": True,
                         **({"weights": {"energy": 2.0}} if i % 7 == 0 else {})})
    assert sum(len(r["seed_track_uris"]) > 5 for r in requests) >= 10
    shared = _answers(rec, requests)
    assert sum("playlists with" in e for a in json.loads(shared) for e in a["explanation"]) > 0  # rules explain
    with monkeypatch.context() as m:
        m.setattr(type(rec.hybrid), "fired_rules", staticmethod(lambda retrieved: None))
        m.setattr(RuleModel, "COMPACT", 0)
        assert _answers(rec, requests) == shared
