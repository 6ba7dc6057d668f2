"""The training notebooks: committed without outputs, in sync with their builder, and they run end to end.

Each notebook is executed with nbclient (a real kernel) on the session's 400-playlist world with small parameters
injected after its ``parameters`` cell, as CI does; the checks read what the notebooks wrote and displayed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_PARAMS, TINY_TT

from modules.bundle import Bundle
from notebooks.build_notebooks import execute, inject_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("01_explore_playlists", "02_train_two_tower", "03_hybrid_evaluate_export")
CATEGORIES = {"title_only", "title_first_1", "title_first_5", "first_5_no_title", "title_first_10",
              "first_10_no_title", "title_first_25", "title_random_25", "title_first_100", "title_random_100"}
PLOTLY = "application/vnd.plotly.v1+json"


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def text_of(nb) -> str:
    out = []
    for o in outputs(nb):
        out.append(o.get("text", ""))
        out.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(out)


def plotly_array(value) -> list:
    """A trace's data array: plotly writes numeric arrays as {"dtype", "bdata" (base64)}."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value)


def figures(nb) -> list[dict]:
    return [o["data"][PLOTLY] for o in outputs(nb) if PLOTLY in o.get("data", {})]


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name):
    import nbformat

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "DATA_DIR" in tagged[0].source


def test_builder_in_sync():
    r = subprocess.run([sys.executable, "-m", "notebooks.build_notebooks", "--check"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_inject_parameters_rejects_unknown():
    import nbformat

    nb = nbformat.read(NOTEBOOKS / "01_explore_playlists.ipynb", as_version=4)
    with pytest.raises(ValueError, match="unknown parameters \\['PLAYLIST'\\]"):
        inject_parameters(nb, {"PLAYLIST": 3})
    n = len(nb.cells)
    inject_parameters(nb, {"PLAYLISTS": 3})
    assert len(nb.cells) == n + 1 and "PLAYLISTS = 3" in nb.cells[2].source


@pytest.fixture(scope="module")
def runs(world_dir, tmp_path_factory):
    """Execute the three notebooks in order (03 reuses the split and the two-tower 02 wrote)."""
    work = tmp_path_factory.mktemp("notebooks")
    common = {"DATA_DIR": str(world_dir), "SEED": 0}
    split = {"PER_CATEGORY": 3, "WORK_DIR": str(work)}
    tt_dir = work / "two-tower"
    tt = {**TINY_TT, "validation_per_category": TINY_PARAMS["validation_per_category"]}  # as the hybrid's
    params = {
        "01_explore_playlists": {**common, "MIN_SUPPORT": 0.01, "TOP": 5},
        "02_train_two_tower": {**common, **split, "MODEL_DIR": str(tt_dir),
                               "TWO_TOWER": tt,
                               "BASELINES": ["popularity", "itemknn"]},
        "03_hybrid_evaluate_export": {**common, **split, "MODEL_DIR": str(work / "bundle"), "PARAMS": TINY_PARAMS,
                                      "TWO_TOWER_BUNDLE": str(tt_dir)},
    }
    # the kernel starts in the repository root, so it imports this checkout's `modules` (python -m puts the
    # working directory first), whichever checkout the venv's editable install points at
    return work, {name: execute(NOTEBOOKS / f"{name}.ipynb", params[name], cwd=ROOT, timeout=600) for name in NAMES}


def test_01_explore(runs):
    _, nbs = runs
    nb = nbs["01_explore_playlists"]
    text = text_of(nb)
    assert "avg_playlist_length" in text and "MPD (stats.txt)" in text
    line = next(t for t in text.splitlines() if t.startswith("mlxtend:"))
    a, b = (int(x.split()[0].replace(",", "")) for x in line.split(":")[1:])
    assert a == b and a > 0  # mlxtend and the sparse miner found the same, non-empty, set of rules
    assert len(figures(nb)) == 4  # lengths, long tail, titles, rules


def test_02_two_tower(runs):
    work, nbs = runs
    nb = nbs["02_train_two_tower"]
    assert (Bundle(work / "two-tower").saved_model / "saved_model.pb").exists()
    results = json.loads((work / "02_comparison.json").read_text())
    assert set(results) == {"two-tower", "popularity", "itemknn"}
    for r in results.values():
        assert set(r) == CATEGORIES | {"ALL"} and r["ALL"]["count"] == 30
        assert 0 <= r["ALL"]["ndcg"] <= 1
    curve = json.loads(Bundle(work / "two-tower").training_curve.read_text())["epochs"]
    live = figures(nb)[0]  # the live chart, updated in place after each epoch
    assert [d["name"] for d in live["data"]] == ["training loss", "validation recall@500"]
    assert plotly_array(live["data"][0]["x"]) == [r["epoch"] for r in curve] and len(curve) == TINY_TT["epochs"]
    assert plotly_array(live["data"][0]["y"]) == pytest.approx([r["loss"] for r in curve], abs=1e-4)
    assert plotly_array(live["data"][1]["y"]) == pytest.approx([r["validation"]["recall"] for r in curve], abs=1e-4)
    assert len(figures(nb)) == 2


def test_03_hybrid_bundle(runs):
    from modules.recommender import Recommender

    work, nbs = runs
    nb = nbs["03_hybrid_evaluate_export"]
    rec = Recommender.load(work / "bundle")
    assert rec.manifest["data"]["playlists"] > 300
    assert rec.recommend([], "rock", 5)["track_uri"].nunique() == 5
    ev = json.loads((work / "03_evaluation.json").read_text())
    assert set(ev) == {"hybrid", "two-tower"}
    assert set(ev["hybrid"]) == CATEGORIES | {"ALL"} and ev["hybrid"]["ALL"]["count"] == 30
    text = text_of(nb)
    assert "SavedModel top 5:" in text and "serve it: python -m modules serve" in text
    assert figures(nb)
