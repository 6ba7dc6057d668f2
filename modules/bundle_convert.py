"""Convert a bundle of the previous format (``playlist-bundle/1``) into the current one, with the user's consent.

The previous format stored the fusion (``fusion.joblib``) and implicit's ALS (``als.joblib``) as pickles, and
unpickling runs whatever code the file holds. ``Recommender.load`` therefore refuses those bundles. A user who
trusts the bundle's source converts it once::

    python -m modules bundle convert OLD_DIR --out NEW_DIR --trust-pickles

which unpickles the two files (only with ``trust_pickles=True``), writes them as arrays, Parquet and JSON
(``HybridRecommender.save_fusion``, ``ALSRecommender.save``), copies the other parts as they are (they never were
pickles), and checks that the converted bundle recommends exactly what the pickled model recommended.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import orjson

from modules.atomic import atomic_directory
from modules.bundle import BUNDLE_FORMAT, MANIFEST, PICKLE_ENTRIES, PICKLE_FORMAT, TRACKS, Bundle, package_versions
from modules.errors import BundleError
from modules.recommender import Recommender

log = logging.getLogger(__name__)

PICKLES = tuple(PICKLE_ENTRIES.values())  # fusion.joblib, als.joblib
# the previous format's fusion.joblib: a dict of these attributes of HybridRecommender, plus "params"
V1_STATE = ("parts_", "feature_names_", "fusion_kind_", "fusion_", "validation_", "track_uris_", "artist_code_",
            "album_code_", "pop_log_", "popular_", "fallback_", "fit_seconds_", "blend_")
# parts that were never pickles: copied as they are
COPIED = ("two_tower", "rules", "content")
CHECK_PLAYLISTS = 8  # playlists the converted bundle must answer exactly as the pickled model


def convert_bundle(old: str | Path, out: str | Path, *, trust_pickles: bool = False) -> Recommender:
    """Write the ``playlist-bundle/1`` bundle at ``old`` as a current bundle at ``out``; returns it loaded.

    Parameters
    ----------
    old : path
        The previous-format bundle.
    out : path
        A new or empty folder (or an existing bundle to replace); written atomically.
    trust_pickles : bool, default=False
        The user's consent to unpickle ``old``'s ``fusion.joblib`` and ``als.joblib``, which runs any code they
        hold: give it only for a bundle whose source you trust. Without it nothing is unpickled and
        ``BundleError`` says why.

    Raises
    ------
    BundleError
        ``old`` is not a previous-format bundle, misses files, ``out`` is another kind of folder, consent is
        missing, or the converted bundle does not answer exactly as the pickled model.
    """
    old, out = Path(old), Path(out)
    source = Bundle(old)
    manifest = _old_manifest(source)
    if old.resolve() == out.resolve():
        raise BundleError(f"--out {out} is the bundle being converted; write the converted bundle to a new folder.")
    if out.exists() and any(out.iterdir()) and not Bundle(out).manifest_file.exists():
        raise BundleError(f"{out} exists and is not a model bundle; choose a new or empty --out folder.")
    if not trust_pickles:
        present = [f for f in PICKLES if (old / f).exists()]
        raise BundleError(f"{old} holds pickles ({', '.join(present)}): loading them runs whatever code they hold. "
                          "Convert it only if you trust where the bundle came from, by adding --trust-pickles "
                          "(trust_pickles=True); otherwise retrain it with python -m modules train.")
    log.warning("unpickling %s (trusted by the caller)", ", ".join(str(old / f) for f in PICKLES))
    hybrid = _load_pickled(source)
    playlists = _check_playlists(hybrid)
    _check_trees(hybrid, playlists)
    before = _answers(hybrid, playlists)
    with atomic_directory(out) as tmp:
        new, parts = Bundle(tmp), {}
        for part in COPIED:
            src = source.part(part)
            if src.exists() and (part == "two_tower" or part in hybrid.parts_):
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, new.part(part))
                parts[part] = Bundle.part_entry(part)
        if getattr(hybrid, "als_", None) is not None:
            hybrid.als_.save(new.als_dir)
            parts["als"] = Bundle.part_entry("als")
        hybrid.save_fusion(new.fusion_dir)
        parts["fusion"] = Bundle.part_entry("fusion")
        shutil.copy2(source.tracks_file, new.tracks_file)
        new.write_manifest({**manifest, "format": BUNDLE_FORMAT, "parts": parts,
                            "converted": {"from": PICKLE_FORMAT, "source": str(old), "versions": package_versions()}})
        after = _answers(Recommender.load(tmp).hybrid, playlists)
        if not all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(before, after, strict=True)):
            raise BundleError(f"the converted bundle does not recommend exactly what {old} recommends; nothing was "
                              f"written to {out}. Retrain the bundle with python -m modules train.")
    log.info("converted %s (%s) to %s (%s); %d playlists answered identically", old, PICKLE_FORMAT, out,
             BUNDLE_FORMAT, len(playlists))
    return Recommender.load(out)


def _old_manifest(source: Bundle) -> dict:
    old = source.path
    if not source.manifest_file.exists():
        hint = "" if old.exists() else " (the folder does not exist)"
        raise BundleError(f"{old} is not a model bundle: no {MANIFEST}{hint}.")
    manifest = orjson.loads(source.manifest_file.read_bytes())
    fmt = manifest.get("format")
    if fmt == BUNDLE_FORMAT:
        raise BundleError(f"{old} is already a {BUNDLE_FORMAT!r} bundle; there is nothing to convert.")
    if fmt != PICKLE_FORMAT:
        raise BundleError(f"{old} has bundle format {fmt!r}; only {PICKLE_FORMAT!r} bundles can be converted. "
                          "Retrain it with python -m modules train.")
    needed = [TRACKS, PICKLE_ENTRIES["fusion"], *[v for k, v in manifest.get("parts", {}).items() if k != "fusion"]]
    missing = [f for f in dict.fromkeys(needed) if not (old / f).exists()]
    if missing:
        raise BundleError(f"bundle {old} is incomplete: missing {', '.join(missing)}; copy the whole folder again.")
    return manifest


def _load_pickled(source: Bundle):
    """The previous format's ``HybridRecommender.load``: the pickles, then the parts that never were pickles."""
    import joblib

    from modules.content import ContentModel
    from modules.hybrid import HybridRecommender
    from modules.rules import RuleModel
    from modules.two_tower import TwoTowerRecommender

    state = joblib.load(source.pickle_file("fusion"))
    if not isinstance(state, dict) or "params" not in state:
        raise BundleError(f"{source.pickle_file('fusion')} is not a hybrid's state; retrain the bundle.")
    hybrid = HybridRecommender(**state.pop("params"))
    for key in V1_STATE:
        setattr(hybrid, key, state.get(key))
    hybrid.two_tower_ = TwoTowerRecommender.load(source.path)
    aggregation = (hybrid.rules or {}).get("aggregation", "sum_confidence")
    hybrid.rules_ = RuleModel.load(source.rules_file, aggregation) if "rules" in hybrid.parts_ else None
    hybrid.content_ = ContentModel.load(source.content_dir) if "content" in hybrid.parts_ else None
    hybrid.als_ = joblib.load(source.pickle_file("als")) if "als" in hybrid.parts_ else None
    hybrid.fitted_ = True
    return hybrid


