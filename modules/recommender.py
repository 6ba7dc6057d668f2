"""The product: a trained bundle on disk and the ``Recommender`` that answers playlists from it.

    rec = Recommender.load("models/world")
    rec.recommend(["spotify:track:…"], title="chill", k=20)     # DataFrame: track, score, parts, explanation

A bundle is one folder of JSON, Parquet, numpy arrays and TensorFlow checkpoints, none of them a pickle, so
loading one runs no code from it (docs/bundle.md lists every file)::

    manifest.json     format, package versions, data fingerprint, configuration, validation metrics, parts
    tracks.parquet    every training track: uri, name, artist, album, playlist count (for display and search)
    two_tower/        the two-tower (with its SavedModel for serving without project code)
    rules.parquet     association rules
    content/          the content model
    als/              implicit's ALS: item factors, training matrix, track and playlist maps
    fusion/           the fusion model as arrays + JSON, and the feature tables

``train_bundle`` builds one (ingest → two-tower → rules → content → fusion); ``Recommender.load`` checks the
format, the files and the package versions, and says what is missing or stale. A bundle of the previous format
(``playlist-bundle/1``, whose fusion and ALS were pickles) is refused with the command that converts it
(``python -m modules bundle convert``, ``modules.bundle_convert``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from modules import __version__
from modules.atomic import FolderKind, atomic_directory
from modules.base import positions, single_thread_native
from modules.errors import BundleError, InputError
from modules.mpd import SUBMISSION_SIZE

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "playlist-bundle/2"
PICKLE_FORMAT = "playlist-bundle/1"  # the previous format: fusion.joblib and als.joblib were pickles
MANIFEST = "manifest.json"
BUNDLE_KIND = FolderKind("model bundle", MANIFEST, "playlist-bundle/")
RESULT_COLUMNS = ("rank", "track_uri", "track_name", "artist_name", "score", "retrieval", "rules", "content",
                  "explanation")
MODES = ("hybrid", "collaborative")
BATCH = 32  # playlists per catalog scan in recommend_batch (the scans' memory grows with it: 32 x tracks floats)
# packages whose version the bundle's parts were trained with (a difference is worth a warning)
CHECKED_PACKAGES = ("tensorflow", "tensorflow_recommenders", "sklearn", "numpy", "pandas", "mlxtend")


@dataclass(frozen=True)
class _Request:
    seeds: list[str]
    title: str | None
    k: int
    weights: dict[str, float] | None
    mode: str
    explain: int | bool




def lone_surrogate(value: str) -> str | None:
    """What makes ``value`` invalid Unicode (``"a lone surrogate U+D800 at position 3"``), or ``None`` if it is valid.

    A Python ``str`` may hold lone surrogates (U+D800-U+DFFF), which JSON's ``\\ud800`` escapes and undecodable
    bytes (``surrogateescape``: command-line arguments, file names) produce; no UTF-8 consumer accepts them
    (TensorFlow's string tensors, the JSON writers)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"a lone surrogate U+{ord(value[err.start]):04X} at position {err.start}"
    return None


def check_text(value: str, name: str) -> str:
    """``value`` if it is valid Unicode, else a ``ValueError`` naming ``name`` and the bad character."""
    bad = lone_surrogate(value)
    if bad is not None:
        raise InputError(f"{name} is not valid Unicode: {bad} (text decoded from bytes that were not UTF-8?); "
                         "pass valid text.")
    return value


def _versions() -> dict[str, str]:
    import importlib

    out = {"modules": __version__}
    for name in CHECKED_PACKAGES:
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception:  # pragma: no cover - a package that is not installed
            out[name] = "missing"
    return out


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
                 params: Mapping | None = None, show_progress: bool = True) -> Recommender:
    """Train every part on the playlists at ``mpd`` (MPD slices or a store) and write a bundle to ``out``.

    Everything is checked before the training starts: ``out`` (new, empty or a bundle, apart from the inputs:
    ``OutputError``), the parameters, the features and the playlists (at least one). The bundle is written to a
    temporary sibling and renamed into place, so a failed run leaves the previous bundle intact.
    """
    from modules.atomic import check_output_folder
    from modules.hybrid import HybridRecommender
    from modules.store import open_store

    t0 = time.perf_counter()
    out = check_output_folder(out, BUNDLE_KIND, inputs=[mpd, features if isinstance(features, (str, Path)) else None])
    hp = dict(params or {})
    if epochs is not None:
        hp["two_tower"] = {**hp.get("two_tower", {}), "epochs": int(epochs)}
    hybrid = _checked_hybrid(HybridRecommender, hp, seed=seed, show_progress=show_progress)
    frame = read_features(features)
    store = open_store(mpd, show_progress=show_progress)
    hybrid.features = frame
    hybrid.fit(store)
    with atomic_directory(out) as tmp:
        parts = hybrid.save(tmp)
        tr = store.tracks
        tr[["track_uri", "track_name", "artist_name", "album_name", "artist_uri", "album_uri", "count"]].to_parquet(
            tmp / "tracks.parquet", index=False)
        manifest = {
            "format": BUNDLE_FORMAT,
            "versions": _versions(),
            "data": {"source": str(mpd), "fingerprint": store.fingerprint,
                     "playlists": int(len(store.playlists)), "tracks": int(len(tr)),
                     "features": "shipped catalog" if features is None else str(features)},
            "config": _json_safe({k: v for k, v in hybrid.get_params().items() if k not in ("features",
                                                                                           "show_progress")}),
            "parts": parts,
            "validation": _json_safe(hybrid.validation_),
            "fusion": hybrid.fusion_kind_,
            "train_seconds": round(time.perf_counter() - t0, 1),
        }
        (tmp / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    log.info("bundle written to %s in %.0f s", out, time.perf_counter() - t0)
    return Recommender.load(out)


def _checked_hybrid(cls, hp: dict, **fixed):
    """An unfitted hybrid with parameters ``hp`` whose names and values are checked now, before any data is read
    (``InputError`` / ``HybridError`` name the parameter); the two-tower's config is checked too."""
    import inspect

    from modules.errors import InputError

    known = set(inspect.signature(cls).parameters) - set(fixed) - {"features"}
    unknown = sorted(set(hp) - known)
    if unknown:
        raise InputError(f"unknown hybrid parameters {unknown}; known: {', '.join(sorted(known))}.")
    hybrid = cls(**fixed, **hp)
    hybrid._check_params()
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


def read_manifest(path: str | Path) -> dict:
    """A bundle's checked ``manifest.json``: raises ``BundleError`` naming what is missing or of another format,
    warns about stale package versions. What ``Recommender.load`` checks before loading the parts."""
    path = Path(path)
    if not (path / MANIFEST).exists():
        hint = "" if path.exists() else " (the folder does not exist)"
        raise BundleError(f"{path} is not a model bundle: no {MANIFEST}{hint}. Train one with: "
                          f"python -m modules train --mpd DATA_DIR --out {path}")
    manifest = orjson.loads((path / MANIFEST).read_bytes())
    if manifest.get("format") == PICKLE_FORMAT:
        raise BundleError(
            f"{path} is a {PICKLE_FORMAT!r} bundle: its fusion.joblib and als.joblib are pickles, and loading a "
            "pickle runs whatever code it holds, so this version does not load them. If you trust where the bundle "
            "came from (you trained it, or its source is yours), convert it once to the "
            f"{BUNDLE_FORMAT!r} format, which holds no code: python -m modules bundle convert {path} --out "
            f"NEW_DIR --trust-pickles. Otherwise retrain it: python -m modules train --mpd DATA_DIR --out NEW_DIR.")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} has bundle format {manifest.get('format')!r}; this version reads "
                          f"{BUNDLE_FORMAT!r}. Retrain it with python -m modules train.")
    files = ["tracks.parquet", *manifest.get("parts", {}).values()]
    missing = [f for f in files if not (path / f).exists()]
    if missing:
        raise BundleError(f"bundle {path} is incomplete: missing {', '.join(missing)}. Retrain it with "
                          f"python -m modules train, or copy the whole folder again.")
    now = _versions()
    stale = {k: (v, now.get(k)) for k, v in manifest.get("versions", {}).items() if now.get(k) != v}
    if stale:
        log.warning("bundle %s was trained with other package versions (%s); if loading or results look "
                    "wrong, retrain it", path, ", ".join(f"{k} {a} -> {b}" for k, (a, b) in stale.items()))
    return manifest


