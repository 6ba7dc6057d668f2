"""The inductive two-tower: contract, determinism, resume, bundle round trip, SavedModel without project code."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from modules.bundle import Bundle
from modules.two_tower import (
    LAZY_ADAM_FROM_TRACKS,
    BundleError,
    TwoTowerConfig,
    TwoTowerRecommender,
    make_optimizer,
    optimizer_name,
)
from modules.two_tower.training import fingerprint_config as _fingerprint_config

TINY = {"embedding_dim": 16, "hidden_dim": 32, "epochs": 2, "batch_size": 64, "validation_per_category": 2,
        "word_vocab_size": 500, "ngram_vocab_size": 1000, "examples_per_track": 0.3, "k": 50}


@pytest.fixture(scope="module")
def features(catalog):
    return catalog[["track_uri", "artist_uri", "album_uri", "danceability", "energy", "valence", "tempo"]]


@pytest.fixture(scope="module")
def fitted(train_store, features):
    return TwoTowerRecommender(TINY, features=features, seed=0).fit(train_store)


@pytest.fixture(scope="module")
def bundle(fitted, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    fitted.save(out)
    return out


def test_config_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError, match=r"unknown two-tower config keys \['embeding_dim'\]"):
        TwoTowerConfig.from_dict({"embeding_dim": 8})
    with pytest.raises(ValueError, match="'temperature' parameter of TwoTowerConfig must be a positive float"):
        TwoTowerConfig.from_dict({"temperature": 0})
    assert TwoTowerConfig.from_dict({}).validation_per_category == "auto"
    with pytest.raises(ValueError, match="'validation_per_category' parameter .* must be 'auto' or an int >= 0"):
        TwoTowerConfig.from_dict({"validation_per_category": "many"})


# config.json's "config" of a default model before the rejected options were removed (commit e5c4d3b): the saved
# form must keep these bytes, so bundles written before and after are the same files
SAVED_DEFAULT_CONFIG = (
    '{"embedding_dim": 64, "hidden_dim": 256, "temperature": 0.2, "normalize": true, "epochs": 15, "patience": 3, '
    '"min_delta": 0.002, "batch_size": 512, "learning_rate": 0.002, "optimizer": "auto", "examples_per_track": 0.5, '
    '"max_seeds": 100, "max_context": 150, "empty_context_rate": 0.1, "prefix_rate": 0.5, '
    '"uniform_context_rate": 0.5, "title_drop_rate": 0.3, "id_dropout": 0.1, "logq_weight": 1.0, '
    '"mask_context_hits": true, "mixed_negatives": 0, "dropout": 0.0, "min_track_count": 1, '
    '"track_oov_buckets": 16, "artist_oov_buckets": 16, "album_oov_buckets": 16, "share_item_embeddings": true, '
    '"pooling": "mean+max", "pool_normalized": false, "item_bias": true, "audio": true, "word_vocab_size": 20000, '
    '"ngram_vocab_size": 20000, "max_title_words": 8, "max_title_ngrams": 48, "catalog_candidates": false, '
    '"validation_per_category": "auto", "k": 500}')


@pytest.mark.parametrize("option", [{"normalize": False}, {"normalize": True}, {"mask_context_hits": False},
                                    {"pool_normalized": True}, {"catalog_candidates": False},
                                    {"pooling": "attention"}])
def test_removed_options_are_refused_saying_why(option):
    from modules.errors import InputError

    name = next(iter(option))
    with pytest.raises(InputError, match=rf"{name}.*was removed: .*validation"):
        TwoTowerConfig.from_dict({"epochs": 2, **option})
    with pytest.raises(InputError, match=rf"{name}.*was removed"):
        TwoTowerRecommender(**option)._resolved_config()
    assert not hasattr(TwoTowerConfig(), "normalize")
    assert TwoTowerConfig.from_dict({"pooling": "mean"}).pooling == "mean"


def test_saved_config_keeps_its_bytes_and_old_bundles_load():
    cfg = TwoTowerConfig()
    assert json.dumps(cfg.to_dict()) == SAVED_DEFAULT_CONFIG
    saved = json.loads(SAVED_DEFAULT_CONFIG)
    assert TwoTowerConfig.from_saved(saved) == cfg  # the removed options at today's values: read as they are
    changed = TwoTowerConfig.from_saved({**saved, "embedding_dim": 32, "pooling": "mean"})
    assert json.loads(json.dumps(changed.to_dict())) == {**saved, "embedding_dim": 32, "pooling": "mean"}
    assert TwoTowerRecommender(cfg, epochs=3)._resolved_config().epochs == 3  # a config object as the base
    for name, other in (("normalize", False), ("mask_context_hits", False), ("pool_normalized", True),
                        ("catalog_candidates", True), ("pooling", "attention")):
        with pytest.raises(BundleError, match=rf"trained with {name}={other!r}.*removed.*Retrain"):
            TwoTowerConfig.from_saved({**saved, name: other})


def test_a_bundle_with_a_removed_option_value_is_refused(bundle, tmp_path):
    import shutil

    meta = json.loads((bundle / "two_tower" / "config.json").read_text())
    assert {"normalize": True, "mask_context_hits": True, "pool_normalized": False,
            "catalog_candidates": False}.items() <= meta["config"].items()
    old = tmp_path / "attention"
    shutil.copytree(bundle, old)
    meta["config"]["pooling"] = "attention"
    (old / "two_tower" / "config.json").write_text(json.dumps(meta, indent=1))
    with pytest.raises(BundleError, match=r"two-tower bundle .* trained with pooling='attention'.*Retrain"):
        TwoTowerRecommender.load(old)


def test_lazy_adam_is_adam_computed_lazily():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    start = rng.normal(size=(40, 4)).astype(np.float32)
    # row 39 only in the first step; duplicates within a step add up
    steps = [np.array([39, 0, 0])] + [rng.choice(39, size=rng.integers(1, 8)) for _ in range(600)]
    out = {}
    for name in ("adam", "lazy_adam"):
        table, dense = tf.Variable(start), tf.Variable(np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2))
        opt = make_optimizer(TwoTowerConfig(optimizer=name, learning_rate=0.01))
        opt.build([table, dense])
        opt.iterations.assign(3000)  # past the first steps, where the approximated step size changes fast
        for n, ids in enumerate(steps):
            w = np.random.default_rng(n).normal(size=(len(ids), 4)).astype(np.float32)
            with tf.GradientTape() as tape:  # the table's gradient does not depend on where its rows are
                loss = tf.reduce_sum(tf.gather(table, ids) * w) + tf.reduce_sum(tf.sin(dense * n))
            opt.apply_gradients(zip(tape.gradient(loss, [table, dense]), [table, dense]))
            if n == 0:
                after_first = table.numpy()[39].copy()
        if name == "lazy_adam":
            np.testing.assert_array_equal(table.numpy()[39], after_first)  # untouched since: not moved yet
            opt.catch_up([table, dense])
        out[name] = table.numpy(), dense.numpy()
    moved = np.abs(out["adam"][0] - start).max()
    assert np.abs(out["adam"][0][39] - after_first).max() > 2 * 0.01  # Adam kept moving it: > 2 steps of lr
    np.testing.assert_allclose(out["lazy_adam"][0], out["adam"][0], atol=1e-3 * moved)
    np.testing.assert_allclose(out["lazy_adam"][1], out["adam"][1], atol=1e-3 * moved)


def test_optimizer_is_checked_resolved_and_enters_the_fingerprint_only_when_set():
    with pytest.raises(ValueError, match="'optimizer' parameter of TwoTowerConfig must be 'auto' or 'adam' or 'lazy"):
        TwoTowerConfig.from_dict({"optimizer": "sgd"})
    small, large = LAZY_ADAM_FROM_TRACKS, LAZY_ADAM_FROM_TRACKS + 1
    before = {k: v for k, v in TwoTowerConfig().to_dict().items()
              if k not in ("optimizer", "epochs", "patience", "min_delta")}
    assert _fingerprint_config(TwoTowerConfig(), small) == before  # bundles from before the key still match
    assert _fingerprint_config(TwoTowerConfig(), large)["optimizer_used"] == "lazy_adam"  # no Adam checkpoint resumed
    assert _fingerprint_config(TwoTowerConfig(optimizer="lazy_adam"), small)["optimizer"] == "lazy_adam"
    auto = TwoTowerConfig()
    assert optimizer_name(auto, LAZY_ADAM_FROM_TRACKS) == "adam"
    assert optimizer_name(auto, LAZY_ADAM_FROM_TRACKS + 1) == "lazy_adam"
    assert optimizer_name(TwoTowerConfig(optimizer="adam"), 10**7) == "adam"
    assert optimizer_name(TwoTowerConfig(optimizer="lazy_adam"), 10) == "lazy_adam"


def test_lazy_adam_trains_and_round_trips(train_store, features, tmp_path):
    lazy = TwoTowerRecommender({**TINY, "optimizer": "lazy_adam"}, features=features, seed=0).fit(train_store)
    losses = [r["loss"] for r in lazy.curve_]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert lazy.curve_[-1]["validation"]["recall"] > 0.05
    ck = tmp_path / "ck"  # interrupted after one epoch and resumed: the same model (the "last" slots are saved)
    cfg = {**TINY, "optimizer": "lazy_adam", "epochs": 1}
    TwoTowerRecommender(cfg, features=features, seed=0, checkpoint_dir=ck).fit(train_store)
    resumed = TwoTowerRecommender({**cfg, "epochs": 2}, features=features, seed=0, checkpoint_dir=ck).fit(train_store)
    seeds = train_store.tracks["track_uri"].tolist()[10:20]
    np.testing.assert_allclose(resumed.candidates(seeds, "chill", n=100)[1],
                               lazy.candidates(seeds, "chill", n=100)[1], atol=1e-5)
    lazy.save(tmp_path)
    back = TwoTowerRecommender.load(tmp_path)
    assert back.config_.optimizer == back.optimizer_ == "lazy_adam"
    assert back.candidates(seeds, "chill", n=50)[0] == lazy.candidates(seeds, "chill", n=50)[0]


def test_training_curve_and_validation(fitted):
    assert fitted.optimizer_ == "adam"  # "auto" on a small vocabulary
    assert [r["epoch"] for r in fitted.curve_] == [1, 2]
    assert all(r["examples_per_s"] > 0 and np.isfinite(r["loss"]) for r in fitted.curve_)
    assert all(0 <= r["validation"]["recall"] <= 1 for r in fitted.curve_)
    assert fitted.best_epoch_ in (1, 2)
    assert fitted.curve_[1]["loss"] < fitted.curve_[0]["loss"]


def test_contract(fitted, train_store):
    top = train_store.tracks.sort_values("count", ascending=False)["track_uri"].tolist()
    seeds = top[5:30]
    unknown = ["spotify:track:" + "Q" * 22]
    for s, title in ((seeds, "chill"), (seeds, None), ([], None), ([], "rock"), ([], "zzqx qqqv"),
                     (unknown, None), (unknown + seeds[:1], "Party!!")):
        uris, scores = fitted.recommend(s, title=title, k=500)
        assert len(uris) == len(set(uris)) == 500 == len(scores)
        assert not set(uris) & set(s)
        assert np.all(np.diff(scores) <= 1e-6)


def test_candidates_fast_path_matches_recommend(fitted, train_store):
    seeds = train_store.tracks["track_uri"].tolist()[:7]
    uris, scores = fitted.candidates(seeds, "summer", n=1500)
    assert len(uris) == 1500 and not set(uris) & set(seeds)
    assert np.all(np.diff(scores) <= 0)
    r_uris, r_scores = fitted.recommend(seeds, "summer", k=100)
    assert r_uris == uris[:100]
    np.testing.assert_allclose(r_scores, scores[:100], rtol=1e-6)


def test_seeds_move_the_answer(fitted, train_store):
    """The query tower reads the seeds: different seeds, different lists (unlike the POC)."""
    tr = train_store.tracks["track_uri"].tolist()
    a, _ = fitted.recommend(tr[:5], k=50)
    b, _ = fitted.recommend(tr[-5:], k=50)
    assert len(set(a) & set(b)) < 40


def test_same_seed_same_scores(fitted, train_store, features):
    again = TwoTowerRecommender(TINY, features=features, seed=0).fit(train_store)
    seeds = train_store.tracks["track_uri"].tolist()[10:20]
    u1, s1 = fitted.candidates(seeds, "chill", n=200)
    u2, s2 = again.candidates(seeds, "chill", n=200)
    assert u1 == u2
    np.testing.assert_allclose(s1, s2, atol=1e-6)
    assert [r["validation"] for r in fitted.curve_] == [r["validation"] for r in again.curve_]


def test_fit_uses_a_validation_split_handed_in(fitted, train_store, features):
    """``fit(validation=...)`` takes the caller's split (computed once and shared by every part) instead of carving
    one: the split fit would carve gives the same model, and its ``per_category`` is what ``config_`` records."""
    from types import SimpleNamespace

    from modules.challenge import split_store

    split = split_store(train_store, per_category=2, seed=0, pids=train_store.playlists["pid"].to_numpy())
    handed = TwoTowerRecommender({**TINY, "validation_per_category": "auto"}, features=features, seed=0).fit(
        train_store, validation=SimpleNamespace(split=split, per_category=2))
    assert handed.config_.validation_per_category == 2 and handed.fingerprint_ == fitted.fingerprint_
    assert [r["validation"] for r in handed.curve_] == [r["validation"] for r in fitted.curve_]
    seeds = train_store.tracks["track_uri"].tolist()[10:20]
    u1, s1 = fitted.candidates(seeds, "chill", n=200)
    u2, s2 = handed.candidates(seeds, "chill", n=200)
    assert u1 == u2
    np.testing.assert_allclose(s1, s2, atol=1e-6)
    # no split: every epoch trained, none validated, the last kept
    none = TwoTowerRecommender({**TINY, "epochs": 1}, features=features, seed=0).fit(
        train_store, validation=SimpleNamespace(split=None, per_category=0))
    assert none.config_.validation_per_category == 0 and none.best_epoch_ == 1
    assert "validation" not in none.curve_[0]


def test_resume_from_checkpoint_equals_straight_run(fitted, train_store, features, tmp_path):
    ck = tmp_path / "ck"
    first = TwoTowerRecommender({**TINY, "epochs": 1}, features=features, seed=0, checkpoint_dir=ck).fit(train_store)
    assert len(first.curve_) == 1 and (ck / "state.json").exists()
    resumed = TwoTowerRecommender(TINY, features=features, seed=0, checkpoint_dir=ck).fit(train_store)
    assert [r["epoch"] for r in resumed.curve_] == [1, 2]
    seeds = train_store.tracks["track_uri"].tolist()[10:20]
    np.testing.assert_allclose(resumed.candidates(seeds, "chill", n=100)[1],
                               fitted.candidates(seeds, "chill", n=100)[1], atol=1e-5)


def test_bundle_round_trip(fitted, bundle, train_store):
    root = Bundle(bundle).two_tower_dir
    for f in ("config.json", "training_curve.json", "items.parquet", "vocab/tracks.txt", "vocab/words.txt",
              "saved_model/saved_model.pb", "saved_model/variables/variables.index"):  # spelled on purpose
        assert (root / f).exists(), f
    assert not (root / "weights").exists()  # the tables are written once, in the SavedModel
    loaded = TwoTowerRecommender.load(bundle)
    seeds = train_store.tracks["track_uri"].tolist()[3:9]
    for title in ("chill", None):
        u1, s1 = fitted.candidates(seeds, title, n=300)
        u2, s2 = loaded.candidates(seeds, title, n=300)
        assert u1 == u2
        np.testing.assert_allclose(s1, s2, atol=1e-5)


def test_bundle_keeps_tables_once_as_float16_and_refuses_the_old_format(fitted, bundle, tmp_path):
    import shutil

    import tensorflow as tf

    root = Bundle(bundle).two_tower_dir
    stored = dict(tf.train.list_variables(str(root / "saved_model" / "variables" / "variables")))
    reader = tf.train.load_checkpoint(str(root / "saved_model" / "variables" / "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    tables = [k for k in stored if "embeddings/.ATTRIBUTES" in k or k.startswith("candidates/")]
    assert tables and all(dtypes[k] == tf.float16 for k in tables), {k: dtypes[k] for k in tables}
    # the fitted model already answers with the rounded tables: it and its bundle agree exactly
    assert fitted.candidate_embeddings_.dtype == np.float32
    np.testing.assert_array_equal(fitted.candidate_embeddings_,
                                  reader.get_tensor([k for k in stored if k.startswith("candidates/")][0]))
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    cfg = Bundle(old).two_tower_dir / "config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "format": "two-tower/1"}))
    with pytest.raises(BundleError, match=r"has format 'two-tower/1'; this code reads 'two-tower/2'. Re-train"):
        TwoTowerRecommender.load(old)


def test_saved_model_casts_the_candidate_table_once_and_answers_as_before(fitted, bundle, train_store, tmp_path):
    """The SavedModel multiplies by a float32 copy of its float16 candidate table made when it is loaded: its
    answers are those of the export that cast the table on every call (the same tracks; scores within float32
    rounding: TensorFlow fused that cast into the product, which summed in another order), and its files hold no
    float32 copy."""
    import tensorflow as tf

    from modules.two_tower.export import ServingModule

    class CastPerCall(ServingModule):  # the export before the copy
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="seed_track_uris"),
                                      tf.TensorSpec([None], tf.string, name="title")])
        def serve(self, seed_track_uris, title):
            items = self.table.lookup(seed_track_uris)
            q = self.query_tower({"seeds": items, "words": self.words(title), "ngrams": self.ngrams(title)})
            scores = tf.matmul(q, tf.cast(self.candidates, tf.float32), transpose_b=True)
            hit = tf.where((items >= 1) & (items <= self.n_candidates))
            cols = tf.cast(tf.gather_nd(items, hit) - 1, tf.int64)
            scores = tf.tensor_scatter_nd_update(scores, tf.stack([hit[:, 0], cols], axis=1),
                                                 tf.fill(tf.shape(cols), float("-inf")))
            top = tf.math.top_k(scores, k=self.k)
            return {"track_uris": tf.gather(self.uris, top.indices), "scores": top.values}

    old = CastPerCall(fitted, TINY["k"])
    tf.saved_model.save(old, str(tmp_path / "old"), signatures={"serving_default": old.serve})
    uris = train_store.tracks["track_uri"].tolist()
    seeds = tf.constant([uris[3:9], uris[40:42] + [""] * 4, [""] * 6])
    titles = tf.constant(["chill", "", "rock"])
    before, now = (tf.saved_model.load(str(p)).signatures["serving_default"](seed_track_uris=seeds, title=titles)
                   for p in (tmp_path / "old", Bundle(bundle).saved_model))
    np.testing.assert_array_equal(now["track_uris"].numpy(), before["track_uris"].numpy())
    np.testing.assert_allclose(now["scores"].numpy(), before["scores"].numpy(), rtol=0, atol=1e-6)
    reader = tf.train.load_checkpoint(str(Bundle(bundle).saved_model / "variables" / "variables"))
    shape = list(fitted.candidate_embeddings_.shape)
    same_shape = {k: d for k, d in reader.get_variable_to_dtype_map().items()
                  if reader.get_variable_to_shape_map()[k] == shape}
    assert list(same_shape.values()) == [tf.float16], same_shape


def test_saved_model_serves_without_project_code(fitted, bundle, train_store, tmp_path):
    seeds = train_store.tracks["track_uri"].tolist()[3:9]
    code = textwrap.dedent(f"""
        import json, sys

        class NoProjectCode:  # a serving machine without the package: the venv has it installed (pip install -e .)
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "modules":
                    raise ImportError("no project code here")

        sys.meta_path.insert(0, NoProjectCode())
        try:
            import modules
            print("PROJECT CODE IMPORTABLE"); sys.exit(3)
        except ImportError:
            pass
        import tensorflow as tf
        m = tf.saved_model.load({str(Bundle(bundle).saved_model)!r})
        f = m.signatures["serving_default"]
        seeds = tf.constant([{seeds!r}, {seeds[:2] + ["", "", "", ""]!r}, [""] * 6])
        out = f(seed_track_uris=seeds, title=tf.constant(["chill", "", "rock"]))
        print(json.dumps({{"uris": out["track_uris"].numpy().astype(str).tolist(),
                          "scores": out["scores"].numpy().tolist()}}))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    k = TINY["k"]
    assert [len(u) for u in out["uris"]] == [k, k, k]
    assert not set(out["uris"][0]) & set(seeds) and not set(out["uris"][1]) & set(seeds[:2])
    for row, (s, t) in enumerate(((seeds, "chill"), (seeds[:2], None), ([], "rock"))):
        uris, scores = fitted.candidates(s, t, n=k)
        assert out["uris"][row] == uris
        np.testing.assert_allclose(out["scores"][row], scores, atol=1e-4)


