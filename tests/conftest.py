"""Shared fixtures: a small generated world, its store and a challenge split (built once per session)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest

from modules.catalog import read_catalog

SMALL_WORLD = 400


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
