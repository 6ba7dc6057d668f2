"""``bundle index``: add the nearest-neighbour index (``modules.ann``) to a bundle trained without it.

``train`` builds the index of the two-tower's candidate table and of ALS's item factors when they have
``modules.ann.MIN_ROWS`` rows or more. A bundle trained before (or with other settings) gets them here in a
minute instead of retraining: only the part's vectors are read, and only ``ann.npz`` is written beside them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from modules import ann
from modules.bundle import Bundle
from modules.errors import BundleError, MissingInputError

log = logging.getLogger(__name__)

PARTS = ("two_tower", "als")


def part_vectors(bundle: Bundle, part: str) -> np.ndarray:
    """The matrix the part's index covers, as the part holds it."""
    if part == "als":
        folder = bundle.als_dir
        if not (folder / "item_factors.npy").exists():
            raise MissingInputError(f"{bundle.path} has no ALS part ({folder / 'item_factors.npy'} is missing)")
        return np.load(folder / "item_factors.npy", allow_pickle=False)
    from modules.two_tower import TwoTowerRecommender

    tt = TwoTowerRecommender.load(bundle.path)
    return tt.candidate_embeddings_


def add_indexes(bundle_dir: str | Path, *, min_rows: int = ann.MIN_ROWS, nlist: int | None = None,
                nprobe: int | None = None, seed: int = 0, force: bool = False,
                parts: tuple[str, ...] = PARTS) -> dict[str, str]:
    """Build and write the index of each part of ``parts`` with ``min_rows`` rows or more; returns what was done
    per part. A part that has an index keeps it unless ``force`` (then it is rebuilt)."""
    bundle = Bundle(bundle_dir)
    if not bundle.manifest_file.exists():
        raise MissingInputError(f"{bundle.path} is not a bundle (no {bundle.manifest_file.name}); train one with "
                                "python -m modules train")
    done = {}
    for part in parts:
        folder = bundle.part(part)
        if not folder.exists():
            done[part] = "no such part"
            continue
        existing = folder / ann.ANN_FILE
        if existing.exists():
            if not force:
                done[part] = "has an index (--force rebuilds it)"
                continue
            existing.unlink()  # before loading: the part loads without it, scanning exactly
        matrix = part_vectors(bundle, part)
        index = ann.ensure_index(matrix, None, min_rows, nlist=nlist, nprobe=nprobe, seed=seed)
        if index is None:
            done[part] = f"{len(matrix):,} rows < {min_rows:,}: scanned exactly, no index"
            continue
        index.save(folder)
        done[part] = f"index of {len(matrix):,} rows: {index.nlist} lists, {index.nprobe} probed"
        log.info("%s: %s", part, done[part])
    if not done:
        raise BundleError(f"no part of {bundle.path} to index")
    return done
