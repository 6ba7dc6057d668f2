"""``modules.hybrid.lab``: the steps of the hybrid's ``fit`` for experiments, and the benchmarks' use of it.

The lab functions must run the code ``fit`` runs: on the tiny bundle's own two-tower and training store, they
rebuild the validation cuts ``fit`` learnt from and reproduce the numbers its manifest records.
"""

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from conftest import TINY_PARAMS as PARAMS

from modules.hybrid import BLEND_BUCKETS, BLEND_GRID, PER_CUT, HybridError, HybridRecommender, lab
from modules.validation import carve_validation


@pytest.fixture(scope="module")
def manifest(tiny_bundle):
    return json.loads((tiny_bundle / "manifest.json").read_text())


@pytest.fixture(scope="module")
def stage(tiny_bundle, train_store):
    """The validation stage of the tiny bundle's configuration, reusing its two-tower (trained on these playlists
    with this split held out)."""
    h = HybridRecommender(**PARAMS, two_tower_bundle=str(tiny_bundle))
    split = lab.fit_validation_stage(h, train_store)
    return h, split, lab.fusion_data(h, split, train_store)


def test_the_split_and_cuts_are_the_ones_fit_learns_from(stage, train_store, manifest):
    h, split, data = stage
    carved = carve_validation(train_store, train_store.playlists["pid"].to_numpy(),
                              per_category=PARAMS["validation_per_category"], seed=0).split
    pids = [p["pid"] for p in split.challenge["playlists"]]
    assert pids == [p["pid"] for p in carved.challenge["playlists"]]
    assert np.array_equal(np.sort(split.train_pids), np.sort(carved.train_pids))
    assert not set(pids) & set(np.asarray(split.train_pids).tolist())
    # the parts were fitted outside the split: no validation playlist is in ALS's matrix
    assert not set(pids) & set(h.als_.matrix_.pids.tolist())
    v = manifest["validation"]
    assert len(pids) == v["playlists"] and len(data["examples"]) == v["cuts"]
    assert len(data["y"]) == v["candidates"] and int(data["y"].sum()) == v["positives"]
    assert len(data["sets"]) == len(data["labels"]) == len(data["examples"])
    # one float32 matrix of features; each cut's rows are a view of it, not a copy
    assert data["X"].dtype == np.float32 and len(data["X"]) == len(data["y"])
    assert all(cs.X.base is data["X"] for cs in data["sets"] if len(cs.X))
    assert sorted(data["first"]) == list(range(len(pids)))  # one official cut per validation playlist
    rows = np.repeat([e[0] % 2 for e in data["examples"]], [len(s.uris) for s in data["sets"]])
    assert np.array_equal(data["fold"], rows)  # folds by playlist, never splitting a playlist's cuts
    cuts = lab.fusion_examples(h, split, train_store)
    assert [(e[0], e[1], e[2]) for e in cuts] == [(e[0], e[1], e[2]) for e in data["examples"]]


@pytest.mark.parametrize("kind", ["logistic", "hgb"])
def test_cross_fitted_scores_reproduce_the_manifest(stage, manifest, kind):
    h, split, data = stage
    scores = lab.cross_fitted_scores(h, data, kind)
    assert len(scores) == len(data["sets"])
    for s, cs in zip(scores, data["sets"], strict=True):
        assert s.shape == (len(cs.uris),) and np.all((s >= 0) & (s <= 1))
    summary = lab.score_cuts(h, data, split, scores)
    assert len(summary[PER_CUT]) == len(data["examples"]) == summary["ALL_CUTS"]["count"]
    recorded = manifest["validation"]["fusion_all_cuts"][kind]
    assert summary["ALL_CUTS"]["ndcg"] == pytest.approx(recorded["ndcg"], abs=1e-9)
    assert summary["ALL"]["ndcg"] == pytest.approx(manifest["validation"]["fusion"][kind]["ndcg"], abs=1e-9)


