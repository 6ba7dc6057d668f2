"""The two-tower served without TensorFlow: the checkpoint reader, the title tokens and the NumPy query tower
against TensorFlow's own answers, and loading a bundle without importing TensorFlow."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from modules.bundle import Bundle
from modules.errors import BundleError
from modules.two_tower import TwoTowerRecommender
from modules.two_tower import title_tokens as tt
from modules.two_tower.bundle import VARIABLES
from modules.two_tower.checkpoint import read_checkpoint, variable_keys

# mean+max pooling and audio features: every branch of the tower (the mean pooling is checked through the
# bundle round trip and the SavedModel test of test_two_tower.py)
TINY = {"embedding_dim": 16, "hidden_dim": 32, "epochs": 1, "batch_size": 64, "validation_per_category": 2,
        "word_vocab_size": 500, "ngram_vocab_size": 1000, "examples_per_track": 0.3, "k": 50, "pooling": "mean+max"}
TRICKY_TITLES = ["K-Pop Hits!", "ΟΔΟΣ ΣΑΣ", "İstanbul ǅ ß ﬃ", "  chill\tvibes\n", "\vrock\v", "a\u00a0b a\u2003b",
                 "a\x1cb a\x85b", "", " ", "__", "a_b", "🎵 mood 🎶", "pink 🩷 heart", "Ⱟ upper", "cut\x00here",
                 "one two three four five six seven eight nine ten", "x" * 80, "ΣΣ aΣ. Σa", "café CAFÉ cafe\u0301"]


@pytest.fixture(scope="module")
def fitted(train_store, catalog):
    features = catalog[["track_uri", "artist_uri", "album_uri", "danceability", "energy", "valence", "tempo"]]
    return TwoTowerRecommender(TINY, features=features, seed=0).fit(train_store)


@pytest.fixture(scope="module")
def bundle(fitted, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    fitted.save(out)
    return out


@pytest.fixture(scope="module")
def queries(train_store):
    rng = np.random.default_rng(0)
    uris = train_store.tracks["track_uri"].tolist()
    titles = [*train_store.playlists["name"].tolist()[:60], *TRICKY_TITLES, None]
    out = []
    for i in range(150):
        seeds = [uris[j] for j in rng.integers(0, len(uris), int(rng.integers(0, 25)))]
        if i % 7 == 0:
            seeds.append("spotify:track:not-in-training")
        if i % 11 == 0:
            seeds += seeds[:2]  # repeats count as the Keras tower counts them
        out.append((seeds, titles[i % len(titles)]))
    return out


def test_checkpoint_reader_reads_what_tensorflow_reads(bundle, tmp_path):
    import tensorflow as tf

    prefix = Bundle(bundle).two_tower_dir / VARIABLES
    reader = tf.train.load_checkpoint(str(prefix))
    ours = read_checkpoint(prefix)
    numeric = {k for k, d in reader.get_variable_to_dtype_map().items() if d != tf.string}
    assert set(ours) == numeric and len(numeric) > 10
    for k in numeric:
        want = reader.get_tensor(k)
        assert ours[k].dtype == want.dtype and np.array_equal(ours[k], want), k
    keys = variable_keys(prefix, ["candidates", "query_tower/hidden/kernel", "query_tower/seed_encoder/missing"])
    assert np.array_equal(ours[keys["query_tower/hidden/kernel"]], TwoTowerRecommender.load(bundle)
                          .query_encoder_.w["hidden_kernel"])
    # memory-mapped (what a loaded tower does with its embedding tables): the same numbers, read when touched
    key = keys["candidates"]
    mapped = read_checkpoint(prefix, [key], mapped={key})
    assert isinstance(mapped[key], np.memmap) and np.array_equal(mapped[key], ours[key])
    tower = TwoTowerRecommender.load(bundle).query_encoder_
    assert all(isinstance(tower.w[t], np.memmap) and not tower.w[t].flags.writeable
               for t in ("track", "artist", "album", "words", "ngrams"))
    with pytest.raises(BundleError, match="has no variable query_tower/nothing"):
        variable_keys(prefix, ["query_tower/nothing"])
    bad = tmp_path / "variables"
    (tmp_path / "variables.index").write_bytes(b"not a checkpoint" * 4)
    with pytest.raises(BundleError, match="is not a TensorFlow checkpoint index"):
        read_checkpoint(bad)


def test_title_standardization_matches_tensorflow_on_every_code_point():
    import tensorflow as tf

    from modules.two_tower import text

    cps = [c for c in range(0x110000) if not (0xD800 <= c < 0xE000)]
    strings = ["A" + chr(c) + "b " + chr(c) for c in cps]
    for tf_fn, py_fn in ((text.standardize_words, tt.standardize_words),
                         (text.standardize_ngrams, tt.standardize_ngrams)):
        got = []
        for a in range(0, len(strings), 250_000):
            got += [x.decode("utf-8") for x in tf_fn(tf.constant(strings[a:a + 250_000])).numpy()]
        bad = [(hex(c), g, py_fn(s)) for c, s, g in zip(cps, strings, got, strict=True) if g != py_fn(s)]
        assert not bad, f"{len(bad)} code points differ, e.g. {bad[:10]}"


def test_title_ids_match_the_keras_layers(fitted, train_store):
    tokens = fitted.query_encoder_.tokens
    fitted._keras_parts()
    titles = [*train_store.playlists["name"].astype(str).tolist(), *TRICKY_TITLES]
    words = fitted.words_layer_(np.array(titles, dtype=object)).numpy()
    ngrams = fitted.ngrams_layer_(np.array(titles, dtype=object)).numpy()
    assert (words > 1).sum() > len(titles) and (ngrams > 1).sum() > 10 * len(titles)  # known tokens, many
    for title, w, g in zip(titles, words, ngrams, strict=True):
        assert tokens(title) == ([int(x) for x in w if x], [int(x) for x in g if x]), title


def test_numpy_query_tower_equals_the_keras_tower(fitted, queries):
    numpy_q = fitted.encode_queries([s for s, _ in queries], [t for _, t in queries])
    numpy_top = [fitted.top_batch([s], [t], 200)[0] for s, t in queries]
    enc = fitted.query_encoder_
    try:
        fitted._keras_parts()
        fitted.query_encoder_ = None  # the Keras tower (as during training), one query at a time
        keras_q = np.stack([fitted.encode_queries([s], [t])[0] for s, t in queries])
        keras_top = [fitted.top_batch([s], [t], 200)[0] for s, t in queries]
    finally:
        fitted.query_encoder_ = enc
    assert numpy_q.shape == keras_q.shape == (len(queries), TINY["embedding_dim"] + 1)
    np.testing.assert_allclose(numpy_q, keras_q, rtol=0, atol=1e-5)
    for (ia, sa), (ib, sb) in zip(numpy_top, keras_top, strict=True):
        np.testing.assert_allclose(sa, sb, rtol=0, atol=1e-5)
        # the orders differ only between near-ties: an item the Keras tower puts at p is one the NumPy tower
        # puts at q with a score within float32 rounding of its score at p (or just past the cut)
        where = {int(x): q for q, x in enumerate(ia)}
        for p in np.flatnonzero(ia != ib):
            q = where.get(int(ib[p]))
            assert (q is None and sb[p] - sa[-1] < 1e-5) or abs(sa[q] - sa[p]) < 1e-5, (p, q)


def test_loading_and_recommending_do_not_import_tensorflow(fitted, bundle, tiny_bundle, queries, tmp_path):
    seeds, title = queries[1]
    code = textwrap.dedent(f"""
        import json, sys
        from modules.two_tower import TwoTowerRecommender
        from modules.recommender import Recommender
        from modules.query import Query

        tt = TwoTowerRecommender.load({str(bundle)!r})
        uris, scores = tt.candidates({seeds!r}, {title!r}, n=50)
        rec = Recommender.load({str(tiny_bundle)!r})
        (answer,) = rec.recommend_many([Query(seed_track_uris={seeds[:3]!r}, title="chill", k=20)])  # explained
        print(json.dumps({{"uris": uris, "tensorflow": "tensorflow" in sys.modules,
                          "hybrid": len(answer["track_uri"]) if isinstance(answer, dict) else repr(answer)}}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["tensorflow"] is False
    assert out["uris"] == fitted.candidates(seeds, title, n=50)[0]
    assert out["hybrid"] == 20


def test_a_loaded_model_saves_the_same_bundle(fitted, bundle, queries, tmp_path):
    loaded = TwoTowerRecommender.load(bundle)
    assert loaded.query_tower_ is None  # nothing Keras until asked
    loaded.save(tmp_path / "again")
    a = read_checkpoint(Bundle(bundle).two_tower_dir / VARIABLES)
    b = read_checkpoint(Bundle(tmp_path / "again").two_tower_dir / VARIABLES)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    for name in ("words", "ngrams", "tracks"):
        path = f"vocab/{name}.txt"
        assert (Bundle(bundle).two_tower_dir / path).read_bytes() == (Bundle(tmp_path / "again").two_tower_dir
                                                                      / path).read_bytes()
    again = TwoTowerRecommender.load(tmp_path / "again")
    for seeds, title in queries[:20]:
        u1, s1 = fitted.candidates(seeds, title, n=100)
        u2, s2 = again.candidates(seeds, title, n=100)
        assert u1 == u2 and np.array_equal(s1, s2)


def test_a_bundle_whose_variables_do_not_fit_its_config_is_refused(bundle, tmp_path):
    import json
    import shutil

    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    cfg = Bundle(b).two_tower_dir / "config.json"
    meta = json.loads(cfg.read_text())
    meta["config"]["hidden_dim"] = 48
    cfg.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"do not match config.json/vocab .*hidden_kernel.*Re-train it"):
        TwoTowerRecommender.load(b)
