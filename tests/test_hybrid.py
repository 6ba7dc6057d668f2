"""The hybrid recommender and its bundle: contract, explanations, bad input, degraded data, CLI."""

import json
import shutil
import subprocess
import sys

import numpy as np
import orjson
import pandas as pd
import pytest
from conftest import TINY_PARAMS as PARAMS

from modules.bundle import Bundle
from modules.errors import BundleError
from modules.hybrid import FUSION_KINDS, PER_CUT, _choose_fusion_kind
from modules.mpd import read_challenge, read_submission
from modules.recommender import RESULT_COLUMNS, Recommender, train_bundle


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle


@pytest.fixture(scope="module")
def rec(bundle):
    return Recommender.load(bundle)


@pytest.fixture(scope="module")
def challenge(split_dir):
    return read_challenge(split_dir / "challenge_set.json")


def test_bundle_layout_and_manifest(bundle, rec):
    # the on-disk format itself (what another program reading a bundle relies on): spelled out on purpose
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["format"] == "playlist-bundle/2"
    assert m["parts"] == {"two_tower": "two_tower/", "rules": "rules.parquet", "content": "content/", "als": "als/",
                          "fusion": "fusion/"}
    for f in [*m["parts"].values(), "tracks.parquet", "two_tower/saved_model/saved_model.pb"]:
        assert (bundle / f).exists(), f
    assert {"tensorflow", "sklearn", "modules"} <= set(m["versions"])
    assert m["data"]["playlists"] == 350 and len(m["data"]["fingerprint"]) == 16
    v = m["validation"]
    assert v["playlists"] == 20 and v["cuts"] > v["playlists"] and v["chosen"] in FUSION_KINDS
    assert 0 <= v["fusion"][v["chosen"]]["ndcg"] <= 1 and "rule" in v["choice"]
    assert rec.manifest == m
    # the rules' evidence filter was chosen on the validation playlists, and the manifest and the file say which
    ev = m["rules_evidence"]
    chosen = ev["tuning"]["chosen"]
    assert {k: ev[k] for k in ("min_count", "max_consequents", "smoothing")} == {
        k: chosen[k] for k in ("min_count", "max_consequents", "smoothing")}
    assert len(ev["tuning"]["grid"]) == 30 and ev["tuning"]["max_rules"] == 5_000_000
    rules = rec.rule_model.rules
    assert rules.meta["evidence"] == ev and (rules.count >= ev["min_count"]).all()
    # so were the content model's sound/tags blend and album weight: the best of its grid, and the model uses it
    cb = m["content_blend"]
    assert len(cb["grid"]) == 12 and cb["chosen"]["ndcg"] == max(r["ndcg"] for r in cb["grid"])
    content = rec.content_model
    assert cb["chosen_params"] == {"w_num": content.w_num, "w_text": content.w_text,
                                   "album_weight": content.album_weight}


def test_recommend_contract_parts_and_explanations(rec, challenge):
    p = next(p for p in challenge["playlists"] if len(p["tracks"]) >= 10)
    seeds = [t["track_uri"] for t in p["tracks"]]
    df = rec.recommend(seeds, p.get("name"), k=500)
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert len(df) == 500 == df["track_uri"].nunique()
    assert not set(df["track_uri"]) & set(seeds)
    assert (np.diff(df["score"].to_numpy()) <= 1e-12).all()
    assert df["rank"].tolist() == list(range(1, 501))
    assert df["explanation"].head(50).str.len().gt(0).all()
    assert df["explanation"].iloc[50:].eq("").all()  # explain=50 by default
    # a rule speaks when one with at least two playlists points from the seeds to the track, and only then
    top = df.head(50)
    expected = rec.rule_model.explain_many(seeds, top["track_uri"], rec.track_labels)
    for text, rule in zip(top["explanation"], expected, strict=True):
        assert text.startswith(rule) and (rule != "" or not text.startswith("in "))
    said = df["explanation"].str.extract(r"(?:^|; )in (\d+) of (\d+) playlists with ").dropna().astype(int)
    assert (said[0] >= 2).all() and (said[0] <= said[1]).all()
    assert not df["explanation"].str.contains("lift|conf").any()
    assert df["track_name"].str.len().gt(0).mean() > 0.9
    assert df[["retrieval", "rules", "content"]].notna().any().all()


