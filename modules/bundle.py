"""The model bundle's folder: where every part lives, and its manifest.

A bundle is one folder (docs/bundle.md lists every file)::

    manifest.json     format, package versions, data fingerprint, configuration, validation metrics, parts,
                      the rules' evidence filter and its tuning (``rules_evidence``)
    tracks.parquet    every training track: uri, name, artist, album, playlist count (for display and search)
    two_tower/        the two-tower (with its SavedModel for serving without project code)
    rules.parquet     association rules
    content/          the content model
    als/              implicit's ALS: item factors, training matrix, track and playlist maps
    fusion/           the fusion model as arrays + JSON, and the feature tables

``Bundle`` is the one place that knows these names, so the trainer, the loaders, the converter, the service
and the app ask it for a path instead of joining strings of their own::

    bundle = Bundle("models/world")
    bundle.saved_model          # models/world/two_tower/saved_model
    manifest = bundle.check()   # the checked manifest (BundleError names what is missing or stale)
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson

from modules import __version__
from modules.atomic import FolderKind
from modules.errors import BundleError

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "playlist-bundle/2"
PICKLE_FORMAT = "playlist-bundle/1"  # the previous format: fusion.joblib and als.joblib were pickles
MANIFEST = "manifest.json"
BUNDLE_KIND = FolderKind("model bundle", MANIFEST, "playlist-bundle/")
TRACKS = "tracks.parquet"
# how every Parquet file of a bundle is compressed: zstd makes the URI and rule columns a third smaller than
# pandas' default (snappy) and reads as fast; any Parquet reader reads it, and older snappy files load the same
PARQUET_COMPRESSION = "zstd"
# each part's entry in the manifest's "parts" (a trailing "/" marks a folder), relative to the bundle
PART_ENTRIES = {"two_tower": "two_tower/", "rules": "rules.parquet", "content": "content/", "als": "als/",
                "fusion": "fusion/"}
# the previous format's pickles, by part (read only by ``modules.bundle_convert``, with the user's consent)
PICKLE_ENTRIES = {"fusion": "fusion.joblib", "als": "als.joblib"}
# packages whose version the bundle's parts were trained with (a difference is worth a warning)
CHECKED_PACKAGES = ("tensorflow", "tensorflow_recommenders", "sklearn", "numpy", "pandas", "mlxtend")
DISTRIBUTIONS = {"tensorflow_recommenders": "tensorflow-recommenders", "sklearn": "scikit-learn"}  # pip's names


def rules_evidence(hybrid) -> dict | None:
    """The manifest's ``rules_evidence``: the evidence filter of the bundle's rules and, when it was chosen on
    validation, the tuning's grid and choice (``modules.rules.tuning``); ``None`` without rules."""
    rules = getattr(hybrid, "rules_", None)
    return None if rules is None else rules.rules.meta.get("evidence")


def package_versions() -> dict[str, str]:
    """This package's version and those of ``CHECKED_PACKAGES`` (``"missing"`` when one is not installed).

    A package already imported gives its ``__version__``; one not imported is not imported for this (loading a
    bundle to recommend does not import TensorFlow): its installed distribution's version is read instead
    (``importlib.metadata``; the same but for TensorFlow Recommenders' leading "v", which ``Bundle.check``
    ignores)."""
    import importlib
    import importlib.metadata
    import sys

    out = {"modules": __version__}
    for name in CHECKED_PACKAGES:
        try:
            if name in sys.modules:
                out[name] = sys.modules[name].__version__
            else:
                out[name] = importlib.metadata.version(DISTRIBUTIONS.get(name, name))
        except Exception:  # pragma: no cover - a package that is not installed
            try:
                out[name] = importlib.import_module(name).__version__
            except Exception:
                out[name] = "missing"
    return out


