"""Write the training notebooks (``notebooks/*.ipynb``, without outputs) and execute them with parameters.

    .venv/bin/python -m notebooks.build_notebooks                 # (re)write the three .ipynb files
    .venv/bin/python -m notebooks.build_notebooks --check         # fail if the committed files differ
    .venv/bin/python -m notebooks.build_notebooks --run 01_explore_playlists --param PLAYLISTS=400 \
        --out /tmp/01.ipynb                                       # execute one with parameters (nbclient)

The notebooks are generated so they stay reproducible and reviewable as Python; they are thin: narrative plus
calls into ``modules``. Each has one cell tagged ``parameters`` (papermill's convention): ``execute`` inserts
an ``injected-parameters`` cell after it, as papermill does, and runs the notebook with nbclient.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''\
import logging
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.io as pio
from IPython.display import display  # noqa: F401  (tables and live charts in some notebooks)

# the repository root (the folder holding modules/): paths in the parameters are relative to it;
# `modules` itself is imported from the installed package (`make venv` runs `pip install -e .`)
ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "modules" / "__init__.py").exists())
pio.renderers.default = "plotly_mimetype+notebook_connected"
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
pd.set_option("display.width", 160)'''

DATA = '''\
from modules.store import open_store
from modules.world import write_world

data = ROOT / DATA_DIR
if not any(data.rglob("mpd.slice.*.json")):  # no slices there: generate the playlist world
    write_world(data, PLAYLISTS, seed=SEED, show_progress=False)
print(f"playlists from {data}")'''

SPLIT = '''\
import orjson

from modules.challenge import split_mpd
from modules.mpd import read_challenge

split = ROOT / WORK_DIR / f"split-{data.name}-pc{PER_CATEGORY}-s{SEED}"
if not (split / "truth.json").exists():
    split_mpd(data, split, per_category=PER_CATEGORY, seed=SEED)
challenge = read_challenge(split / "challenge_set.json")
truth = orjson.loads((split / "truth.json").read_bytes())
artist_of = orjson.loads((split / "track_artists.json").read_bytes())
seeds_of = {p["pid"]: [t["track_uri"] for t in p["tracks"]] for p in challenge["playlists"]}
train_store = open_store(split / "train")
print(f"{len(train_store.playlists):,} training playlists, {len(challenge['playlists'])} challenge playlists "
      f"({PER_CATEGORY} in each of the ten categories) in {split}")'''


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


# The split notebooks 02 and 03 share (the same values let 03 reuse 02's split and two-tower).
SPLIT_PARAMETERS = '''
DATA_DIR = "data/world-1000"
PLAYLISTS = 1000
SEED = 0
PER_CATEGORY = 10
WORK_DIR = "data/split-notebooks"   # the split and the result files (git-ignored)
'''


def code(text: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def _nb(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: rebuilding gives byte-identical files
        nb.cells.append(cell)
    return nb


def explore() -> nbformat.NotebookNode:
    return _nb([
md('''\
# 01 · Explore the playlists

What the training data looks like before any model: the dataset's statistics beside the Million Playlist
Dataset's published ones, playlist lengths, the long tail of track popularity, the titles; then playlists as
baskets — frequent itemsets and association rules with **mlxtend**, and the check that the project's sparse
miner (`modules.rules`, which scales to a million playlists) finds exactly the same rules.

Parameters (next cell, tagged `parameters`): `DATA_DIR` holds MPD slices (`mpd.slice.*.json`, real or
generated) relative to the repository root; when it holds none, a playlist world of `PLAYLISTS` playlists is
generated there. `MIN_SUPPORT` is the share of playlists an itemset must be in.'''),
code(r'''
DATA_DIR = "data/world-1000"   # MPD slices; generated when missing
PLAYLISTS = 1000               # size of the generated world
SEED = 0
MIN_SUPPORT = 0.004            # itemsets in at least 0.4% of the playlists (4 of 1,000)
MIN_CONFIDENCE = 0.1
TOP = 20                       # rows shown in the top-N tables''', tags=['parameters']),
code(SETUP),
code(DATA + '''\n\nstore = open_store(data)'''),
md('''\
## The dataset beside the MPD

`store.stats()` is what `python -m modules stats DATA_DIR` prints.'''),
code(r'''
from modules.cli.data import MPD_PUBLISHED


def fmt(v):
    return "" if pd.isna(v) else f"{v:,.3f}" if isinstance(v, float) else f"{v:,}"


stats = store.stats()
ours = {k: v for k, v in stats.items() if k != "top_titles"}
pd.DataFrame({"this data": {k: fmt(v) for k, v in ours.items()},
              "MPD (stats.txt)": {k: fmt(MPD_PUBLISHED.get(k, float("nan"))) for k in ours}})'''),
md('''\
## Playlist lengths

The MPD's playlists have 5 to 250 tracks, 66 on average.'''),
code(r'''
pl = store.playlists
fig = px.histogram(pl, x="num_tracks", nbins=50, title="Tracks per playlist",
                   labels={"num_tracks": "tracks in the playlist"})
fig.show()
pl["num_tracks"].describe().to_frame().T'''),
md('''\
## The popularity long tail

A few tracks are in many playlists, most tracks in one or two: rank against playlist count on log-log axes
is close to a straight line. Popularity alone is a strong baseline for that reason, and the long tail is
what the models must get right.'''),
code(r'''
tracks = store.tracks.sort_values("count", ascending=False).reset_index(drop=True)
tracks["rank"] = tracks.index + 1
fig = px.line(tracks, x="rank", y="count", log_x=True, log_y=True,
              title="Playlists per track, by popularity rank",
              hover_data=["track_name", "artist_name"])
fig.show()
print(f"{stats['share_tracks_seen_once']:.0%} of the tracks are in one playlist; the top 1% of "
      f"tracks make {stats['share_entries_top_1pct_tracks']:.0%} of all playlist entries")
tracks.head(TOP)[["rank", "track_name", "artist_name", "count"]]'''),
md('''\
## Titles

Titles are short and repeat a lot once normalized (lower case, no punctuation): the two-tower reads them
(words and character trigrams), which answers title-only playlists.'''),
code(r'''
titles = pd.Series(stats["top_titles"], name="playlists").head(TOP)
fig = px.bar(titles[::-1], orientation="h", title="Most common (normalized) titles",
             labels={"index": "title", "value": "playlists"})
fig.update_layout(showlegend=False)
fig.show()'''),
md('''\
## Playlists as baskets: frequent itemsets with mlxtend

Each playlist is a transaction and each track an item. mlxtend's `fpgrowth` runs on a one-hot frame; only
tracks that are frequent on their own can be in a frequent itemset, so the frame keeps just those columns
(the supports are unchanged).'''),
code(r'''
import numpy as np
from mlxtend.frequent_patterns import association_rules, fpgrowth

from modules.rules import load_transactions

tx = load_transactions(store)
support = np.asarray(tx.matrix.sum(axis=0)).ravel() / tx.n_playlists
frequent = np.flatnonzero(support >= MIN_SUPPORT)
onehot = pd.DataFrame.sparse.from_spmatrix(tx.matrix[:, frequent].astype(bool),
                                           columns=[str(u) for u in tx.track_uris[frequent]])
itemsets = fpgrowth(onehot, min_support=MIN_SUPPORT, use_colnames=True, max_len=3)
itemsets["size"] = itemsets["itemsets"].map(len)
name = dict(zip(store.tracks["track_uri"], store.tracks["track_name"] + " — "
                + store.tracks["artist_name"]))

def names(items):
    return " + ".join(sorted(name.get(u, u) for u in items))

print(f"{len(frequent)} frequent tracks; itemsets by size: "
      f"{itemsets['size'].value_counts().sort_index().to_dict()}")
top_sets = itemsets[itemsets["size"] > 1].nlargest(TOP, "support")
top_sets.assign(tracks=top_sets["itemsets"].map(names))[["tracks", "support"]]'''),
md('''\
## Association rules, top by lift

"People who put A (and B) in a playlist also added C": confidence is P(C | A, B), lift is how much more
likely C is given A (and B) than overall.'''),
code(r'''
rules = association_rules(itemsets, num_itemsets=tx.n_playlists, metric="confidence",
                          min_threshold=MIN_CONFIDENCE)
metrics = ["support", "confidence", "lift"]
rules[metrics] = rules[metrics].astype(float)  # mlxtend returns object columns for a sparse input
top_rules = rules.nlargest(TOP, ["lift", "confidence"])
display(top_rules.assign(**{"if": top_rules["antecedents"].map(names),
                            "then": top_rules["consequents"].map(names)})
        [["if", "then", "support", "confidence", "lift"]].round(3))
fig = px.scatter(rules, x="support", y="confidence", color="lift", log_x=True,
                 title=f"{len(rules):,} rules (min support {MIN_SUPPORT}, "
                       f"min confidence {MIN_CONFIDENCE})", color_continuous_scale="Viridis")
fig.show()'''),
md('''\
## The project's miner finds the same rules

`modules.rules.mine_rules` (the sparse engine used for training, `python -m modules rules`) counts itemsets
with sparse matrix products instead of building trees; on the same data and thresholds it returns mlxtend's
rules and numbers.'''),
code(r'''
from modules.rules import mine_rules

ours = mine_rules(tx, engine="sparse", min_support=MIN_SUPPORT, min_confidence=MIN_CONFIDENCE,
                  max_len=3).to_frame()
print(f"mlxtend: {len(rules):,} rules; modules.rules: {len(ours):,} rules")
assert len(ours) == len(rules), "the sparse miner and mlxtend disagree"
if len(rules):
    assert np.isclose(ours["lift"].max(), rules["lift"].max())'''),
    ])


def train_two_tower() -> nbformat.NotebookNode:
    return _nb([
md('''\
# 02 · Train the two-tower

The inductive two-tower (TensorFlow Recommenders) encodes a playlist from its seed tracks and its title, so
a new playlist is answered without retraining. This notebook holds out a challenge set in the ten official
categories, trains the two-tower on the rest while drawing its training curve epoch by epoch, saves it (with
its SavedModel), and compares it with the baselines on the same challenge set. The same run from the command
line: `python -m modules train-two-tower` and `python -m modules submit … / evaluate …`.

Parameters: `DATA_DIR` (MPD slices, generated with `PLAYLISTS` playlists when missing), `PER_CATEGORY`
challenge playlists per category, `TWO_TOWER` overrides of `TwoTowerConfig` fields, `BASELINES` (names from
`modules.methods`), `WORK_DIR` for the split and the results, `MODEL_DIR` for the trained two-tower. Paths
are relative to the repository root.'''),
code(SPLIT_PARAMETERS + r'''MODEL_DIR = "models/notebook-two-tower"
TWO_TOWER = {"epochs": 8}            # TwoTowerConfig overrides
BASELINES = ["popularity", "itemknn", "als"]''', tags=['parameters']),
code(SETUP),
code(DATA),
md('''\
## The challenge split

`split_mpd` holds out playlists in the ten categories (title only; title + first 1/5/10/25/100; first 5/10
without title; title + random 25/100) and keeps the rest for training, as `python -m modules challenge`
does.'''),
code(SPLIT),
md('''\
## Training, with a live curve

The two-tower logs one line per epoch (loss, and recall@500 / NDCG on validation playlists carved from the
training data, which drive early stopping). A logging handler redraws the chart from those lines as they
come.'''),
code(r'''
import re

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from modules.two_tower import TwoTowerRecommender


class LiveCurve(logging.Handler):
    """Redraws loss and validation recall@500 after every epoch the two-tower logs."""

    PATTERN = re.compile(r"epoch (\d+): loss ([\d.naninf]+).*?(?:recall@500 ([\d.]+) ndcg ([\d.]+))?$")

    def __init__(self):
        super().__init__(logging.INFO)
        self.rows = []
        self.chart = display(self.figure()._repr_mimebundle_(), raw=True, display_id=True)

    def figure(self):
        df = pd.DataFrame(self.rows, columns=["epoch", "loss", "recall@500", "ndcg"])
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        fig.add_trace(go.Scatter(x=df["epoch"], y=df["loss"], name="training loss"))
        fig.add_trace(go.Scatter(x=df["epoch"], y=df["recall@500"], name="validation recall@500"),
                      secondary_y=True)
        fig.update_layout(title="Two-tower training curve", xaxis_title="epoch", height=380)
        return fig

    def emit(self, record):
        m = self.PATTERN.search(record.getMessage())
        if m:
            self.rows.append([int(m[1]), float(m[2]), float(m[3] or "nan"), float(m[4] or "nan")])
            self.chart.update(self.figure()._repr_mimebundle_(), raw=True)  # redrawn in place


tt_log = logging.getLogger("modules.two_tower")
curve = LiveCurve()
tt_log.addHandler(curve)
tt_log.setLevel(logging.INFO)
try:
    two_tower = TwoTowerRecommender(TWO_TOWER, seed=SEED).fit(train_store)
finally:
    tt_log.removeHandler(curve)
two_tower.save(ROOT / MODEL_DIR)
print(f"{len(two_tower.curve_)} epochs, best epoch {two_tower.best_epoch_}, "
      f"{two_tower.fit_seconds_:.0f} s -> {ROOT / MODEL_DIR}")'''),
md('''\
The per-epoch record the model keeps (`curve_`, also in `two_tower/training_curve.json`):'''),
code(r'''
pd.json_normalize(two_tower.curve_).set_index("epoch").round(4)'''),
md('''\
## Against the baselines

Every method answers the same challenge playlists with 500 tracks and is scored like the challenge
(R-precision, NDCG, clicks; recall@500), overall and per category.'''),
code(r'''
import json

from modules.base import recommend_challenge
from modules.methods import make_method
from modules.metrics import evaluate

methods = {"two-tower": two_tower}
for name in BASELINES:
    methods[name] = make_method(name, seed=SEED).fit(train_store)
results = {}
for name, model in methods.items():
    rows = recommend_challenge(model, challenge, show_progress=False)
    results[name] = evaluate(rows, truth, artist_of=artist_of, seeds=seeds_of).summary()
(ROOT / WORK_DIR / "02_comparison.json").write_text(json.dumps(results, indent=1))
overall = pd.DataFrame({n: r["ALL"] for n, r in results.items()}).T
overall[["r_precision", "ndcg", "clicks", "recall"]].round(4)'''),
code(r'''
per_cat = pd.DataFrame([{"method": n, "category": c, **m} for n, r in results.items()
                        for c, m in r.items() if c != "ALL"])
fig = px.bar(per_cat, x="category", y="ndcg", color="method", barmode="group",
             title="NDCG per challenge category")
fig.show()
per_cat.pivot(index="category", columns="method", values="r_precision").round(4)'''),
    ])


def hybrid() -> nbformat.NotebookNode:
    return _nb([
md('''\
# 03 · Hybrid: fit, evaluate, export

The product model: two-tower candidates, association-rule and content signals (and ALS), joined by a fusion
model learned on validation playlists carved from the training data. `train_bundle` fits every part and
writes one bundle folder under `models/` — what `python -m modules train`, the Streamlit app and `python -m
modules serve` load. Then it is evaluated per challenge category against the two-tower alone, its
explanations are shown, and the export is checked.

Parameters: `DATA_DIR`/`PLAYLISTS`/`SEED`/`PER_CATEGORY`/`WORK_DIR` as in notebook 02 (the same values reuse
its split), `PARAMS` for `HybridRecommender` (e.g. `{"two_tower": {"epochs": 5}}`), `TWO_TOWER_BUNDLE` to
reuse the two-tower notebook 02 trained on the same split (`None`: train one), `MODEL_DIR` for the bundle.'''),
code(SPLIT_PARAMETERS + r'''MODEL_DIR = "models/notebook-world"
PARAMS = {"two_tower": {"epochs": 8}}  # HybridRecommender parameters
TWO_TOWER_BUNDLE = None   # e.g. "models/notebook-two-tower" from notebook 02''', tags=['parameters']),
code(SETUP),
code(DATA),
code(SPLIT),
md('''\
## Fit every part and write the bundle'''),
code(r'''
from modules.recommender import train_bundle

params = dict(PARAMS)
if TWO_TOWER_BUNDLE:
    params["two_tower_bundle"] = str(ROOT / TWO_TOWER_BUNDLE)
rec = train_bundle(split / "train", ROOT / MODEL_DIR, seed=SEED, params=params, show_progress=False)
m = rec.manifest
print(f"bundle {rec.path}: parts {', '.join(m['parts'])}; fusion {m['fusion']}; "
      f"{m['data']['playlists']:,} playlists, {m['data']['tracks']:,} tracks; {m['train_seconds']} s")'''),
md('''\
What the fusion chose, from the manifest's validation record (cross-fitted on the validation playlists, so
the numbers are honest):'''),
code(r'''
val = m["validation"]
print(f"{val.get('playlists')} validation playlists; fusion chosen: {val.get('chosen')}")
rows = {f"fusion: {k}": v for k, v in val.get("fusion", {}).items()}
rows["two-tower alone"] = val.get("two_tower_alone", {})
pd.DataFrame(rows).T.round(4)'''),
md('''\
## Evaluate per category

The held-out challenge playlists, answered by the hybrid and by its two-tower alone
(`mode="collaborative"`).'''),
code(r'''
import json

from modules.metrics import evaluate

playlists = challenge["playlists"]
hybrid_rows = {p["pid"]: f["track_uri"].tolist() for p, f in
               zip(playlists, rec.recommend_batch(playlists, k=500, show_progress=False))}
tt_rows = {p["pid"]: rec.recommend([t["track_uri"] for t in p["tracks"]], p.get("name"), 500,
                                   mode="collaborative", explain=False)["track_uri"].tolist()
           for p in playlists}
evaluation = {name: evaluate(rows, truth, artist_of=artist_of, seeds=seeds_of).summary()
              for name, rows in (("hybrid", hybrid_rows), ("two-tower", tt_rows))}
(ROOT / WORK_DIR / "03_evaluation.json").write_text(json.dumps(evaluation, indent=1))
table = pd.DataFrame(evaluation["hybrid"]).T[["count", "r_precision", "ndcg", "clicks", "recall"]]
table.round(4)'''),
code(r'''
per_cat = pd.DataFrame([{"model": n, "category": c, **v} for n, r in evaluation.items()
                        for c, v in r.items() if c != "ALL"])
fig = px.bar(per_cat.melt(id_vars=["model", "category"], value_vars=["r_precision", "ndcg"]),
             x="category", y="value", color="model", barmode="group", facet_row="variable",
             title="Hybrid vs two-tower alone, per challenge category", height=600)
fig.update_yaxes(matches=None)
fig.show()'''),
md('''\
## One playlist, explained'''),
code(r'''
example = next(p for p in playlists if p.get("name") and len(p["tracks"]) >= 5)
print(f"{example.get('name')!r} with {len(example['tracks'])} seed tracks")
rec.recommend([t["track_uri"] for t in example["tracks"]], example.get("name"), k=10)[
    ["rank", "track_name", "artist_name", "score", "explanation"]]'''),
md('''\
## The export

The bundle reloads to the same answers, and its two-tower SavedModel answers with plain TensorFlow (what
TensorFlow Serving runs). Serve the bundle with `python -m modules serve --model MODEL_DIR` (see
docs/serving.md).'''),
code(r'''
import tensorflow as tf

from modules.bundle import Bundle
from modules.recommender import Recommender

seeds = [t["track_uri"] for t in example["tracks"]]
again = Recommender.load(ROOT / MODEL_DIR)
assert again.recommend(seeds, example.get("name"), 50)["track_uri"].tolist() == \
    rec.recommend(seeds, example.get("name"), 50)["track_uri"].tolist()
serving = tf.saved_model.load(str(Bundle(ROOT / MODEL_DIR).saved_model))
out = serving.signatures["serving_default"](seed_track_uris=tf.constant([seeds]),
                                             title=tf.constant([example.get("name") or ""]))
print("SavedModel top 5:", [u.decode() for u in out["track_uris"].numpy()[0][:5]])
print("serve it: python -m modules serve --model", MODEL_DIR)'''),
    ])


NOTEBOOKS = {"01_explore_playlists": explore, "02_train_two_tower": train_two_tower,
             "03_hybrid_evaluate_export": hybrid}


def write_all(folder: Path = HERE) -> list[Path]:
    out = []
    for name, make in NOTEBOOKS.items():
        path = folder / f"{name}.ipynb"
        nb = make()
        nbformat.validate(nb)
        path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
        out.append(path)
    return out


def inject_parameters(nb: nbformat.NotebookNode, params: dict) -> nbformat.NotebookNode:
    """Insert an ``injected-parameters`` cell after the ``parameters`` cell (papermill's convention)."""
    idx = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), None)
    if idx is None:
        raise ValueError("the notebook has no cell tagged 'parameters'")
    known = {line.split("=")[0].strip() for line in nb.cells[idx].source.splitlines() if "=" in line}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; this notebook takes {sorted(known)}")
    src = "# Injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = new_code_cell(src)
    cell["id"] = "injected-parameters"
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(idx + 1, cell)
    return nb


