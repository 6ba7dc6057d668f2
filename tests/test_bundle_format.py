"""The bundle holds no code: arrays, Parquet and JSON that load to the exact fitted model; pickles are refused, and
a previous-format bundle (pickles) converts only with the user's consent.

These tests check the on-disk format itself (what a program reading a bundle without this package relies on), so
they spell its file names on purpose instead of asking ``modules.bundle.Bundle`` for them.
"""

import json
import pickle
import shutil
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import TINY_PARAMS

from modules.baselines import ALSRecommender
from modules.bundle_convert import convert_bundle
from modules.errors import BundleError, FusionFormatError, UserError
from modules.hybrid import FUSION_KINDS, HybridRecommender, _FusionByLength, _make_fusion
from modules.hybrid.fusion_arrays import (
    LinearFusion,
    TreeFusion,
    as_predictor,
    from_arrays,
    to_arrays,
)
from modules.mpd import read_challenge
from modules.recommender import Recommender

# files a bundle may hold, by name ending (the two-tower's TensorFlow checkpoint and SavedModel included)
ALLOWED = (".json", ".parquet", ".npz", ".npy", ".txt", ".pb", ".index", ".data-00000-of-00001")


class Payload:
    """Unpickling this creates ``marker``: what a hostile pickle in a shared bundle could do instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def hostile_pickle(path, marker):
    joblib.dump(Payload(marker), path)


@pytest.fixture(scope="module")
def challenge(split_dir):
    return read_challenge(split_dir / "challenge_set.json")


@pytest.fixture(scope="module")
def fitted(tiny_bundle, train_store):
    """One hybrid per fusion kind, forced with the ``fusion`` parameter (the tiny bundle's two-tower reused)."""
    out = {}

    def get(kind):
        if kind not in out:
            params = {**TINY_PARAMS, "fusion": kind, "two_tower_bundle": str(tiny_bundle)}
            out[kind] = HybridRecommender(seed=0, **params).fit(train_store)
            assert out[kind].fusion_kind_ == kind
        return out[kind]

    return get


def playlists(challenge, n=12):
    """Challenge playlists of every length, title-only ones included."""
    pls = challenge["playlists"]
    step = max(len(pls) // n, 1)
    return [([t["track_uri"] for t in p["tracks"]], p.get("name")) for p in pls[::step][:n]]


# -- the format ------------------------------------------------------------------------------------------------

def test_no_file_of_a_trained_bundle_is_a_pickle(tiny_bundle):
    files = [f for f in tiny_bundle.rglob("*") if f.is_file()]
    assert files
    for f in files:
        assert f.name.endswith(ALLOWED), f
        if f.suffix in (".npz", ".npy"):  # numbers only: an object array would need the pickle loader
            loaded = np.load(f, allow_pickle=False)
            arrays = [loaded[k] for k in loaded.files] if f.suffix == ".npz" else [loaded]
            assert all(a.dtype != object for a in arrays), f
        if "two_tower" not in f.parts:
            assert not f.read_bytes().startswith(b"\x80"), f  # the pickle protocol's opening byte


# one fit per kind (~50-100 s on 2 busy cores): the trees (the kind with a custom step) in the fast suite
SLOW = pytest.mark.slow


@pytest.mark.parametrize("kind", [k if k == "hgb" else pytest.param(k, marks=SLOW) for k in FUSION_KINDS])
def test_a_saved_and_loaded_hybrid_scores_bit_for_bit_like_the_fitted_one(kind, fitted, challenge, tmp_path):
    h = fitted(kind)
    h.save(tmp_path / "b")
    loaded = HybridRecommender.load(tmp_path / "b")
    def models(f):
        return [f.pooled_, *f.models_.values()] if isinstance(f, _FusionByLength) else [f]

    # the fitted scikit-learn pipelines came back as arrays, not as themselves
    assert not any(isinstance(m, (LinearFusion, TreeFusion)) for m in models(h.fusion_))
    assert all(isinstance(m, (LinearFusion, TreeFusion)) for m in models(loaded.fusion_))
    assert loaded.get_params() == {**h.get_params(), "features": None}
    for seeds, title in playlists(challenge):
        a, b = h.candidate_set(seeds, title), loaded.candidate_set(seeds, title)
        assert np.array_equal(a.uris, b.uris) and np.array_equal(a.X, b.X, equal_nan=True)
        assert np.array_equal(h.score_candidates(a), loaded.score_candidates(b))
        uris, scores = h.recommend(seeds, title, k=500)
        uris2, scores2 = loaded.recommend(seeds, title, k=500)
        assert uris == uris2 and np.array_equal(scores, scores2)


def test_als_folds_in_identically_after_reload(fitted, tmp_path):
    als = fitted("hgb").als_
    path = als.save(tmp_path / "als")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "fallback.parquet", "gram.npy", "item_factors.npy",
                                                      "matrix.npz", "playlists.parquet", "tracks.parquet"]
    back = ALSRecommender.load(path)
    assert back._YtY is not None and np.array_equal(back._YtY, als._gram())  # read, not rebuilt from the factors
    assert np.array_equal(back.model_.item_factors, als.model_.item_factors)
    assert back.model_.item_factors.dtype == np.float32 and back.model_.user_factors is None
    rng = np.random.default_rng(0)
    for n in (1, 5, 30):
        idx = rng.choice(len(als.matrix_.uris), n, replace=False)
        assert np.array_equal(back.fold_in(idx), als.fold_in(idx))
    seeds = als.matrix_.uris[:10].tolist()
    for s, title in ((seeds, None), ([], "chill"), (seeds[:2], "party")):
        (u1, s1), (u2, s2) = als.recommend(s, title, k=100), back.recommend(s, title, k=100)
        assert u1 == u2 and np.array_equal(s1, s2)
    # the matrix, its title index and the popularity order are read on first use: seeds alone never read them
    lazy = ALSRecommender.load(path)
    assert not lazy.matrix_.loaded and "_title_pop" not in vars(lazy) and "_fallback" not in vars(lazy)
    (u1, s1), (u2, s2) = als.recommend(seeds, None, k=100), lazy.recommend(seeds, None, k=100)
    assert u1 == u2 and np.array_equal(s1, s2) and not lazy.matrix_.loaded
    (u1, s1), (u2, s2) = als.recommend([], "chill", k=100), lazy.recommend([], "chill", k=100)
    assert u1 == u2 and np.array_equal(s1, s2) and lazy.matrix_.loaded
    assert (lazy.matrix_.X != als.matrix_.X).nnz == 0 and lazy.matrix_.titles == als.matrix_.titles
    assert np.array_equal(lazy.matrix_.pids, als.matrix_.pids)
    assert np.array_equal(lazy.matrix_.counts, als.matrix_.counts)
    # a folder written before gram.npy was kept: built on first use, the same numbers
    (path / "gram.npy").unlink()
    old = ALSRecommender.load(path)
    assert old._YtY is None
    assert np.array_equal(old.fold_in(idx), als.fold_in(idx))
    np.save(path / "gram.npy", np.zeros((3, 3)))
    with pytest.raises(BundleError, match=r"gram.npy is float64 \(3, 3\), not float64 \(\d+, \d+\)"):
        ALSRecommender.load(path)


def test_a_loaded_hybrid_holds_one_copy_of_each_track_uri_and_no_als_matrix(fitted, challenge, tmp_path):
    h = fitted("hgb")
    h.save(tmp_path / "b")
    loaded = HybridRecommender.load(tmp_path / "b")
    uris = loaded.track_uris_
    assert uris.dtype == object and np.array_equal(uris, h.track_uris_)

    def pooled(values) -> bool:
        """Every value that is a training track (there are some) is the hybrid's own string object."""
        rows = pd.Index(uris).get_indexer(pd.Index(list(values), dtype=object))
        return (rows >= 0).any() and all(v is uris[r] for v, r in zip(values, rows) if r >= 0)

    als, tt, content, rules = loaded.als_, loaded.two_tower_, loaded.content_, loaded.rules_
    assert als.matrix_.uris is uris and pooled(loaded.fallback_) and loaded.fallback_ == list(h.fallback_)
    assert pooled(tt.items_.uris) and pooled(tt.candidate_uris_) and pooled(tt.items_.track_vocab)
    assert pooled(content.uris_) and all(content.index_[u] == i for i, u in enumerate(content.uris_))
    assert pooled(rules.rules.track_uris)
    assert all(rules.index_[u] == i for i, u in enumerate(rules.rules.track_uris))
    assert "_names" not in vars(content) and content.names_.tolist() == h.content_.names_.tolist()  # on first use
    for seeds, title in playlists(challenge):
        uris1, scores1 = h.recommend(seeds, title, k=500)
        uris2, scores2 = loaded.recommend(seeds, title, k=500)
        assert uris1 == uris2 and np.array_equal(scores1, scores2)
    assert not als.matrix_.loaded and "_title_pop" not in vars(als)


def test_tree_fusion_gives_the_pipelines_numbers_with_and_without_sklearns_compiled_walk():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6000, 7))
    X[rng.random(X.shape) < 0.15] = np.nan
    X[:, 4] = np.nan  # empty in training: the pipeline sets it to 0
    y = np.nan_to_num(X[:, 0]) + np.isnan(X[:, 1]) + rng.normal(size=6000) > 1.0
    model = _make_fusion("hgb", 0, {"max_iter": 30}).fit(X, y)
    Q = rng.normal(size=(2000, 7))
    Q[rng.random(Q.shape) < 0.15] = np.nan
    tree = as_predictor(model)
    thresholds = tree.nodes_["threshold"][~tree.nodes_["is_leaf"]]
    Q[:50, tree.nodes_["feature"][~tree.nodes_["is_leaf"]][:50]] = thresholds[:50]  # exactly on a threshold
    expected = model.predict_proba(Q)[:, 1]
    assert isinstance(tree, TreeFusion) and np.array_equal(tree.positive_proba(Q), expected)
    assert tree._compiled  # scikit-learn's walk was used ...
    spec, arrays = to_arrays(model)
    numpy_only = from_arrays(json.loads(json.dumps(spec)), arrays)
    numpy_only._compiled = []  # ... and the numpy walk alone gives the same numbers
    assert np.array_equal(numpy_only.positive_proba(Q), expected)


