"""Training a model bundle: ``train_bundle`` fits every part on a playlist collection and writes one folder.

    rec = train_bundle("data/world", "models/world")        # ingest, two-tower, rules, content, ALS, fusion

Everything is checked before the (long) training starts, and the bundle is written atomically, so a failed run
leaves the previous bundle intact. ``modules.bundle.Bundle`` names the files; ``Recommender.load`` reads them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import orjson
import pandas as pd

from modules.atomic import atomic_directory, check_output_folder
from modules.bundle import BUNDLE_FORMAT, BUNDLE_KIND, PARQUET_COMPRESSION, Bundle, package_versions, rules_evidence
from modules.errors import InputError

log = logging.getLogger(__name__)


def read_features(source) -> pd.DataFrame | None:
    """Audio features for training from a feature store (``*.sqlite``), a catalog file, or ``None`` (shipped)."""
    if source is None or isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if path.suffix in (".sqlite", ".db"):
        from modules.features import FeatureStore

        frame = FeatureStore(path).read_all()
        return frame.assign(artists=frame["artists"].fillna(frame["artist_name"]).fillna(""))
    from modules.catalog import read_catalog

    return read_catalog(path)


def _json_safe(value):
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY))


def train_bundle(mpd, out: str | Path, *, features=None, seed: int = 0, epochs: int | None = None,
                 params: Mapping | None = None, show_progress: bool = True):
    """Train every part on the playlists at ``mpd`` (MPD slices or a store) and write a bundle to ``out``.

    Everything is checked before the training starts: ``out`` (new, empty or a bundle, apart from the inputs:
    ``OutputError``), the parameters, the features and the playlists (at least one). The bundle is written to a
    temporary sibling and renamed into place, so a failed run leaves the previous bundle intact. Returns the new
    bundle loaded (a ``Recommender``).
    """
    from modules.hybrid import HybridRecommender
    from modules.recommender import Recommender
    from modules.store import open_store

    t0 = time.perf_counter()
    out = check_output_folder(out, BUNDLE_KIND, inputs=[mpd, features if isinstance(features, (str, Path)) else None])
    hp = dict(params or {})
    if epochs is not None:
        hp["two_tower"] = {**hp.get("two_tower", {}), "epochs": int(epochs)}
    hybrid = checked_hybrid(HybridRecommender, hp, seed=seed, show_progress=show_progress)
    frame = read_features(features)
    store = open_store(mpd, show_progress=show_progress)
    hybrid.features = frame
    hybrid.fit(store)
    with atomic_directory(out) as tmp:
        bundle = Bundle(tmp)
        parts = hybrid.save(tmp)
        tr = store.tracks
        tr[["track_uri", "track_name", "artist_name", "album_name", "artist_uri", "album_uri", "count"]].to_parquet(
            bundle.tracks_file, index=False, compression=PARQUET_COMPRESSION)
        manifest = {
            "format": BUNDLE_FORMAT,
            "versions": package_versions(),
            "data": {"source": str(mpd), "fingerprint": store.fingerprint,
                     "playlists": int(len(store.playlists)), "tracks": int(len(tr)),
                     "features": "shipped catalog" if features is None else str(features)},
            "config": _json_safe({k: v for k, v in hybrid.get_params().items() if k not in ("features",
                                                                                           "show_progress")}),
            "parts": parts,
            "validation": _json_safe(hybrid.validation_),
            "fusion": hybrid.fusion_kind_,
            "rules_evidence": _json_safe(rules_evidence(hybrid)),
            "content_blend": _json_safe(getattr(hybrid, "content_tuning_", None)),
            "train_seconds": round(time.perf_counter() - t0, 1),
        }
        bundle.write_manifest(manifest)
    log.info("bundle written to %s in %.0f s", out, time.perf_counter() - t0)
    return Recommender.load(out)


def checked_hybrid(cls, hp: dict, **fixed):
    """An unfitted hybrid with parameters ``hp`` whose names and values are checked now, before any data is read
    (``InputError`` / ``HybridError`` name the parameter); the two-tower's config is checked too."""
    import inspect

    known = set(inspect.signature(cls).parameters) - set(fixed) - {"features"}
    unknown = sorted(set(hp) - known)
    if unknown:
        raise InputError(f"unknown hybrid parameters {unknown}; known: {', '.join(sorted(known))}.")
    hybrid = cls(**fixed, **hp)
    hybrid._check_params()
    from modules.hybrid.sources.rules import check_rule_params

    check_rule_params(hp.get("rules"))
    tt = hp.get("two_tower")
    if tt is not None and not isinstance(tt, Mapping):
        raise InputError(f"the 'two_tower' parameter must be an object of two-tower config fields, got {tt!r}.")
    if tt and "config" not in tt:
        from modules.two_tower import TwoTowerConfig

        try:
            TwoTowerConfig.from_dict({k: v for k, v in tt.items()
                                      if k not in ("features", "seed", "checkpoint_dir", "show_progress")})
        except (TypeError, ValueError) as err:  # from_dict only checks the given fields
            raise InputError(f"two_tower parameters: {err}") from None
    return hybrid
