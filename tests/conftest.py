"""Shared fixtures: a small generated world, its store and a challenge split (built once per session)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest

import modules
from modules.catalog import read_catalog

ROOT = Path(__file__).resolve().parents[1]

# `modules` is installed editable (`make venv`); a venv shared with another checkout would test that one's code
if Path(modules.__file__).resolve().parent != ROOT / "modules":
    raise pytest.UsageError(f"tests in {ROOT} imported modules from {Path(modules.__file__).parent}: run them from "
                            f"the repository root with `.venv/bin/python -m pytest`, or `make test`")

SMALL_WORLD = 400

# A small, fast hybrid configuration: shared by the bundle, app and service tests.
TINY_TT = {"embedding_dim": 16, "hidden_dim": 32, "epochs": 2, "batch_size": 64, "word_vocab_size": 500,
           "ngram_vocab_size": 1000, "examples_per_track": 0.3, "k": 50}
TINY_PARAMS = {"two_tower": TINY_TT, "validation_per_category": 2, "fusion_cuts": 2, "n_candidates": 300}


@pytest.fixture(scope="session")
def catalog():
    return read_catalog()


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory, catalog):
    from modules.world import write_world

    out = tmp_path_factory.mktemp("world")
    write_world(out, SMALL_WORLD, seed=0, catalog=catalog, show_progress=False)
    return out


@pytest.fixture(scope="session")
def store(tmp_path_factory, world_dir):
    from modules.store import PlaylistStore, ingest

    out = tmp_path_factory.mktemp("store") / "store"
    ingest(world_dir, out, show_progress=False)
    return PlaylistStore(out)


@pytest.fixture(scope="session")
def split_dir(tmp_path_factory, world_dir):
    from modules.challenge import split_mpd

    out = tmp_path_factory.mktemp("split") / "split"
    split_mpd(world_dir, out, per_category=5, seed=0)
    return out


@pytest.fixture(scope="session")
def train_store(tmp_path_factory, split_dir):
    from modules.store import PlaylistStore, ingest

    out = tmp_path_factory.mktemp("train_store") / "store"
    ingest(split_dir / "train", out, show_progress=False)
    return PlaylistStore(out)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, split_dir):
    """A trained model bundle on the small world's training split (read-only: copy it before changing it)."""
    from modules.recommender import train_bundle

    out = tmp_path_factory.mktemp("bundle") / "bundle"
    train_bundle(split_dir / "train", out, seed=0, params=TINY_PARAMS, show_progress=False)
    return out