class Recommender:
    """A trained bundle, answering playlists.

    Use ``Recommender.load(path)``; ``recommend`` for one playlist, ``recommend_batch`` for many.
    """

    def __init__(self, hybrid, tracks: pd.DataFrame, manifest: dict, path: Path):
        self.hybrid = hybrid
        self.tracks = tracks
        self.manifest = manifest
        self.path = path
        self._meta = tracks.set_index("track_uri")
        self._uri_keys = pd.Index(tracks["track_uri"].to_numpy(dtype=object), dtype=object)
        self._columns = {c: self._meta[c].fillna("").astype(str).to_numpy(dtype=object)
                         for c in ("track_name", "artist_name")}
        self._names = dict(zip(tracks["track_uri"], tracks["track_name"] + " by " + tracks["artist_name"]))

    # -- loading ----------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a bundle; raises ``BundleError`` naming what is missing, warns about stale package versions."""
        from modules.hybrid import HybridRecommender

        path = Path(path)
        manifest = read_manifest(path)
        try:
            hybrid = HybridRecommender.load(path)
        except FileNotFoundError as err:
            raise BundleError(f"bundle {path} is incomplete: {err}") from None
        return cls(hybrid, pd.read_parquet(path / "tracks.parquet"), manifest, path)

    # -- answering --------------------------------------------------------------------------------------
    def recommend(self, seed_track_uris: Sequence[str] = (), title: str | None = None, k: int = SUBMISSION_SIZE,
                  weights: Mapping[str, float] | None = None, *, mode: str = "hybrid",
                  explain: int | bool = 50) -> pd.DataFrame:
        """The ``k`` tracks that best continue a playlist, with scores, parts and explanations.

        Parameters
        ----------
        seed_track_uris : sequence of str
            The playlist's tracks (0 to any number; unknown and duplicate URIs are fine).
        title : str, default=None
        k : int, default=500
        weights : mapping, default=None
            Listener emphasis on audio features, e.g. ``{"energy": 2.0, "acousticness": 0}``: the content
            similarity is recomputed with these weights and blended into the ranking (more emphasis, more
            weight): tracks close to the playlist in the emphasized features move up. ``None`` is the learned
            ranking.
        mode : {"hybrid", "collaborative"}, default="hybrid"
            ``"collaborative"`` returns the two-tower's candidates in its own order (no fusion, no re-rank).
        explain : int or bool, default=50
            Number of top rows that get a full explanation (``True``: all; ``False``: none).

        Returns
        -------
        DataFrame
            Columns ``rank, track_uri, track_name, artist_name, score, retrieval, rules, content,
            explanation``; ``k`` rows (fewer only when the catalog is smaller), seeds excluded, unique.
        """
        # one constructor, columns in their final order: a frame built column by column costs more than the
        # ranking for k = 50
        return pd.DataFrame(self.recommend_columns(seed_track_uris, title, k, weights, mode=mode, explain=explain),
                            columns=list(RESULT_COLUMNS))

    def recommend_columns(self, seed_track_uris: Sequence[str] = (), title: str | None = None,
                          k: int = SUBMISSION_SIZE, weights: Mapping[str, float] | None = None, *,
                          mode: str = "hybrid", explain: int | bool = 50) -> dict[str, np.ndarray | list]:
        """``recommend``'s answer as one array (or list) per column, ``RESULT_COLUMNS`` in order, without the
        DataFrame: what the REST service serializes (building the frame was ~5 % of a request's time)."""
        q = self._request(seed_track_uris, title, k, weights, mode, explain)
        with single_thread_native():
            return self._answer(q, self.hybrid.retrieve([(q.seeds, q.title)])[0])

    def recommend_columns_batch(self, requests: Sequence[Mapping]) -> list:
        """``recommend_columns`` for several requests (each a mapping of its keyword arguments) with one scan of
        the catalog for all of them (``HybridRecommender.retrieve``): what the REST service runs on the requests
        that queued while the previous batch ran. Each item is the request's columns, or the exception it raised
        (one bad request does not fail the others)."""
        out: list = [None] * len(requests)
        queries = {}
        for i, r in enumerate(requests):
            try:
                queries[i] = self._request(**r)
            except (TypeError, ValueError) as err:
                out[i] = err
        with single_thread_native():
            found = self._retrieve_each(queries, out)
            for (i, q), retrieved in zip(queries.items(), found, strict=True):
                if retrieved is None:  # its retrieval failed: out[i] holds the error
                    continue
                try:
                    out[i] = self._answer(q, retrieved)
                except (TypeError, ValueError) as err:
                    out[i] = err
        return out

    def _retrieve_each(self, queries: dict[int, _Request], out: list) -> list:
        """``HybridRecommender.retrieve`` for all ``queries`` at once; if that fails, for each alone, so a query that
        fails it fails alone (its error in ``out``, ``None`` in the answer)."""
        if not queries:
            return []
        try:
            return self.hybrid.retrieve([(q.seeds, q.title) for q in queries.values()])
        except (TypeError, ValueError) as err:
            if len(queries) == 1:
                out[next(iter(queries))] = err
                return [None]
        found = []
        for i, q in queries.items():
            try:
                found.append(self.hybrid.retrieve([(q.seeds, q.title)])[0])
            except (TypeError, ValueError) as err:
                out[i] = err
                found.append(None)
        return found

    def _request(self, seed_track_uris: Sequence[str] = (), title: str | None = None, k: int = SUBMISSION_SIZE,
                 weights: Mapping[str, float] | None = None, mode: str = "hybrid",
                 explain: int | bool = 50) -> _Request:
        """The checked, normalized request (seeds deduplicated in order, blank title as None)."""
        if isinstance(seed_track_uris, str):
            raise TypeError("seed_track_uris must be a list of track URIs, not one string; wrap it in a list.")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer (got {k!r}).")
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES} (got {mode!r}).")
        weights = self._check_weights(weights)
        seeds = [str(s) for s in seed_track_uris]
        try:  # one encode for all the seeds; one by one only to name the bad one
            "".join(seeds).encode("utf-8")
        except UnicodeEncodeError:
            for i, s in enumerate(seeds):
                check_text(s, f"seed_track_uris[{i}]")
        seeds = list(dict.fromkeys(seeds))
        if isinstance(title, str):
            title = check_text(title, "title").strip() or None
        else:
            title = None
        return _Request(seeds, title, int(k), weights, mode, explain)

    def _answer(self, q: _Request, retrieved: tuple) -> dict[str, np.ndarray | list]:
        h, seeds, title, k, weights, explain = self.hybrid, q.seeds, q.title, q.k, q.weights, q.explain
        cs = h.candidate_set(seeds, title, weights, retrieved=retrieved)
        if q.mode == "collaborative":
            score = cs.column("tt_score")
        else:
            score = h.score_candidates(cs)
            if weights and h.content_ is not None:
                score = self._emphasize(score, cs, weights, seeds)
        order = cs.order(score, k)
        uris = cs.uris[order]
        scores = score[order].astype(float)
        part = {n: (cs.column(c)[order] if c in cs.feature_names else np.full(len(order), np.nan))
                for n, c in (("retrieval", "tt_score"), ("rules", "rule_score"), ("content", "cont_combined"))}
        if len(uris) < k:  # a tiny catalog: pad with popular tracks, as every recommender does
            extra, _ = h._complete([], np.zeros(0), set(seeds) | set(uris.tolist()), k - len(uris))
            floor = (scores.min() if len(scores) else 0.0) - 1.0
            uris = np.concatenate([uris, np.array(extra, dtype=object)])
            scores = np.concatenate([scores, np.full(len(extra), floor)])
            part = {n: np.concatenate([v, np.full(len(extra), np.nan)]) for n, v in part.items()}
        rows = positions(self._uri_keys, uris)
        names = {col: np.where(rows >= 0, self._columns[col][np.maximum(rows, 0)], "")
                 if len(self._columns[col]) else np.full(len(uris), "", dtype=object)
                 for col in ("track_name", "artist_name")}
        n_explain = len(uris) if explain is True else int(explain or 0)
        return {"rank": np.arange(1, len(uris) + 1), "track_uri": uris, **names, "score": scores, **part,
                "explanation": self._explain(seeds, title, uris, cs, order, weights, n_explain)}

    def recommend_batch(self, playlists: Sequence[dict], k: int = SUBMISSION_SIZE, *, explain: int | bool = False,
                        show_progress: bool = False) -> list[pd.DataFrame]:
        """``recommend`` for challenge-format playlists (``{"tracks": [{"track_uri"}], "name"?}``), ``BATCH`` at a
        time through ``recommend_columns_batch`` (one catalog scan per batch)."""
        from tqdm import tqdm

        playlists = list(playlists)
        out = []
        with tqdm(total=len(playlists), desc="recommend", unit="playlist", disable=not show_progress) as bar:
            for a in range(0, len(playlists), BATCH):
                chunk = playlists[a:a + BATCH]
                answers = self.recommend_columns_batch(
                    [{"seed_track_uris": [t["track_uri"] for t in p.get("tracks", ())], "title": p.get("name"),
                      "k": k, "explain": explain} for p in chunk])
                for answer in answers:
                    if isinstance(answer, Exception):
                        raise answer
                    out.append(pd.DataFrame(answer, columns=list(RESULT_COLUMNS)))
                bar.update(len(chunk))
        return out

    def _check_weights(self, weights) -> dict[str, float] | None:
        if not weights:
            return None
        if not isinstance(weights, Mapping):
            raise TypeError(f"weights must be a mapping like {{'energy': 2.0}} (got {type(weights).__name__}).")
        content = self.hybrid.content_
        allowed = list(content.features) if content is not None else []
        bad = [f for f in weights if f not in allowed]
        if bad:
            raise InputError(f"weights: unknown features {bad}; choose from {allowed}.")
        out = {}
        for f, v in weights.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise InputError(f"weights[{f!r}] must be a finite number >= 0 (got {v!r}).")
            out[f] = float(v)
        return None if all(v == 1.0 for v in out.values()) else out

    def _emphasize(self, score: np.ndarray, cs, weights: dict[str, float], seeds: list[str]) -> np.ndarray:
        """Blend "how close in the emphasized features" into the learned ranking (both as rank percentiles).

        A listener who says "energy matters more" wants tracks whose energy is near the playlist's, so the
        term is a weighted distance in standardized features (features weighted above 1), not a cosine.
        """
        content = self.hybrid.content_
        emph = {f: w - 1.0 for f, w in weights.items() if w > 1.0}
        seed_rows = [content.index_[u] for u in seeds if u in content.index_]
        seed_rows = [r for r in seed_rows if content.has_num_[r]]
        if not emph or not seed_rows:
            return score
        cols = [list(content.features).index(f) for f in emph]
        w = np.array(list(emph.values()))
        centre = content.numeric_[seed_rows][:, cols].mean(axis=0)
        rows = content.rows_of(cs.uris)
        ok = (rows >= 0) & content.has_num_[np.maximum(rows, 0)]
        dist = np.full(len(rows), np.inf)
        dist[ok] = (np.abs(content.numeric_[rows[ok]][:, cols] - centre) * w).sum(axis=1) / w.sum()
        alpha = min(0.6, 0.15 * sum(abs(v - 1.0) for v in weights.values()))

        def pct(x):
            return np.argsort(np.argsort(x, kind="stable"), kind="stable") / max(len(x) - 1, 1)

        return (1 - alpha) * pct(score) + alpha * pct(-dist)

    def _explain(self, seeds, title, all_uris, cs, order, weights, n: int) -> list[str]:
        h = self.hybrid
        out = [""] * len(all_uris)
        n = min(n, len(order))
        if n == 0:
            return out
        uris = all_uris[:n].tolist()
        content = {}
        if h.content_ is not None:
            for e in h.content_.explanations(seeds, uris, weights, title=title):
                content[e["track_uri"]] = e["reason"]
        rule_rows = cs.rule_rows[order[:n]]
        tt_rank = cs.column("tt_rank_log")[order[:n]] if "tt_rank_log" in cs.feature_names else None
        for i, uri in enumerate(uris):
            bits = []
            if rule_rows[i] >= 0 and h.rules_ is not None:
                bits.append(h.rules_.explain(int(rule_rows[i]), names=self._names))
            if uri in content:
                bits.append(content[uri])
            if not bits and tt_rank is not None:
                bits.append(f"two-tower rank {int(round(math.expm1(tt_rank[i]))) + 1}")
            out[i] = "; ".join(bits)
        return out

    # -- lookups for apps -------------------------------------------------------------------------------
    def search(self, query: str, limit: int = 20) -> pd.DataFrame:
        """Tracks of the bundle whose name or artist contains every word of ``query``, most popular first."""
        words = [w for w in str(query).lower().split() if w]
        tr = self.tracks
        if not words:
            return tr.iloc[0:0]
        text = (tr["track_name"].fillna("") + " " + tr["artist_name"].fillna("")).str.lower()
        mask = np.ones(len(tr), bool)
        for w in words:
            mask &= text.str.contains(w, regex=False).to_numpy()
        return tr.loc[mask].sort_values(["count", "track_uri"], ascending=[False, True]).head(limit)
