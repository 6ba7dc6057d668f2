"""A hybrid on disk: its parts and its fusion in a bundle folder, with no pickle anywhere.

Each part writes itself through its source module (``two_tower/``, ``rules.parquet``, ``content/``, ``als/``); the
hybrid's own state goes to ``fusion/`` (``FUSION_FOLDER_FORMAT``): ``state.json`` (parameters, feature names,
fusion kind and its JSON description, blend weights, validation metrics), ``fusion.npz`` (the fusion's numbers),
``tracks.parquet`` (per training track: URI, artist and album codes, log popularity) and ``fallback.parquet``
(the popularity order). Loading reads JSON, Parquet, ``.npz`` arrays (``allow_pickle=False``) and the two-tower's
TensorFlow checkpoint; nothing it reads can run code. docs/bundle.md lists every file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import orjson

from modules.bundle import PARQUET_COMPRESSION, PART_ENTRIES, Bundle
from modules.errors import HybridError
from modules.hybrid.fusion import fusion_from_arrays, fusion_to_arrays, n_features
from modules.hybrid.sources.als import load_als, save_als
from modules.hybrid.sources.content import load_content, save_content
from modules.hybrid.sources.rules import load_rules, save_rules
from modules.hybrid.sources.two_tower import load_two_tower, save_two_tower
from modules.uri_pool import UriPool

FUSION_FOLDER_FORMAT = "hybrid-fusion/1"  # the bundle's fusion/ folder (save_fusion)


def save(h, path: str | Path) -> dict:
    """Write the parts and the fusion of ``h`` into the bundle folder ``path``; returns part → file written."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    written = {"two_tower": save_two_tower(h.two_tower_, path)}
    if h.rules_ is not None:
        written["rules"] = save_rules(h.rules_, path)
    if h.content_ is not None:
        written["content"] = save_content(h.content_, path)
    if getattr(h, "als_", None) is not None:
        written["als"] = save_als(h.als_, path)
    save_fusion(h, Bundle(path).fusion_dir)
    written["fusion"] = PART_ENTRIES["fusion"]
    return written


def save_fusion(h, path: str | Path) -> Path:
    """Write the fusion model and the hybrid's own tables to folder ``path`` (the files in this module's
    docstring)."""
    import pandas as pd

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    spec, arrays = (None, {}) if h.fusion_ is None else fusion_to_arrays(h.fusion_)
    blend = getattr(h, "blend_", None)
    params = {k: v for k, v in h.get_params().items() if k != "features"}
    state = {"format": FUSION_FOLDER_FORMAT, "params": params,
             "parts": list(h.parts_), "feature_names": list(h.feature_names_),
             "fusion_kind": h.fusion_kind_, "fusion": spec,
             "blend": None if blend is None else [[int(b), float(a), float(c)] for b, (a, c) in blend.items()],
             "validation": h.validation_, "fit_seconds": getattr(h, "fit_seconds_", None),
             "popular": [str(u) for u in h.popular_]}
    (path / "state.json").write_bytes(orjson.dumps(state, default=_json_default,
                                                   option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    np.savez(path / "fusion.npz", **arrays)
    pd.DataFrame({"track_uri": np.asarray(h.track_uris_, dtype=object),
                  "artist_code": np.asarray(h.artist_code_, np.int64),
                  "album_code": np.asarray(h.album_code_, np.int64),
                  "pop_log": np.asarray(h.pop_log_, np.float32)}).to_parquet(path / "tracks.parquet", index=False,
                                                                                compression=PARQUET_COMPRESSION)
    pd.DataFrame({"track_uri": [str(u) for u in h.fallback_]}).to_parquet(
        path / "fallback.parquet", index=False, compression=PARQUET_COMPRESSION)
    return path


def load(cls, path: str | Path):
    """A ``cls`` (``HybridRecommender``) from a bundle folder written by ``save``."""
    path = Path(path)
    h = load_fusion(cls, Bundle(path).fusion_dir)
    # one copy of each track URI string across the parts, shared as each part loads (so the copies never pile up)
    pool = UriPool(h.track_uris_)
    h.track_uris_ = pool.uris
    h.fallback_ = pool.share(h.fallback_).tolist()
    h.two_tower_ = shared(pool, load_two_tower(path))
    h.rules_ = shared(pool, load_rules(path, h.rules)) if "rules" in h.parts_ else None
    h.content_ = shared(pool, load_content(path)) if "content" in h.parts_ else None
    h.als_ = shared(pool, load_als(path)) if "als" in h.parts_ else None
    h.fitted_ = True
    return h


def release_arrow_memory() -> None:
    """Give back to the system what Arrow's allocator (mimalloc) kept of the Parquet reads: it holds freed
    buffers for reuse, ≈ 250 MiB after reading one column of 2.28 M URIs, and a serving process reads no more."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def shared(pool: UriPool, part):
    """The hybrid's ``part`` holding the pool's track URI strings instead of its own copies (its ``share_uris``,
    ``modules.uri_pool``): equal strings, so no answer changes; at 1M playlists each copy was ≈ 190 MiB. Arrow's
    freed buffers go back to the system too."""
    part.share_uris(pool)
    release_arrow_memory()
    return part


def load_fusion(cls, path: Path):
    """A ``cls`` with the parameters, fusion and tables from the folder ``save_fusion`` wrote (no parts yet)."""
    import pandas as pd

    if not (path / "state.json").exists():
        raise FileNotFoundError(f"no {path / 'state.json'}")
    state = orjson.loads((path / "state.json").read_bytes())
    if state.get("format") != FUSION_FOLDER_FORMAT:
        raise HybridError(f"{path} holds fusion format {state.get('format')!r}; this version reads "
                          f"{FUSION_FOLDER_FORMAT!r}. Retrain the bundle with python -m modules train.")
    params = dict(state["params"])
    params["parts"] = tuple(params["parts"])
    h = cls(**params)
    h._check_pool_rule()  # serving parameters: a hand-edited config fails here, not at the first request
    h.parts_ = tuple(state["parts"])
    h.feature_names_ = tuple(state["feature_names"])
    h.fusion_kind_ = state["fusion_kind"]
    try:
        with np.load(path / "fusion.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as err:  # e.g. an array of Python objects, which only the pickle loader reads
        raise HybridError(f"{path / 'fusion.npz'} holds more than numbers ({err}); it was not written by this "
                          "package: retrain the bundle.") from None
    h.fusion_ = None if state["fusion"] is None else fusion_from_arrays(state["fusion"], arrays)
    width = n_features(state["fusion"])
    if width is not None and width != len(h.feature_names_):
        raise HybridError(f"{path}: the fusion reads {width} features but state.json names "
                          f"{len(h.feature_names_)}; the folder is damaged: retrain or copy the bundle again.")
    h.blend_ = None if state["blend"] is None else {int(b): (float(a), float(c)) for b, a, c in state["blend"]}
    h.validation_ = state["validation"]
    h.fit_seconds_ = state["fit_seconds"]
    tracks = pd.read_parquet(path / "tracks.parquet")
    h.track_uris_ = tracks["track_uri"].to_numpy(dtype=object)
    h.artist_code_ = tracks["artist_code"].to_numpy(np.int64)
    h.album_code_ = tracks["album_code"].to_numpy(np.int64)
    h.pop_log_ = tracks["pop_log"].to_numpy(np.float32)
    h.popular_ = np.array(state["popular"], dtype=str)
    h.fallback_ = [str(u) for u in pd.read_parquet(path / "fallback.parquet")["track_uri"]]
    h._sources_ = None
    return h


def _json_default(value):
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to state.json")