class Bundle:
    """A bundle folder (which need not exist yet): the path of each of its parts, and its manifest.

    Parameters
    ----------
    path : str or Path
        The bundle folder.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- where each part lives -----------------------------------------------------------------------------
    @property
    def manifest_file(self) -> Path:
        return self.path / MANIFEST

    @property
    def tracks_file(self) -> Path:
        """``tracks.parquet``: the training tracks with their names (output and search)."""
        return self.path / TRACKS

    @property
    def two_tower_dir(self) -> Path:
        return self.part("two_tower")

    @property
    def saved_model(self) -> Path:
        """The two-tower's TensorFlow SavedModel (``serving_default``), what ``:predict`` serves."""
        return self.two_tower_dir / "saved_model"

    @property
    def training_curve(self) -> Path:
        """The two-tower's per-epoch record (loss, validation metrics)."""
        return self.two_tower_dir / "training_curve.json"

    @property
    def checkpoints(self) -> Path:
        """Where ``train-two-tower`` keeps its checkpoints while it runs (to resume an interrupted training)."""
        return self.two_tower_dir / "checkpoints"

    @property
    def rules_file(self) -> Path:
        return self.part("rules")

    @property
    def content_dir(self) -> Path:
        return self.part("content")

    @property
    def als_dir(self) -> Path:
        return self.part("als")

    @property
    def fusion_dir(self) -> Path:
        return self.part("fusion")

    def part(self, name: str) -> Path:
        """The path of part ``name`` (``"two_tower"``, ``"rules"``, ``"content"``, ``"als"``, ``"fusion"``)."""
        return self.path / self.part_entry(name).rstrip("/")

    @staticmethod
    def part_entry(name: str) -> str:
        """Part ``name`` as the manifest's ``parts`` records it (``"content/"``, ``"rules.parquet"``)."""
        try:
            return PART_ENTRIES[name]
        except KeyError:
            raise ValueError(f"unknown bundle part {name!r}; the parts are {', '.join(PART_ENTRIES)}") from None

    def pickle_file(self, name: str) -> Path:
        """The previous format's pickle of part ``name`` (``"fusion"`` or ``"als"``)."""
        return self.path / PICKLE_ENTRIES[name]

    # -- the manifest --------------------------------------------------------------------------------------
    def read_manifest(self) -> dict:
        """``manifest.json`` as it is, unchecked; ``BundleError`` when there is none."""
        if not self.manifest_file.exists():
            hint = "" if self.path.exists() else " (the folder does not exist)"
            raise BundleError(f"{self.path} is not a model bundle: no {MANIFEST}{hint}. Train one with: "
                              f"python -m modules train --mpd DATA_DIR --out {self.path}")
        return orjson.loads(self.manifest_file.read_bytes())

    def write_manifest(self, manifest: dict) -> Path:
        """Write ``manifest.json`` (indented JSON); returns its path."""
        self.manifest_file.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        return self.manifest_file

    def check(self) -> dict:
        """The checked manifest: ``BundleError`` for another format or missing files (saying what to do), a
        warning for stale package versions. What ``Recommender.load`` checks before loading the parts."""
        manifest = self.read_manifest()
        path = self.path
        if manifest.get("format") == PICKLE_FORMAT:
            raise BundleError(
                f"{path} is a {PICKLE_FORMAT!r} bundle: its fusion.joblib and als.joblib are pickles, and loading a "
                "pickle runs whatever code it holds, so this version does not load them. If you trust where the "
                "bundle came from (you trained it, or its source is yours), convert it once to the "
                f"{BUNDLE_FORMAT!r} format, which holds no code: python -m modules bundle convert {path} --out "
                f"NEW_DIR --trust-pickles. Otherwise retrain it: python -m modules train --mpd DATA_DIR --out "
                "NEW_DIR.")
        if manifest.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{path} has bundle format {manifest.get('format')!r}; this version reads "
                              f"{BUNDLE_FORMAT!r}. Retrain it with python -m modules train.")
        missing = self.missing_files(manifest)
        if missing:
            raise BundleError(f"bundle {path} is incomplete: missing {', '.join(missing)}. Retrain it with "
                              f"python -m modules train, or copy the whole folder again.")
        now = package_versions()
        stale = {k: (v, now.get(k)) for k, v in manifest.get("versions", {}).items()
                 if str(now.get(k)).removeprefix("v") != str(v).removeprefix("v")}
        if stale:
            log.warning("bundle %s was trained with other package versions (%s); if loading or results look "
                        "wrong, retrain it", path, ", ".join(f"{k} {a} -> {b}" for k, (a, b) in stale.items()))
        return manifest

    def missing_files(self, manifest: dict) -> list[str]:
        """The files ``manifest`` lists (``tracks.parquet`` and its parts) that are not in the folder."""
        files = [TRACKS, *manifest.get("parts", {}).values()]
        return [f for f in files if not (self.path / f).exists()]

    # -- the track table, without loading the model ----------------------------------------------------------
    def count_tracks(self) -> int:
        """Rows of ``tracks.parquet``, from its footer (nothing else is read)."""
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.tracks_file).metadata.num_rows

    def first_track_uris(self, n: int) -> list[str]:
        """The first ``n`` track URIs of ``tracks.parquet`` (e.g. seeds for a warm-up request)."""
        import pyarrow.parquet as pq

        return pq.read_table(self.tracks_file, columns=["track_uri"]).column(0)[:n].to_pylist()


def read_manifest(path: str | Path) -> dict:
    """The checked manifest of the bundle at ``path`` (``Bundle(path).check()``)."""
    return Bundle(path).check()
