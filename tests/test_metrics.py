"""Metrics against hand-computed values, edge cases, and an independent implementation."""

import json
import math
import subprocess
import sys

import numpy as np
import orjson
import pytest

from modules.metrics import evaluate, score_playlist, standard_error
from modules.mpd import read_challenge, write_submission


def test_hand_computed_example():
    artist_of = {"a": "A1", "b": "A2", "c": "A1", "x": "A1", "y": "Z"}
    s = score_playlist(["x", "a", "y", "b"], ["a", "b", "c"], ["A1", "A2", "A1"], artist_of)
    assert s["r_precision"] == pytest.approx(1 / 3)
    assert s["r_precision_artist"] == pytest.approx((1 + 0.25) / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert s["ndcg"] == pytest.approx(dcg / idcg)  # (0.630930 + 0.430677) / 2.130930
    assert s["ndcg"] == pytest.approx(0.498189, abs=1e-6)
    assert s["clicks"] == 0
    assert s["recall"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("rank, clicks", [(1, 0), (10, 0), (11, 1), (20, 1), (21, 2), (500, 49)])
def test_clicks(rank, clicks):
    recs = [f"n{i}" for i in range(500)]
    recs[rank - 1] = "hit"
    assert score_playlist(recs, ["hit"])["clicks"] == clicks


def test_no_relevant_track_is_51_clicks_and_zero_scores():
    s = score_playlist([f"n{i}" for i in range(500)], ["hit"])
    assert s == {"r_precision": 0.0, "r_precision_artist": 0.0, "ndcg": 0.0, "clicks": 51.0, "recall": 0.0}
    assert score_playlist([], ["hit"])["clicks"] == 51


def test_truth_larger_than_recommendations():
    s = score_playlist(["a", "b"], ["a", "b", "c", "d", "e"])
    assert s["r_precision"] == pytest.approx(2 / 5)
    assert s["ndcg"] == pytest.approx(1.0)  # IDCG runs to min(|G|, |R|) = 2
    assert s["recall"] == pytest.approx(2 / 5)


def test_duplicates_count_once():
    s = score_playlist(["a", "a", "b"], ["a", "b"])
    assert s["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert s["ndcg"] <= 1


def _reference(recs, g_list, g_artists, artist_of):
    """An independent, literal reading of the definitions in the design notes."""
    G = set(g_list)
    top = recs[: len(G)]
    rp = len(G.intersection(top)) / len(G)
    credit = len({r for r in top if r not in G and artist_of.get(r) in set(g_artists)})
    dcg, used = 0.0, set()
    for i, r in enumerate(recs, start=1):
        if r in G and r not in used:
            dcg += 1 / math.log2(i + 1)
        used.add(r)
    idcg = sum(1 / math.log2(i + 1) for i in range(1, min(len(G), len(recs)) + 1))
    clicks = 51
    for i, r in enumerate(recs[:500], start=1):
        if r in G:
            clicks = (i - 1) // 10
            break
    return {"r_precision": rp, "r_precision_artist": rp + 0.25 * credit / len(G),
            "ndcg": dcg / idcg if idcg else 0.0, "clicks": clicks}


def test_agrees_with_independent_implementation():
    rng = np.random.default_rng(0)
    items = [f"t{i}" for i in range(300)]
    artist_of = {t: f"ar{rng.integers(40)}" for t in items}
    for _ in range(300):
        g = list(rng.choice(items, size=rng.integers(1, 60), replace=False))
        recs = list(rng.choice(items, size=rng.integers(0, 520), replace=True))
        ref = _reference(recs, g, [artist_of[x] for x in g], artist_of)
        got = score_playlist(recs, g, [artist_of[x] for x in g], artist_of)
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, abs=1e-9), key


def test_evaluate_reports_malformed_submission_as_given():
    truth = {"1": {"category": "c1", "tracks": ["a", "b"], "artists": ["A", "B"]},
             "2": {"category": "c2", "tracks": ["z"], "artists": ["Z"]}}
    rows = {1: ["a", "s", "a"] + [f"n{i}" for i in range(10)], 9: ["q"]}
    ev = evaluate(rows, truth, seeds={1: ["s"]})
    joined = "\n".join(ev.problems)
    assert "pid 2: missing" in joined and "pid 1: 13 tracks instead of 500" in joined
    assert "pid 1: 1 duplicate tracks" in joined and "pid 1: 1 seed tracks recommended" in joined
    assert "not in the truth file" in joined
    assert ev.malformed_lines == 2
    summary = ev.summary()
    assert summary["ALL"]["count"] == 2 and summary["c2"]["clicks"] == 51
    assert summary["c1"]["r_precision"] == pytest.approx(0.5)  # scored as given: R[1..2] = {a, s}


def test_evaluate_cli_json_matches_library(split_dir, tmp_path):
    challenge = read_challenge(split_dir / "challenge_set.json")
    truth = orjson.loads((split_dir / "truth.json").read_bytes())
    artists = orjson.loads((split_dir / "track_artists.json").read_bytes())
    pool = sorted(artists)
    rng = np.random.default_rng(1)
    rows = {}
    for p in challenge["playlists"]:
        held = truth[str(p["pid"])]["tracks"]
        seeds = {t["track_uri"] for t in p["tracks"]}
        cand = [u for u in list(rng.choice(held, size=min(len(held), 3), replace=False)) + pool if u not in seeds]
        rows[p["pid"]] = list(dict.fromkeys(cand))[:500]
    sub = tmp_path / "sub.csv"
    write_submission(sub, rows.items())
    out = subprocess.run([sys.executable, "-m", "modules", "evaluate", str(sub), "--truth",
                          str(split_dir / "truth.json"), "--json"], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert "malformed" not in out.stderr
    assert set(got) == {"ALL"} | {t["category"] for t in truth.values()}
    ref = [_reference(rows[int(pid)], t["tracks"], t["artists"], artists) for pid, t in truth.items()]
    for key in ("r_precision", "r_precision_artist", "ndcg", "clicks"):
        assert got["ALL"][key] == pytest.approx(np.mean([r[key] for r in ref]), abs=1e-6)
    assert got["ALL"]["r_precision"] > 0  # the planted hits count


def test_evaluate_cli_flags_malformed_lines(split_dir, tmp_path):
    sub = tmp_path / "bad.csv"
    sub.write_text("team_info,main,t,e@x\n1,spotify:track:" + "A" * 22 + "\n")
    out = subprocess.run([sys.executable, "-m", "modules", "evaluate", str(sub), "--truth",
                          str(split_dir / "truth.json"), "--strict"], capture_output=True, text=True)
    assert out.returncode == 1
    assert "malformed" in out.stderr and "missing from the submission" in out.stderr


def test_standard_error_is_the_sample_sd_over_root_n_and_the_callers_fallback_below_two():
    assert standard_error([1.0, 2.0, 3.0, 4.0]) == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert standard_error([5.0]) == 0.0
    assert standard_error([], single=float("inf")) == float("inf")
    assert math.isnan(standard_error(np.array([0.3]), single=float("nan")))