def test_batch_matches_single_and_submission_scores(rec, challenge, split_dir):
    from modules.metrics import evaluate

    pls = challenge["playlists"]
    frames = rec.recommend_batch(pls, 500)  # 32 playlists per catalog scan
    assert len(pls) > 32  # more than one batch
    for i in (3, 40, len(pls) - 1):  # the batched scans answer as one playlist alone does, to the bit
        one = rec.recommend([t["track_uri"] for t in pls[i]["tracks"]], pls[i].get("name"), 500, explain=False)
        pd.testing.assert_frame_equal(frames[i], one, check_exact=True)
    mixed = rec.recommend_columns_batch([{"seed_track_uris": [], "title": "rock", "k": 5},
                                         {"seed_track_uris": "not a list"}, {"k": 0},
                                         {"seed_track_uris": [t["track_uri"] for t in pls[3]["tracks"]],
                                          "title": pls[3].get("name"), "k": 5}])
    assert isinstance(mixed[1], TypeError) and isinstance(mixed[2], ValueError)  # each bad request alone
    assert mixed[0]["track_uri"].tolist() == rec.recommend([], "rock", 5)["track_uri"].tolist()
    assert mixed[3]["track_uri"].tolist() == frames[3]["track_uri"].head(5).tolist()
    truth = orjson.loads((split_dir / "truth.json").read_bytes())
    s = evaluate({p["pid"]: f["track_uri"].tolist() for p, f in zip(pls, frames)}, truth).summary()["ALL"]
    assert s["recall"] > 0.05  # a trained model, not noise: popularity alone is far below on seeded playlists


def test_answer_does_not_depend_on_the_batch(rec, challenge):
    """Every challenge playlist, in shuffled batches of several sizes, gets what it gets alone: the same tracks,
    scores, parts and explanations, bit for bit (two users asking the same thing get the same answer whoever
    else is asking)."""
    reqs = [{"seed_track_uris": [t["track_uri"] for t in p["tracks"]], "title": p.get("name"), "k": 100,
             "explain": 20} for p in challenge["playlists"]]
    alone = [rec.recommend_columns(**r) for r in reqs]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(reqs))
    at = 0
    for size in (2, 7, 16, 32):
        idx = order[at:at + size]
        at += size
        for i, got in zip(idx, rec.recommend_columns_batch([reqs[i] for i in idx]), strict=True):
            for col, want in alone[i].items():
                assert np.array_equal(np.asarray(got[col]), np.asarray(want), equal_nan=col != "explanation"
                                      and col not in ("track_uri", "track_name", "artist_name")), (i, col)


@pytest.mark.parametrize("case", ["unknown", "empty_title", "duplicates", "long", "title_only", "nothing"])
def test_awkward_playlists_still_get_valid_answers(rec, case):
    known = rec.tracks["track_uri"].tolist()
    seeds, title = {
        "unknown": (["spotify:track:" + "Z" * 22, "spotify:track:" + "Y" * 22], None),
        "empty_title": (known[:3], "   "),
        "duplicates": ([known[5]] * 4 + [known[6]], "rock"),
        "long": (known[:250], "everything"),
        "title_only": ([], "chill vibes"),
        "nothing": ([], None),
    }[case]
    df = rec.recommend(seeds, title, k=100)
    assert len(df) == 100 == df["track_uri"].nunique()
    assert not set(df["track_uri"]) & set(seeds)


def test_k_larger_than_catalog_and_bad_arguments(rec):
    n = len(rec.tracks)
    df = rec.recommend(rec.tracks["track_uri"].tolist()[:5], k=n + 100, explain=False)
    assert len(df) == df["track_uri"].nunique() == n - 5
    with pytest.raises(ValueError, match="k must be a positive integer"):
        rec.recommend([], k=0)
    with pytest.raises(TypeError, match="not one string"):
        rec.recommend("spotify:track:" + "A" * 22)
    with pytest.raises(ValueError, match="unknown features \\['loudnesss'\\]"):
        rec.recommend([], "x", weights={"loudnesss": 2})
    with pytest.raises(ValueError, match="mode must be one of"):
        rec.recommend([], "x", mode="random")