def test_bad_bundle_names_what_is_missing(bundle, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (Bundle(broken).two_tower_dir / "vocab" / "words.txt").unlink()
    (Bundle(broken).two_tower_dir / "saved_model" / "variables" / "variables.index").unlink()
    with pytest.raises(BundleError, match=r"missing vocab/words.txt, saved_model/variables/variables.index"):
        TwoTowerRecommender.load(broken)
    with pytest.raises(BundleError, match="does not exist"):
        TwoTowerRecommender.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="missing config.json"):
        TwoTowerRecommender.load(tmp_path / "empty")


def test_cli_train_two_tower(world_dir, tmp_path):
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({**TINY, "epochs": 1, "audio": False, "mixed_negatives": 1, "dropout": 0.1,
                               "pooling": "mean", "share_item_embeddings": False}))
    run = [sys.executable, "-m", "modules", "train-two-tower", "--mpd", str(world_dir), "--out",
           str(tmp_path / "b"), "--config", str(cfg), "--seed", "1"]
    out = subprocess.run(run, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "best epoch 1" in out.stdout and Bundle(tmp_path / "b").saved_model.is_dir()
    assert not Bundle(tmp_path / "b").checkpoints.exists()  # removed after a finished run
    cfg.write_text(json.dumps({"dim": 3}))
    out = subprocess.run(run, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: unknown two-tower config keys ['dim']")


def _padded_examples_reference(pl, cfg, rng, n_candidates):
    """The materialized epoch the two-tower trained on before the examples were stored ragged: the same draws
    (``_draw_examples``), then the padded post-processing kept verbatim as the reference (the compact form must
    give the same batches, hence the same model)."""
    from modules.two_tower.examples import draw_examples as _draw_examples

    S = cfg.max_seeds
    contexts, targets, title_rows = _draw_examples(pl, cfg, rng)
    seeds_rows = []
    for ctx in contexts:
        row = np.zeros(S, np.int32)
        row[:len(ctx)] = ctx
        seeds_rows.append(row)
    n_ex = len(targets)
    order = rng.permutation(n_ex)
    seeds = np.stack(seeds_rows)[order]
    target = np.asarray(targets, np.int32)[order]
    trow = np.asarray(title_rows, np.int64)[order]
    has = trow >= 0
    words = np.where(has[:, None], pl.words[np.maximum(trow, 0)], 0).astype(np.int32)
    ngrams = np.where(has[:, None], pl.ngrams[np.maximum(trow, 0)], 0).astype(np.int32)
    seed_drop = (rng.random(seeds.shape) < cfg.id_dropout) & (seeds > 0)
    target_drop = rng.random(n_ex) < cfg.id_dropout
    out = {"seeds": seeds, "target": target, "words": words, "ngrams": ngrams, "seed_drop": seed_drop,
           "target_drop": target_drop}
    if cfg.dropout > 0:
        out["rng"] = rng.integers(0, 2**31 - 1, size=(n_ex, 2)).astype(np.int64)
    if cfg.mixed_negatives:
        out["negatives"] = rng.integers(1, n_candidates + 1, size=(n_ex, cfg.mixed_negatives)).astype(np.int32)
    return out


@pytest.mark.parametrize("overrides", [{}, {"max_seeds": 7, "dropout": 0.2, "mixed_negatives": 3,
                                            "id_dropout": 0.4}])
def test_compact_examples_give_the_padded_batches(overrides, monkeypatch, tmp_path):
    """The ragged epoch, and the epoch written to disk and read back (what training streams), yield batch for
    batch the arrays of the padded one (same draws, same order), also with contexts longer than max_seeds,
    dropout seeds and mixed negatives, and with the draws after the shuffle taken in blocks."""
    from modules.two_tower import examples as tt

    gen = np.random.default_rng(5)
    tracks = [gen.permutation(np.arange(1, 400, dtype=np.int32))[: int(n)] for n in gen.integers(1, 160, 120)]
    pl = tt.Playlists(tracks=tracks, has_title=gen.random(120) < 0.7,
                      words=gen.integers(0, 50, (120, 8)).astype(np.int32),
                      ngrams=gen.integers(0, 90, (120, 48)).astype(np.int32))
    cfg = TwoTowerConfig.from_dict({**TINY, **overrides})
    monkeypatch.setattr(tt, "DROP_CHUNK", 37)
    ref = _padded_examples_reference(pl, cfg, np.random.default_rng(11), 399)
    ex = tt.make_examples(pl, cfg, np.random.default_rng(11), 399)
    assert len(ex) == len(ref["target"]) > 10 * cfg.batch_size
    batches = list(ex.batches(pl, cfg.batch_size))
    assert len(batches) == len(ref["target"]) // cfg.batch_size
    assert set(batches[0]) == set(ref)
    for i, batch in enumerate(batches):
        for key, value in batch.items():
            want = ref[key][i * cfg.batch_size:(i + 1) * cfg.batch_size]
            assert value.dtype == want.dtype and np.array_equal(value, want), (i, key)
    assert ex.seed_drop.any() and (ex.offsets[1:] - ex.offsets[:-1]).max() == cfg.max_seeds
    disk = tt.write_examples(pl, cfg, np.random.default_rng(11), 399, tmp_path)
    assert len(disk) == len(ex) and disk.n_batches(cfg.batch_size) == len(batches)
    for i, batch in enumerate(disk.batches(pl, cfg.batch_size)):
        assert set(batch) == set(ref)
        for key, value in batch.items():
            want = ref[key][i * cfg.batch_size:(i + 1) * cfg.batch_size]
            assert value.dtype == want.dtype and value.shape == want.shape and np.array_equal(value, want), (i, key)
    assert disk.dataset(pl, cfg.batch_size).element_spec["seeds"].shape == (cfg.batch_size, cfg.max_seeds)
    disk.close()


def test_the_epoch_on_disk_is_not_held_in_memory(tmp_path, monkeypatch):
    """Writing an epoch to disk and reading it back a batch at a time holds the shuffle's order (4 bytes an
    example) and a batch, not the examples: its peak (tracemalloc) is a small part of the in-memory epoch's, and
    the epoch's temporary folder goes when training is done with it."""
    import tracemalloc

    from modules.two_tower import examples as tt

    gen = np.random.default_rng(3)
    n_pl = 400
    monkeypatch.setattr(tt, "DROP_CHUNK", 1024)  # the dropout draws' block ([rows, max_seeds] float64) is transient
    tracks = [gen.permutation(np.arange(1, 3000, dtype=np.int32))[: int(n)] for n in gen.integers(20, 200, n_pl)]
    pl = tt.Playlists(tracks=tracks, has_title=gen.random(n_pl) < 0.7,
                      words=gen.integers(0, 50, (n_pl, 8)).astype(np.int32),
                      ngrams=gen.integers(0, 90, (n_pl, 48)).astype(np.int32))
    cfg = TwoTowerConfig.from_dict({**TINY, "examples_per_track": 1.0, "batch_size": 64})

    def peak(fn):
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def in_memory():
        for _ in tt.make_examples(pl, cfg, np.random.default_rng(0), 2999).batches(pl, cfg.batch_size):
            pass

    seen = []

    def on_disk():
        with tt.epoch_on_disk(pl, cfg, np.random.default_rng(0), 2999, tmp_path) as ex:
            seen.append((len(ex), ex.folder))
            gen = ex.batches(pl, cfg.batch_size)
            first = next(gen)  # a generator of batches, no array of the epoch behind it but the order
            assert len(first["target"]) == cfg.batch_size
            held = [v.nbytes for v in vars(ex).values() if isinstance(v, np.ndarray)]
            assert held == [4 * len(ex)]
            for _ in gen:
                pass

    memory, disk = peak(in_memory), peak(on_disk)
    n_ex, folder = seen[0]
    assert n_ex > 300 * cfg.batch_size
    assert disk < memory / 4, (disk, memory)
    assert disk < 4 * n_ex + 4 * 1024 * 1024, (disk, n_ex)  # the order and a few batches
    assert not folder.exists() and not list(tmp_path.iterdir())


def test_validation_scores_the_playlists_in_chunks_with_the_same_result(fitted, train_store, monkeypatch):
    """The validation summary scores a chunk of playlists per catalog scan (bounded [chunk, tracks] scores, not
    [all validation playlists, tracks]) and gets what scoring them all at once gets."""
    from modules.challenge import split_store
    from modules.two_tower import training

    split = split_store(train_store, per_category=2, seed=3)
    sizes = []
    real = fitted._candidates_batch

    def counting(seeds, titles, n):
        sizes.append(len(seeds))
        return real(seeds, titles, n)

    monkeypatch.setattr(fitted, "_candidates_batch", counting)
    monkeypatch.setattr(training, "VALIDATION_CHUNK", 3)
    chunked = training.validation_summary(fitted, split, train_store)
    assert max(sizes) == 3 and sum(sizes) == len(split.challenge["playlists"]) > 3
    monkeypatch.setattr(training, "VALIDATION_CHUNK", 10_000)
    assert training.validation_summary(fitted, split, train_store) == chunked
