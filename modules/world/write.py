"""Write a world to disk: slice files of 1,000 playlists, in parallel if asked, the same bytes either way."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tqdm import tqdm

from modules.catalog import read_catalog
from modules.errors import InputError
from modules.mpd import SLICE_NAME, slice_name
from modules.parallel import ordered_map
from modules.world.catalog_shape import SLICE_SIZE, PlaylistWorld
from modules.world.mpd_shape import MPDWorld

log = logging.getLogger(__name__)

SHAPES = {"catalog": PlaylistWorld, "mpd": MPDWorld}

_WORKER_WORLD: PlaylistWorld | None = None


def _write_one(args) -> tuple[str, int]:
    out, first, count = args
    data = _WORKER_WORLD.slice_bytes(first, count)
    path = Path(out) / slice_name(first, first + count - 1)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path.name, len(data)


def write_world(out: str | Path, playlists: int, *, seed: int = 0, catalog=None, jobs: int = 1,
                show_progress: bool = True, shape: str = "catalog") -> dict:
    """Generate ``playlists`` playlists into ``out`` as ``mpd.slice.<a>-<b>.json`` files of 1,000 each.

    ``shape`` is ``"catalog"`` (the world over the shipped catalog, ``PlaylistWorld``) or ``"mpd"`` (that world
    plus a synthetic long tail, a chart of hits and themes, shaped like the MPD: ``MPDWorld``). Existing slice
    files in ``out`` are removed first, so a directory never mixes two worlds. Memory stays bounded whatever
    ``playlists`` is: each slice is generated, written and dropped.
    Returns a summary (files, bytes, seconds).
    """
    global _WORKER_WORLD
    if playlists < 1:
        raise InputError(f"--playlists must be at least 1 (got {playlists}).")
    if jobs < 1:
        raise InputError(f"--jobs must be at least 1 (got {jobs}).")
    if shape not in SHAPES:
        raise InputError(f"--shape must be one of {sorted(SHAPES)} (got {shape!r}).")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stale = [p for p in out.iterdir() if SLICE_NAME.match(p.name)]
    if stale:
        log.info("removing %d slice files of an earlier world in %s", len(stale), out)
        for p in stale:
            p.unlink()
    cat = read_catalog(catalog) if catalog is None or isinstance(catalog, (str, Path)) else catalog
    _WORKER_WORLD = SHAPES[shape](cat, seed=seed)
    tasks = [(str(out), a, min(SLICE_SIZE, playlists - a)) for a in range(0, playlists, SLICE_SIZE)]
    total = 0
    bar = tqdm(total=playlists, unit="playlist", desc="world", disable=not show_progress)
    try:
        for (_, size), (_, _, count) in zip(ordered_map(_write_one, [(t,) for t in tasks], jobs), tasks, strict=True):
            total += size
            bar.update(count)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    return {"files": len(tasks), "playlists": playlists, "bytes": total, "seconds": seconds, "shape": shape}