def test_feature_weights_rerank_towards_the_emphasis(rec, challenge):
    p = next(p for p in challenge["playlists"] if len(p["tracks"]) >= 25)
    seeds = [t["track_uri"] for t in p["tracks"]]
    base = rec.recommend(seeds, k=50, explain=False)
    energetic = rec.recommend(seeds, k=50, weights={"energy": 4.0}, explain=False)
    assert base["track_uri"].tolist() != energetic["track_uri"].tolist()
    content = rec.hybrid.content_
    j = list(content.features).index("energy")
    centre = content.numeric_[[content.index_[s] for s in seeds if s in content.index_], j].mean()

    def spread(df):
        rows = [content.index_[u] for u in df["track_uri"] if u in content.index_]
        return np.abs(content.numeric_[rows, j] - centre).mean()

    assert spread(energetic) < spread(base)


def test_collaborative_mode_is_the_two_tower_order(rec):
    seeds = rec.tracks["track_uri"].tolist()[20:30]
    df = rec.recommend(seeds, "party", k=40, mode="collaborative", explain=False)
    uris, _ = rec.hybrid.two_tower_.candidates(seeds, "party", 40)
    assert df["track_uri"].tolist() == uris


def test_broken_bundles_say_what_is_missing(bundle, tmp_path):
    with pytest.raises(BundleError, match="no manifest.json.*python -m modules train"):
        Recommender.load(tmp_path / "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    Bundle(broken).rules_file.unlink()
    with pytest.raises(BundleError, match="missing rules.parquet"):
        Recommender.load(broken)
    manifest = Bundle(bundle).read_manifest()
    Bundle(broken).write_manifest({**manifest, "format": "playlist-bundle/0"})
    with pytest.raises(BundleError, match="format 'playlist-bundle/0'"):
        Recommender.load(broken)


def test_cli_submission_and_single_playlist(bundle, split_dir, tmp_path):
    sub = tmp_path / "sub.csv"
    run = [sys.executable, "-m", "modules"]
    out = subprocess.run([*run, "recommend", "--model", str(bundle), "--challenge",
                          str(split_dir / "challenge_set.json"), "--out", str(sub)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    s = read_submission(sub)
    challenge = read_challenge(split_dir / "challenge_set.json")
    assert s.problems == [] and len(s.rows) == len(challenge["playlists"])
    for p in challenge["playlists"]:
        uris = s.rows[p["pid"]]
        assert len(uris) == len(set(uris)) == 500 and not {t["track_uri"] for t in p["tracks"]} & set(uris)
    seeds = [t["track_uri"] for t in challenge["playlists"][-1]["tracks"][:3]]
    out = subprocess.run([*run, "recommend", "--model", str(bundle), "--seeds", *seeds, "--title", "chill", "-k", "5",
                          "--weight", "energy=2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n  1. ") + out.stdout.startswith("  1. ") == 1 and "  5. " in out.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "tracks": [{"track_uri": "not-a-uri"}]}))
    out = subprocess.run([*run, "recommend", "--model", str(bundle), "--playlist", str(bad)], capture_output=True,
                         text=True)
    assert out.returncode == 2 and "bad.json" in out.stderr and "not-a-uri" in out.stderr
    # a challenge file with one broken playlist: the error names it, and no submission is left behind
    doc = orjson.loads((split_dir / "challenge_set.json").read_bytes())
    victim = doc["playlists"][3]
    victim["tracks"] = [{"pos": 0, "track_name": "x"}]
    broken, sub2 = tmp_path / "broken_challenge.json", tmp_path / "sub2.csv"
    broken.write_bytes(orjson.dumps(doc))
    out = subprocess.run([*run, "recommend", "--model", str(bundle), "--challenge", str(broken), "--out", str(sub2)],
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "broken_challenge.json" in out.stderr and str(victim["pid"]) in out.stderr and "track_uri" in out.stderr
    assert not sub2.exists()


def test_reduced_mpd_without_catalog_features_degrades(world_dir, tmp_path):
    """Real MPD subsets: no artist/album URIs, and tracks no feature catalog knows."""
    import hashlib

    from modules.mpd import find_slices

    def fake(uri):
        return "spotify:track:" + hashlib.sha256(uri.encode()).hexdigest()[:22]

    out_dir = tmp_path / "mpd"
    out_dir.mkdir()
    for f in find_slices(world_dir):
        doc = orjson.loads(f.read_bytes())
        for p in doc["playlists"]:
            for t in p["tracks"]:
                t["track_uri"] = fake(t["track_uri"])
                del t["artist_uri"], t["album_uri"]
        (out_dir / f.name).write_bytes(orjson.dumps(doc))
    rec = train_bundle(out_dir, tmp_path / "bundle", seed=0, params=PARAMS, show_progress=False)
    assert not rec.hybrid.content_.has_num_[[rec.hybrid.content_.index_[u] for u in rec.tracks["track_uri"]]].any()
    seeds = rec.tracks["track_uri"].tolist()[:5]
    df = rec.recommend(seeds, "rock", k=200)
    assert len(df) == 200 == df["track_uri"].nunique() and not set(df["track_uri"]) & set(seeds)


def test_pretrained_two_tower_must_match_the_data(bundle, store):
    from modules.hybrid import HybridError, HybridRecommender

    # the bundle's two-tower was trained on the split's training playlists, not on the whole world
    with pytest.raises(HybridError, match="was not trained on these playlists"):
        HybridRecommender(two_tower_bundle=str(bundle), validation_per_category=2, fusion_cuts=2).fit(store)


def test_fusion_by_length_learns_title_only_playlists_apart():
    """Two kinds of playlists whose best feature differs: one logistic regression per length bucket ranks both
    right, a single one cannot."""
    from modules.hybrid import _make_fusion

    rng = np.random.default_rng(0)
    n = 4000
    n_seeds = np.where(np.arange(n) < n // 2, 0, 10)
    a, b = rng.normal(size=n), rng.normal(size=n)
    # title-only rows: feature a decides; seeded rows: feature b decides (and a points the other way)
    y = np.where(n_seeds == 0, a > 0.8, (b > 0.8) & (a < 0.5))
    X = np.column_stack([a, b, np.log1p(n_seeds)])
    split = _make_fusion("logistic_by_length", 0, n_seeds_col=2).fit(X, y)
    pooled = _make_fusion("logistic", 0).fit(X, y)
    assert set(split.models_) == {0, 1}

    def auc(model, rows):
        s = model.predict_proba(X[rows])[:, 1]
        pos, neg = s[y[rows]], s[~y[rows]]
        return (pos[:, None] > neg[None, :]).mean()

    title_only, seeded = n_seeds == 0, n_seeds > 0
    assert auc(split, title_only) > 0.95 and auc(split, seeded) > 0.95
    assert auc(split, title_only) > auc(pooled, title_only) + 0.02


@pytest.mark.parametrize("kind", ["logistic", "logistic_by_length"])
def test_linear_fusion_scores_equal_the_pipeline(kind):
    """Serving scores the linear fusion as one matrix-vector product; it must give the pipeline's numbers
    (missing values included), or the validation that chose it would not describe what is served."""
    from modules.hybrid import _fusion_score, _make_fusion
    from modules.hybrid.fusion_arrays import LinearFusion, as_predictor

    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 6)) * [1, 5, 0.1, 1, 3, 1]
    X[:, 5] = np.log1p(np.where(np.arange(3000) < 1000, 0, 10))
    y = X[:, 0] + 0.3 * X[:, 1] + rng.normal(size=3000) > 1.5
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 3] = np.nan  # a column missing everywhere (no audio features in a reduced subset)
    X[:, 5] = np.log1p(np.where(np.arange(3000) < 1000, 0, 10))
    model = _make_fusion(kind, 0, n_seeds_col=5).fit(X, y)
    pipes = [model.pooled_, *model.models_.values()] if kind == "logistic_by_length" else [model]
    assert all(isinstance(as_predictor(p), LinearFusion) for p in pipes)
    fast = _fusion_score(model, X)
    if kind == "logistic":
        np.testing.assert_allclose(fast, model.predict_proba(X)[:, 1], rtol=1e-12, atol=1e-15)
    else:
        bucket = model._bucket(X)
        for b, m in model.models_.items():
            np.testing.assert_allclose(fast[bucket == b], m.predict_proba(X[bucket == b])[:, 1], rtol=1e-12,
                                       atol=1e-15)
    assert not isinstance(as_predictor(_make_fusion("hgb", 0).fit(X, y)), LinearFusion)


