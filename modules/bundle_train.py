"""Training a model bundle: ``train_bundle`` fits every part on a playlist collection and writes one folder.

    rec = train_bundle("data/world", "models/world")        # ingest, two-tower, rules, content, ALS, fusion

Everything is checked before the (long) training starts, and the bundle is written atomically, so a failed run
leaves the previous bundle intact. ``modules.bundle.Bundle`` names the files; ``Recommender.load`` reads them.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Mapping
from contextlib import contextmanager
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
                 params: Mapping | None = None, show_progress: bool = True, engine: str = "local", spark=None):
    """Train every part on the playlists at ``mpd`` (MPD slices or a store) and write a bundle to ``out``.

    Everything is checked before the training starts: ``out`` (new, empty or a bundle, apart from the inputs:
    ``OutputError``), the parameters, the features and the playlists (at least one). The bundle is written to a
    temporary sibling and renamed into place, so a failed run leaves the previous bundle intact. Returns the new
    bundle loaded (a ``Recommender``).

    ``engine="spark"`` runs the data-heavy parts on Spark (``spark``: a session or a master, default ``local[*]``):
    slices are ingested by Spark, the rules mined by the Spark miner (the sparse miner's rules) and the ALS part's
    factors fitted by MLlib (``spark_params``); the two-tower, content and fusion train here as always.
    """
    from modules.hybrid import HybridRecommender
    from modules.recommender import Recommender

    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r}).")
    if engine != "spark" and spark is not None:
        raise InputError("a Spark session or master is for engine='spark'; drop it or ask for that engine.")
    t0 = time.perf_counter()
    out = check_output_folder(out, BUNDLE_KIND, inputs=[mpd, features if isinstance(features, (str, Path)) else None])
    hp = dict(params or {})
    if epochs is not None:
        hp["two_tower"] = {**hp.get("two_tower", {}), "epochs": int(epochs)}
    if engine == "spark":
        hp = spark_params(hp)
    hybrid = checked_hybrid(HybridRecommender, hp, seed=seed, show_progress=show_progress)
    _fit_and_write(hybrid, mpd, out, features, engine, spark, show_progress, t0)
    del hybrid
    # the fitted parts and the store are gone before the bundle is loaded: at 1M playlists they held ~20 GiB,
    # and a bundle loaded beside them took train to 23 GiB and the OOM killer (docs/scale.md)
    gc.collect()
    log.info("bundle written to %s in %.0f s", out, time.perf_counter() - t0)
    return Recommender.load(out)


def _fit_and_write(hybrid, mpd, out: Path, features, engine: str, spark, show_progress: bool, t0: float) -> None:
    """Fit ``hybrid`` on the playlists at ``mpd`` and write the bundle to ``out`` (atomically). The store and
    the features live only in this call, so they are released when it returns."""
    from modules.store import open_store

    frame = read_features(features)
    with _engine_session(engine, spark) as session:
        if session is None:
            store = open_store(mpd, show_progress=show_progress)
        else:
            from modules.spark.ingest import open_store_spark

            store = open_store_spark(mpd, session)
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


ENGINES = ("local", "spark")


def spark_params(hp: dict) -> dict:
    """Hybrid parameters ``hp`` with the rules mined by the Spark miner and the ALS part fitted by MLlib (an
    ``engine`` the user gave in ``rules`` or ``als`` wins); the manifest's config records them."""
    out = dict(hp)
    for part in ("rules", "als"):
        given = out.get(part)
        out[part] = {"engine": "spark", **given} if isinstance(given, Mapping) else given or {"engine": "spark"}
    return out


@contextmanager
def _engine_session(engine: str, spark):
    """No session for the local engine; for Spark the given session, or one on the given master (``local[*]``
    by default) for the run, stopped after unless it was running."""
    if engine != "spark":
        yield None
    elif spark is not None and not isinstance(spark, str):
        yield spark
    else:
        from modules.spark.session import DEFAULT_MASTER, session_for

        with session_for(spark or DEFAULT_MASTER) as session:
            yield session


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