def test_fusion_arrays_round_trip_and_refuse_what_they_do_not_describe():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=2000), np.log1p(np.where(np.arange(2000) < 1000, 0, 10))])
    y = X[:, 0] + rng.normal(size=2000) > 1
    by_length = _make_fusion("logistic_by_length", 0, n_seeds_col=1).fit(X, y)
    spec, arrays = by_length.to_arrays()
    back = _FusionByLength.from_arrays(json.loads(json.dumps(spec)), arrays)
    assert all(isinstance(m, LinearFusion) for m in [back.pooled_, *back.models_.values()])
    assert np.array_equal(back.positive_proba(X), by_length.positive_proba(X))
    with pytest.raises(FusionFormatError, match="unknown fusion model type 'pickle'"):
        from_arrays({"type": "pickle"}, {})
    spec, arrays = to_arrays(by_length.pooled_)
    with pytest.raises(FusionFormatError, match="no 'coef'"):
        from_arrays(spec, {k: v for k, v in arrays.items() if k != "coef"})
    with pytest.raises(FusionFormatError, match="cannot be written as arrays"):
        to_arrays(object())


# -- nothing in a bundle folder runs code ------------------------------------------------------------------------

def test_a_hostile_pickle_in_a_bundle_is_never_executed(tiny_bundle, tmp_path):
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Payload(probe)))
    assert probe.exists()  # the payload works when unpickled
    marker = tmp_path / "ran"
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    for name in ("fusion.joblib", "als.joblib", "fusion/fusion.joblib", "als/model.pkl"):
        hostile_pickle(b / name, marker)
    manifest = json.loads((b / "manifest.json").read_text())
    # a manifest may point anywhere: the loader reads its own file names, never the manifest's
    (b / "manifest.json").write_text(json.dumps({**manifest, "parts": {**manifest["parts"], "fusion": "fusion.joblib",
                                                                       "als": "als.joblib"}}))
    rec = Recommender.load(b)
    assert len(rec.recommend([], "chill", k=10)) == 10
    # the previous format names the pickles: refused with how to convert, and nothing is unpickled
    (b / "manifest.json").write_text(json.dumps({**manifest, "format": "playlist-bundle/1"}))
    with pytest.raises(BundleError, match="pickles.*runs whatever code.*bundle convert .* --trust-pickles"):
        Recommender.load(b)
    with pytest.raises(BundleError, match="--trust-pickles"):
        convert_bundle(b, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("file", ["fusion/fusion.npz", "als/item_factors.npy"])
def test_arrays_holding_pickled_objects_are_refused_unopened(file, tiny_bundle, tmp_path):
    marker = tmp_path / "ran"
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    hostile = np.array([Payload(marker)], dtype=object)
    if file.endswith(".npz"):
        np.savez(b / file, coef=hostile)
    else:
        np.save(b / file, hostile, allow_pickle=True)
    # a user error (one line from the CLI), not a bug's traceback
    with pytest.raises(UserError, match=f"{file.split('/')[1]} holds more than numbers .*allow_pickle=False"):
        Recommender.load(b)
    assert not marker.exists()


# -- the previous format -----------------------------------------------------------------------------------------

def write_v1_bundle(h, tiny_bundle, out):
    """The previous release's ``train_bundle`` output for the fitted hybrid ``h``: its pickles and parts."""
    out.mkdir()
    shutil.copytree(tiny_bundle / "two_tower", out / "two_tower")
    shutil.copy2(tiny_bundle / "tracks.parquet", out / "tracks.parquet")
    h.rules_.rules.write(out / "rules.parquet")
    h.content_.save(out / "content")
    joblib.dump(h.als_, out / "als.joblib")
    state = {k: getattr(h, k) for k in ("parts_", "feature_names_", "fusion_kind_", "fusion_", "validation_",
                                        "track_uris_", "artist_code_", "album_code_", "pop_log_", "popular_",
                                        "fallback_", "fit_seconds_", "blend_")}
    state["params"] = {k: v for k, v in h.get_params().items() if k != "features"}
    joblib.dump(state, out / "fusion.joblib")
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    manifest.update(format="playlist-bundle/1", fusion=h.fusion_kind_,
                    parts={"two_tower": "two_tower/", "rules": "rules.parquet", "content": "content/",
                           "als": "als.joblib", "fusion": "fusion.joblib"})
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.mark.parametrize("kind", ["hgb", pytest.param("logistic_by_length", marks=SLOW)])
def test_a_previous_format_bundle_is_refused_then_converted_with_consent(kind, fitted, tiny_bundle, challenge,
                                                                        tmp_path):
    h = fitted(kind)
    old = write_v1_bundle(h, tiny_bundle, tmp_path / "v1")
    with pytest.raises(BundleError, match=r"pickles, and loading a pickle runs whatever code it holds.*"
                                          r"python -m modules bundle convert .*v1 --out NEW_DIR --trust-pickles"):
        Recommender.load(old)
    new = tmp_path / "v2"
    run = [sys.executable, "-m", "modules", "bundle", "convert", str(old), "--out", str(new)]
    refused = subprocess.run(run, capture_output=True, text=True)
    assert refused.returncode == 2 and "--trust-pickles" in refused.stderr and not new.exists()
    done = subprocess.run([*run, "--trust-pickles"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "recommendations checked identical" in done.stdout
    rec = Recommender.load(new)
    assert rec.manifest["format"] == "playlist-bundle/2" and rec.manifest["converted"]["from"] == "playlist-bundle/1"
    assert not [f for f in new.rglob("*") if f.suffix == ".joblib"]
    v1 = Recommender(h, pd.read_parquet(old / "tracks.parquet"), {}, old)  # the pickled model, as it was fitted
    for seeds, title in playlists(challenge, 8):
        pd.testing.assert_frame_equal(rec.recommend(seeds, title, k=200), v1.recommend(seeds, title, k=200),
                                      check_exact=True)
    with pytest.raises(BundleError, match="already a 'playlist-bundle/2' bundle"):
        convert_bundle(new, tmp_path / "again", trust_pickles=True)



def test_tree_arrays_that_would_loop_or_read_out_of_bounds_are_refused():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    spec, arrays = to_arrays(_make_fusion("hgb", 0, {"max_iter": 3}).fit(X, X[:, 0] > 0))
    for field, value, message in (("node_left", 0, "back up it"), ("node_feature", 7, "feature the model does not"),
                                  ("tree_starts", 5, "tree_starts must begin at 0")):
        bad = dict(arrays)
        bad[field] = arrays[field].copy()
        bad[field][0] = value
        with pytest.raises(FusionFormatError, match=message):
            from_arrays(spec, bad)
    with pytest.raises(ValueError, match=r"shape \[n_rows, 3\]"):
        from_arrays(spec, arrays).positive_proba(X[:, :2])