def test_validation_size_is_auto_by_default_and_checked():
    from modules.hybrid import HybridError, HybridRecommender

    assert HybridRecommender().validation_per_category == "auto"
    with pytest.raises(HybridError, match="'validation_per_category' parameter .* int >= 0 or 'auto'"):
        HybridRecommender(validation_per_category="lots")._check_params()


def test_trees_are_chosen_only_when_they_beat_the_linear_fusion_by_a_standard_error_and_their_price():
    rng = np.random.default_rng(0)
    playlist = np.repeat(np.arange(100), 4)  # four cuts per validation playlist
    linear = rng.uniform(0.2, 0.6, len(playlist))

    def evals(hgb_gain, noise):
        trees = linear + hgb_gain + rng.normal(0, noise, len(playlist))
        return {k: {"ALL_CUTS": {"ndcg": float(v.mean())}, PER_CUT: v}
                for k, v in (("hgb", trees), ("logistic", linear), ("logistic_by_length", linear - 0.01))}

    kind, why = _choose_fusion_kind(evals(0.001, 0.05), playlist)  # a higher mean, but within the noise
    assert kind == "logistic" and why["best_linear"] == "logistic" and why["trees_gain"] > 0
    assert why["trees_gain"] < why["standard_error"] and why["playlists"] == 100
    kind, why = _choose_fusion_kind(evals(0.02, 0.05), playlist)
    assert kind == "hgb" and why["trees_gain"] > why["standard_error"] + why["serving_price"]
    # ahead by several standard errors, but by less than their serving price: the linear fusion is served
    kind, why = _choose_fusion_kind(evals(0.006, 0.005), playlist)
    assert kind == "logistic" and why["trees_gain"] > 2 * why["standard_error"]
    assert why["trees_gain"] < why["standard_error"] + why["serving_price"] == why["standard_error"] + 0.01
    only_linear = {k: v for k, v in evals(0.02, 0.05).items() if k != "hgb"}
    assert _choose_fusion_kind(only_linear, playlist)[0] == "logistic"


