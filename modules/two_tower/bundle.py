"""The two-tower's bundle folder: what ``save`` writes and ``load`` reads, and the checks on reading it.

Layout (``BUNDLE_DIR/two_tower/``)::

    config.json           model configuration, data fingerprint, sizes, versions
    vocab/                tracks.txt, artists.txt, albums.txt, words.txt, ngrams.txt (one token a line)
    items.parquet         every known track: uri, candidate flag, track/artist/album index, audio features
    training_curve.json   per epoch: loss, examples/s, validation metrics
    checkpoints/          the latest epoch's model + optimizer state, to resume an interrupted run (the
                          CLI removes it after a finished run unless --keep-checkpoints)
    saved_model/          the SavedModel of ``export.py``, loadable with plain TensorFlow; its variables are
                          also what ``load`` reads, with NumPy (``checkpoint.py``): the query tower (embedding
                          tables as float16) and the candidate table (float16), written once

A bundle is JSON, text, Parquet and TensorFlow checkpoints: nothing in it can run code when read.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import modules
from modules.bundle import PARQUET_COMPRESSION, PART_ENTRIES, Bundle
from modules.errors import BundleError
from modules.two_tower.config import TwoTowerConfig
from modules.two_tower.items import ItemTable

BUNDLE_SUBDIR = PART_ENTRIES["two_tower"].rstrip("/")  # the layout is modules.bundle's
# /2: no weights/ folder (the Python model reads the SavedModel's variables), float16 tables
BUNDLE_FORMAT = "two-tower/2"
REQUIRED_FILES = ("config.json", "items.parquet", "vocab/tracks.txt", "vocab/artists.txt", "vocab/albums.txt",
                  "vocab/words.txt", "vocab/ngrams.txt", "saved_model/saved_model.pb",
                  "saved_model/variables/variables.index")
VARIABLES = "saved_model/variables/variables"  # the SavedModel's checkpoint, without its suffixes
VOCABULARIES = ("tracks", "artists", "albums", "words", "ngrams")


@dataclass
class BundleContents:
    """What a bundle's files hold, before a model is built from them."""

    root: Path
    meta: dict  # config.json
    config: TwoTowerConfig
    vocab: dict[str, list[str]]  # VOCABULARIES -> tokens
    items: ItemTable
    curve: list[dict]


def write_bundle(rec, bundle_dir: str | Path) -> Path:
    """Write a fitted ``TwoTowerRecommender`` to ``bundle_dir/two_tower/``; returns that folder."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    root = Bundle(bundle_dir).two_tower_dir
    (root / "vocab").mkdir(parents=True, exist_ok=True)
    it = rec.items_
    for name, vocab in (("tracks", it.track_vocab), ("artists", it.artist_vocab), ("albums", it.album_vocab),
                        ("words", rec.query_encoder_.tokens.word_vocab),
                        ("ngrams", rec.query_encoder_.tokens.ngram_vocab)):
        (root / "vocab" / f"{name}.txt").write_text("".join(f"{v}\n" for v in vocab), encoding="utf-8")
    it.to_frame().to_parquet(root / "items.parquet", index=False, compression=PARQUET_COMPRESSION)
    (root / "training_curve.json").write_text(json.dumps(
        {"best_epoch": rec.best_epoch_, "epochs": rec.curve_}, indent=1))
    shutil.rmtree(root / "weights", ignore_errors=True)  # a two-tower/1 bundle's copy of the tables
    rec.export_saved_model(Bundle(bundle_dir).saved_model)
    meta = {"format": BUNDLE_FORMAT, "config": rec.config_.to_dict(), "seed": int(rec.seed),
            "fingerprint": rec.fingerprint_, "feature_columns": it.feature_columns,
            "feature_mean": it.feature_mean.tolist(), "feature_std": it.feature_std.tolist(),
            "fallback": rec.fallback_[:2000], "n_items": int(len(it.uris)),
            "n_candidates": int(it.n_candidates), "best_epoch": rec.best_epoch_,
            "optimizer": getattr(rec, "optimizer_", None),
            "fit_seconds": getattr(rec, "fit_seconds_", None),
            "versions": {"modules": modules.__version__, "tensorflow": tf.__version__,
                         "tensorflow_recommenders": tfrs.__version__}}
    (root / "config.json").write_text(json.dumps(meta, indent=1))
    return root


def read_bundle(bundle_dir: str | Path) -> BundleContents:
    """Read ``bundle_dir`` (the bundle or its ``two_tower/`` folder), all but the weights.

    Raises
    ------
    BundleError
        When files are missing (they are named) or the bundle was written by another format version.
    """
    root = Path(bundle_dir)
    if not root.exists():
        raise BundleError(f"two-tower bundle {root} does not exist; train one with: python -m modules "
                          f"train-two-tower --mpd MPD_DIR --out {root}")
    if (root / BUNDLE_SUBDIR).is_dir():
        root = root / BUNDLE_SUBDIR
    missing = [f for f in REQUIRED_FILES if not (root / f).exists()]
    if not missing and not any((root / "saved_model" / "variables").glob("variables.data-*")):
        missing.append(VARIABLES + ".data-*")
    if missing:
        raise BundleError(f"two-tower bundle {root} is incomplete: missing {', '.join(missing)}. Re-train "
                          "with: python -m modules train-two-tower --mpd MPD_DIR --out BUNDLE_DIR")
    try:
        meta = json.loads((root / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"two-tower bundle {root}: config.json is not valid JSON ({err}).") from None
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"two-tower bundle {root} has format {meta.get('format')!r}; this code reads "
                          f"{BUNDLE_FORMAT!r}. Re-train it.")
    cfg = TwoTowerConfig.from_saved(meta["config"], f"two-tower bundle {root}")
    vocab = {n: [line for line in (root / "vocab" / f"{n}.txt").read_text(encoding="utf-8").split("\n")[:-1]]
             for n in VOCABULARIES}
    items = ItemTable.from_frame(pd.read_parquet(root / "items.parquet"), meta, vocab)
    curve = json.loads((root / "training_curve.json").read_text())["epochs"] \
        if (root / "training_curve.json").exists() else []
    return BundleContents(root=root, meta=meta, config=cfg, vocab=vocab, items=items, curve=curve)