def execute(path: str | Path, params: dict | None = None, *, cwd: str | Path | None = None,
            timeout: int | None = 3600, out: str | Path | None = None) -> nbformat.NotebookNode:
    """Run a notebook with nbclient (parameters injected); raises ``CellExecutionError`` on a failing cell.

    ``timeout`` is per cell, in seconds (``None``: no limit); training cells at full size take long.
    """
    from nbclient import NotebookClient

    path = Path(path)
    nb = inject_parameters(nbformat.read(path, as_version=4), params or {})
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd or path.parent)}}).execute()
    if out is not None:
        nbformat.write(nb, str(out))
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="write (or check, or execute) the training notebooks")
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed notebooks differ from the script")
    ap.add_argument("--run", choices=sorted(NOTEBOOKS), help="execute this notebook with nbclient")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a parameter for --run (VALUE is a Python literal, else a string); repeatable")
    ap.add_argument("--out", type=Path, help="where --run writes the executed notebook")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell for --run (default 3600)")
    args = ap.parse_args(argv)
    if args.run:
        params = {}
        for p in args.param:
            k, _, v = p.partition("=")
            try:
                params[k] = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                params[k] = v
        execute(HERE / f"{args.run}.ipynb", params, out=args.out, timeout=args.timeout)
        print(f"{args.run}: executed" + (f" -> {args.out}" if args.out else ""))
        return 0
    if args.check:
        stale = [n for n, make in NOTEBOOKS.items()
                 if (HERE / f"{n}.ipynb").read_text(encoding="utf-8") != nbformat.writes(make()) + "\n"]
        if stale:
            print(f"stale notebooks (run python -m notebooks.build_notebooks): {', '.join(stale)}", file=sys.stderr)
            return 1
        print("notebooks up to date")
        return 0
    for p in write_all():
        print(f"wrote {p.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