def test_candidate_order_breaks_ties_by_uri(rec, challenge):
    """``CandidateSet.order`` (top k by partition, ties by id) equals a full sort by (-score, URI)."""
    p = next(p for p in challenge["playlists"] if len(p["tracks"]) >= 5)
    cs = rec.hybrid.candidate_set([t["track_uri"] for t in p["tracks"]], p.get("name"))
    assert (cs.uris[np.argsort(cs.ids)] == np.sort(cs.uris)).all()  # ids follow URI order
    score = np.round(rec.hybrid.score_candidates(cs), 2)  # many ties
    for k in (1, 10, 100, len(score), len(score) + 5):
        expected = np.lexsort((cs.uris, -score))[:k]
        assert cs.order(score, k).tolist() == expected.tolist()


def test_blend_weights_are_chosen_per_length_and_used(rec, challenge):
    from modules.hybrid import BLEND_BUCKETS, BLEND_GRID

    h = rec.hybrid
    assert h.blend_ and set(h.blend_) <= set(range(len(BLEND_BUCKETS) + 1))
    assert all(a in BLEND_GRID and c in BLEND_GRID for a, c in h.blend_.values())
    blend = rec.manifest["validation"]["blend"]
    assert 0 <= blend["all_cuts"]["ndcg"] <= 1 and blend["weights"]
    p = next(p for p in challenge["playlists"] if len(p["tracks"]) >= 5)
    cs = h.candidate_set([t["track_uri"] for t in p["tracks"]], p.get("name"))
    saved = h.blend_
    try:
        h.blend_ = {b: (0.0, 1e6) for b in range(len(BLEND_BUCKETS) + 1)}  # the two-tower outweighs the rest
        assert cs.order(h.score_candidates(cs), 50).tolist() == cs.order(cs.column("tt_score"), 50).tolist()
        h.blend_ = None  # an older bundle: the fusion alone
        assert np.allclose(h.score_candidates(cs), h.fusion_.predict_proba(cs.X)[:, 1])
    finally:
        h.blend_ = saved