def test_the_fusion_is_the_same_on_one_blas_thread_or_two(stage):
    """OpenBLAS splits a long product over its threads and adds the partial sums: unpinned, the logistic fusion
    fitted on one thread (a process limited elsewhere, a 1-core machine) scored validation NDCG 0.156975 where
    two threads gave the manifest's 0.157085. ``fit`` pins BLAS to one thread for the fusion."""
    from threadpoolctl import threadpool_limits

    h, _split, data = stage
    with threadpool_limits(limits=1, user_api="blas"):
        one = lab.cross_fitted_scores(h, data, "logistic")
    with threadpool_limits(limits=2, user_api="blas"):
        two = lab.cross_fitted_scores(h, data, "logistic")
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))


def test_choose_blend_gives_the_served_weights(stage, manifest, tiny_bundle):
    h, split, data = stage
    chosen = manifest["validation"]["chosen"]
    scores = lab.cross_fitted_scores(h, data, chosen)
    weights, honest = lab.choose_blend(h, data, scores)
    assert set(weights) <= set(range(len(BLEND_BUCKETS) + 1))
    assert all(a in BLEND_GRID and c in BLEND_GRID for a, c in weights.values())
    served = HybridRecommender.load(tiny_bundle).blend_
    assert weights == served
    assert len(honest) == len(scores) and all(len(b) == len(s) for b, s in zip(honest, scores, strict=True))
    blended = lab.score_cuts(h, data, split, honest)["ALL_CUTS"]["ndcg"]
    assert blended == pytest.approx(manifest["validation"]["blend"]["all_cuts"]["ndcg"], abs=1e-9)
    # without the ALS part the blend cannot weigh ALS
    no_als = HybridRecommender(**PARAMS)
    no_als.parts_ = ("two_tower", "rules", "content")
    weights, _ = lab.choose_blend(no_als, data, scores)
    assert all(a == 0.0 for a, _c in weights.values())
    # per-title buckets, as benchmarks/lab/fusion_kinds.py --blend-by-title asks
    bucket = np.array([e[3] is not None for e in data["examples"]], int)
    weights, _ = lab.choose_blend(h, data, scores, bucket=bucket)
    assert set(weights) == set(bucket.tolist())


def test_fusion_kinds_and_fitted_tables(stage):
    h, _split, data = stage
    with pytest.raises(HybridError, match="unknown fusion"):
        lab.cross_fitted_scores(h, data, "forest")
    model = lab.new_fusion(h, "logistic_by_length", {"buckets": [1, 10]})
    assert model.buckets == (1, 10) and model.n_seeds_col == h.feature_names_.index("n_seeds_log")
    ids = lab.id_maps(h)
    assert ids.n_known == len(h.track_uris_)
    table = lab.audio_taste(h)
    assert table is lab.audio_taste(h)  # built once


def benchmark_files() -> list[Path]:
    return sorted((ROOT / "benchmarks").rglob("*.py"))


# private names a benchmark still imports, with the reason (a public name belongs in the module that owns them)
PRIVATE_IMPORTS: dict[tuple[str, str], str] = {}


def test_benchmarks_use_public_names_only():
    """No benchmark reaches into a product object's private attributes or methods, or replaces one (a
    monkeypatch): experiments go through ``modules.hybrid.lab`` and public methods."""
    found = []
    for path in benchmark_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("modules"):
                found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name}" for a in node.names
                          if a.name.startswith("_") and (path.name, a.name) not in PRIVATE_IMPORTS]
    assert not found, found
    assert (ROOT / "benchmarks" / "lab" / "__init__.py").exists()


def test_the_fusion_choice_shows_its_steps_and_chooses_as_without_a_bar(stage, manifest, capsys):
    """At a million playlists the choice runs for a quarter of an hour after the features' bar ends: it shows a
    bar of its own (three steps per kind and the refit), and the bar changes nothing."""
    from modules.hybrid.selection import select_fusion

    h, split, data = stage
    kinds = ("logistic", "hgb")
    quiet = select_fusion(data, split, kinds, h._new_fusion, True)
    assert "fusion choice" not in capsys.readouterr().err
    shown = select_fusion(data, split, kinds, h._new_fusion, True, show_progress=True)
    err = capsys.readouterr().err
    assert "fusion choice" in err and "7/7" in err
    assert shown.kind == quiet.kind and shown.validation == quiet.validation and shown.weights == quiet.weights
    assert shown.validation["fusion_all_cuts"]["logistic"]["ndcg"] == pytest.approx(
        manifest["validation"]["fusion_all_cuts"]["logistic"]["ndcg"], abs=1e-9)