def _check_playlists(hybrid) -> list[tuple[list[str], str | None]]:
    """A few playlists to compare the two forms on: popular seeds of several lengths, titled and not."""
    popular = [str(u) for u in hybrid.popular_]
    rng = np.random.default_rng(0)
    out: list[tuple[list[str], str | None]] = [([], "chill")]
    for i in range(CHECK_PLAYLISTS - 1):
        n = min(len(popular), (1, 5, 10, 25)[i % 4])
        seeds = [popular[j] for j in rng.choice(len(popular), n, replace=False)] if n else []
        out.append((seeds, "party" if i % 2 else None))
    return out


def _check_trees(hybrid, playlists) -> None:
    """The pickled trees' own ``predict_proba`` against their array form on the check playlists' candidates (the
    logistic fusion was already served from its arrays: ``modules.hybrid.fusion_arrays.LinearFusion``)."""
    from modules.hybrid.fusion_arrays import TreeFusion, as_predictor

    fusion = hybrid.fusion_
    models = [fusion.pooled_, *fusion.models_.values()] if hasattr(fusion, "models_") else [fusion]
    trees = [m for m in models if m is not None and isinstance(as_predictor(m), TreeFusion)]
    for seeds, title in playlists if trees else ():
        X = hybrid.candidate_set(seeds, title).X
        for m in trees:
            if not np.array_equal(m.predict_proba(X)[:, 1], as_predictor(m).positive_proba(X)):
                raise BundleError("the fusion's trees score differently once written as arrays; nothing was "
                                  "written. Retrain the bundle with python -m modules train.")


def _answers(hybrid, playlists) -> list[tuple[list[str], np.ndarray]]:
    return [hybrid.recommend(seeds, title, k=100) for seeds, title in playlists]