def test_audio_taste_columns_are_filled_and_the_switch_is_checked(rec, challenge):
    from modules.hybrid import HybridError, HybridRecommender

    h = rec.hybrid
    assert h.audio_taste and {"taste", "audio_fit", "fit_energy"} <= set(h.feature_names_)
    p = next(p for p in challenge["playlists"] if len(p["tracks"]) >= 25)
    cs = h.candidate_set([t["track_uri"] for t in p["tracks"]], p.get("name"))
    for name in ("taste", "audio_fit", "fit_energy"):
        col = cs.column(name)
        assert np.isfinite(col).mean() > 0.5 and np.nanstd(col) > 0, name  # filled and not constant
    with pytest.raises(HybridError, match="'audio_taste' parameter .* True or False"):
        HybridRecommender(audio_taste="yes")._check_params()


def test_the_two_tower_holds_out_the_hybrids_validation_split_whatever_its_seed(store):
    """The split is carved once and handed to the two-tower: a tower seeded apart (``two_tower={"seed": 1}``) used
    to carve its own split and train on the fusion's validation playlists."""
    from conftest import TINY_TT

    from modules.hybrid import HybridError, HybridRecommender
    from modules.validation import carve_validation

    h = HybridRecommender(parts=("two_tower",), two_tower={**TINY_TT, "seed": 1, "epochs": 1},
                          validation_per_category=2, fusion_cuts=2, n_candidates=50, audio_taste=False).fit(store)
    split = carve_validation(store, store.playlists["pid"].to_numpy(), per_category=2, seed=0).split
    tt = h.two_tower_
    assert tt.config_.validation_per_category == 2
    assert tt._fingerprint(store, split.train_pids, tt.config_) == tt.fingerprint_
    with pytest.raises(HybridError, match="Set validation_per_category on the hybrid"):
        HybridRecommender(two_tower={"validation_per_category": 3}, validation_per_category=2).fit(store)


def test_train_releases_the_training_state_before_loading_the_bundle(split_dir, tmp_path, monkeypatch):
    # at 1M playlists the fitted parts and the store held ~20 GiB; loading the bundle beside them was OOM-killed
    import gc

    from modules.hybrid import HybridRecommender
    from modules.recommender import Recommender, train_bundle
    from modules.store import PlaylistStore
    from tests.conftest import TINY_PARAMS

    alive_at_load = []
    real_load = Recommender.load.__func__

    def load_counting_survivors(cls, path, *args, **kwargs):
        gc.collect()
        alive_at_load.append(sum(isinstance(o, (HybridRecommender, PlaylistStore)) for o in gc.get_objects()))
        return real_load(cls, path, *args, **kwargs)

    monkeypatch.setattr(Recommender, "load", classmethod(load_counting_survivors))
    gc.collect()
    before = sum(isinstance(o, (HybridRecommender, PlaylistStore)) for o in gc.get_objects())
    rec = train_bundle(split_dir / "train", tmp_path / "b", seed=0, params=TINY_PARAMS, show_progress=False)
    assert alive_at_load == [before]  # neither the fitted hybrid nor the store outlived the training
    assert rec.hybrid.fitted_
