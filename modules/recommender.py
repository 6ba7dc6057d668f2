"""The product: a trained bundle and the ``Recommender`` that answers playlists from it.

    rec = Recommender.load("models/world")
    rec.recommend(["spotify:track:…"], title="chill", k=20)     # DataFrame: track, score, parts, explanation

A bundle is one folder of JSON, Parquet, numpy arrays and TensorFlow checkpoints, none of them a pickle, so
loading one runs no code from it; ``modules.bundle.Bundle`` knows its layout (docs/bundle.md lists every file).

``train_bundle`` builds one (ingest → two-tower → rules → content → fusion); ``Recommender.load`` checks the
format, the files and the package versions, and says what is missing or stale. A bundle of the previous format
(``playlist-bundle/1``, whose fusion and ALS were pickles) is refused with the command that converts it
(``python -m modules bundle convert``, ``modules.bundle_convert``).

Every way of asking (``recommend``, ``recommend_columns``, ``recommend_columns_batch``, ``recommend_batch``)
turns its input into ``modules.query.Query`` objects and calls one core, ``recommend_many``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from modules.base import positions, single_thread_native
from modules.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_KIND,
    CHECKED_PACKAGES,
    MANIFEST,
    PICKLE_FORMAT,
    Bundle,
    package_versions,
    read_manifest,
)
from modules.bundle_train import read_features, train_bundle
from modules.errors import BundleError, InputError
from modules.mpd import SUBMISSION_SIZE
from modules.query import MODES, Query, check_text, lone_surrogate, unknown_weights
from modules.track_labels import TrackLabels

# the names importers of modules.recommender use (some live in modules.bundle, .bundle_train and .query now)
__all__ = ["BATCH", "BUNDLE_FORMAT", "BUNDLE_KIND", "CHECKED_PACKAGES", "MANIFEST", "MODES", "PICKLE_FORMAT",
           "RESULT_COLUMNS", "Bundle", "BundleError", "Query", "Recommender", "check_text", "lone_surrogate",
           "package_versions", "read_features", "read_manifest", "train_bundle"]

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("rank", "track_uri", "track_name", "artist_name", "score", "retrieval", "rules", "content",
                  "explanation")
BATCH = 32  # playlists per catalog scan in recommend_batch (the scans' memory grows with it: 32 x tracks floats)


class Recommender:
    """A trained bundle, answering playlists.

    Use ``Recommender.load(path)``; ``recommend`` for one playlist, ``recommend_batch`` for many (challenge or
    REST form), ``recommend_many`` for ``Query`` objects. Apps read the model through the public lookups
    (``track_label``, ``audio_features``, ``content_model``, ``rule_model``, ``is_training_track``, ``search``).
    """

    def __init__(self, hybrid, tracks: pd.DataFrame, manifest: dict, path: Path):
        self.hybrid = hybrid
        self.tracks = tracks
        self.manifest = manifest
        self.path = path
        self.bundle = Bundle(path)
        # one frame of the tracks: lookups go through this index of its URIs, not a second, re-indexed frame; its
        # strings are the hybrid's own when the tables agree (the bundle's do: modules.uri_pool)
        uris = tracks["track_uri"].to_numpy(dtype=object)
        same = getattr(hybrid, "track_uris_", None)
        if same is not None and len(same) == len(uris) and np.array_equal(uris, same):
            uris = np.asarray(same, dtype=object)
        self._uri_keys = pd.Index(uris, dtype=object)
        del uris
        # names for the k tracks of an answer, taken from the frame's columns (Arrow strings: no Python object per
        # track) when asked; in one chunk: a take of 500 rows from the Parquet read's 18 chunks cost 3.3 ms at 1M
        # playlists (4 ms of a 34 ms request for the two columns), from one chunk 0.02 ms
        self._columns = {c: _one_chunk(tracks[c].fillna("").astype(str)) for c in ("track_name", "artist_name")}
        if self._uri_keys.is_unique:
            self._names = TrackLabels(self._uri_keys, tracks["track_name"].array, tracks["artist_name"].array)
        else:
            self._names = dict(zip(tracks["track_uri"], tracks["track_name"] + " by " + tracks["artist_name"]))

    # -- loading ----------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a bundle; raises ``BundleError`` naming what is missing, warns about stale package versions."""
        from modules.hybrid import HybridRecommender
        from modules.hybrid.persistence import release_arrow_memory

        bundle = Bundle(path)
        manifest = bundle.check()
        try:
            hybrid = HybridRecommender.load(bundle.path)
        except FileNotFoundError as err:
            raise BundleError(f"bundle {bundle.path} is incomplete: {err}") from None
        rec = cls(hybrid, pd.read_parquet(bundle.tracks_file), manifest, bundle.path)
        release_arrow_memory()
        return rec

    # -- what the model knows (for apps) ------------------------------------------------------------------
    @property
    def content_model(self):
        """The content part (``modules.content.ContentModel``: audio features and tags), or ``None``."""
        return self.hybrid.content_

    @property
    def rule_model(self):
        """The association-rule part (``modules.rules.RuleModel``; its ``rules`` is the ``RuleSet``), or ``None``."""
        return self.hybrid.rules_

    @property
    def audio_features(self) -> list[str]:
        """The audio features ``weights`` may name (empty without a content part)."""
        content = self.hybrid.content_
        return list(content.features) if content is not None else []

    @property
    def track_labels(self) -> Mapping[str, str]:
        """Training track URI -> ``"Name by Artist"`` (for display; read-only by convention)."""
        return self._names

    def track_label(self, uri: str) -> str:
        """``"Name by Artist"`` of a training track; the URI itself for any other."""
        return self._names.get(uri, uri)

    def is_training_track(self, uri: str) -> bool:
        """Whether ``uri`` appears in the training playlists (a hashed lookup, no set of every track built)."""
        return uri in self._uri_keys

    def unknown_seeds(self, uris: Sequence[str]) -> list[str]:
        """The URIs that are not training tracks (they add nothing to the collaborative parts as seeds)."""
        return self.hybrid.unknown(uris)

    # -- answering --------------------------------------------------------------------------------------
    def query(self, seed_track_uris: Sequence[str] = (), title: str | None = None, k: int = SUBMISSION_SIZE,
              weights: Mapping[str, float] | None = None, mode: str = "hybrid", explain: int | bool = 50) -> Query:
        """A ``Query`` checked against this model (its weights name only features it knows)."""
        return Query(seed_track_uris, title, k, weights, mode, explain, features=self.audio_features)

    def recommend_many(self, queries: Sequence[Query]) -> list[dict[str, np.ndarray | list] | Exception]:
        """The answers to ``queries``, with one scan of the catalog for all of them (``HybridRecommender.retrieve``):
        the core every other ``recommend*`` method calls.

        Each item is the query's answer as one array (or list) per column, ``RESULT_COLUMNS`` in order, or the
        exception it raised: one bad query does not fail the others, and a query's answer does not depend on
        the others (bit for bit).
        """
        out: list = [None] * len(queries)
        todo: dict[int, Query] = {}
        features = self.audio_features
        for i, q in enumerate(queries):
            if not isinstance(q, Query):
                raise TypeError(f"queries[{i}] is a {type(q).__name__}, not a Query; build one with "
                                "Recommender.query(...) or Query(...).")
            try:
                unknown_weights(q.weights, features)
            except InputError as err:
                out[i] = err
                continue
            todo[i] = q
        with single_thread_native():
            found = self._retrieve_each(todo, out)
            for (i, q), retrieved in zip(todo.items(), found, strict=True):
                if retrieved is None:  # its retrieval failed: out[i] holds the error
                    continue
                try:
                    out[i] = self._answer(q, retrieved)
                except (TypeError, ValueError) as err:
                    out[i] = err
        return out

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
        (answer,) = self.recommend_many([self.query(seed_track_uris, title, k, weights, mode, explain)])
        if isinstance(answer, Exception):
            raise answer
        return answer

    def recommend_columns_batch(self, requests: Sequence[Mapping]) -> list:
        """``recommend_columns`` for several requests (each a mapping of its keyword arguments) with one scan of
        the catalog for all of them: what the REST service runs on the requests that queued while the previous
        batch ran. Each item is the request's columns, or the exception it raised (one bad request does not fail
        the others)."""
        out: list = [None] * len(requests)
        queries = {}
        for i, r in enumerate(requests):
            try:
                queries[i] = self.query(**r)
            except (TypeError, ValueError) as err:
                out[i] = err
        for i, answer in zip(queries, self.recommend_many(list(queries.values())), strict=True):
            out[i] = answer
        return out

    def recommend_batch(self, playlists: Sequence[Mapping], k: int = SUBMISSION_SIZE, *,
                        explain: int | bool = False, show_progress: bool = False) -> list[pd.DataFrame]:
        """``recommend`` for many playlists, ``BATCH`` at a time (one catalog scan per batch).

        Each playlist is ``{"seed_track_uris": [uri, …], "title"?}`` or, as in MPD and challenge files,
        ``{"tracks": [{"track_uri": uri}, …], "name"?}`` (``Query.from_playlist``); one with none of these keys
        is an ``InputError`` naming its index, raised before any work.
        """
        from tqdm import tqdm

        features = self.audio_features
        queries = [Query.from_playlist(p, index=i, k=k, explain=explain, features=features)
                   for i, p in enumerate(playlists)]
        out = []
        with tqdm(total=len(queries), desc="recommend", unit="playlist", disable=not show_progress) as bar:
            for a in range(0, len(queries), BATCH):
                chunk = queries[a:a + BATCH]
                for answer in self.recommend_many(chunk):
                    if isinstance(answer, Exception):
                        raise answer
                    out.append(pd.DataFrame(answer, columns=list(RESULT_COLUMNS)))
                bar.update(len(chunk))
        return out

    def _retrieve_each(self, queries: dict[int, Query], out: list) -> list:
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

    def _answer(self, q: Query, retrieved: dict) -> dict[str, np.ndarray | list]:
        h, seeds, title, k, weights, explain = self.hybrid, q.seeds, q.title, q.k, q.weights, q.explain
        cs = h.candidate_set(seeds, title, weights, retrieved=retrieved, k=k)
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
        names = {col: np.where(rows >= 0, self._columns[col].take(np.maximum(rows, 0)).to_numpy(zero_copy_only=False),
                               "")
                 if len(self._columns[col]) else np.full(len(uris), "", dtype=object)
                 for col in ("track_name", "artist_name")}
        n_explain = len(uris) if explain is True else int(explain or 0)
        return {"rank": np.arange(1, len(uris) + 1), "track_uri": uris, **names, "score": scores, **part,
                "explanation": self._explain(seeds, title, uris, cs, order, weights, n_explain,
                                             h.fired_rules(retrieved))}

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

    def _explain(self, seeds, title, all_uris, cs, order, weights, n: int, fired=None) -> list[str]:
        h = self.hybrid
        out = [""] * len(all_uris)
        n = min(n, len(order))
        if n == 0:
            return out
        uris = all_uris[:n].tolist()
        content = {}
        if h.content_ is not None:
            # the rows and cosines the candidate set already holds (float32, as the content model gave them)
            rows = h._ids().content[cs.ids[order[:n]]]
            parts = None
            if "cont_num" in cs.feature_names and "cont_text" in cs.feature_names:
                parts = tuple(cs.column(c)[order[:n]].astype(np.float32) for c in ("cont_num", "cont_text"))
            for e in h.content_.explanations(seeds, uris, weights, title=title, candidate_rows=rows, parts=parts):
                content[e["track_uri"]] = e["reason"]
        # the firing rule with the most playlists behind it ("" when none has two): modules.rules.explain
        # (``fired``: the rules the retrieval fired for these seeds, not fired again)
        rule_says = (h.rules_.explain_many(seeds, uris, self._names, fired=fired) if h.rules_ is not None
                     else [""] * n)
        tt_rank = cs.column("tt_rank_log")[order[:n]] if "tt_rank_log" in cs.feature_names else None
        for i, uri in enumerate(uris):
            bits = []
            if rule_says[i]:
                bits.append(rule_says[i])
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


def _one_chunk(values: pd.Series) -> pa.Array:
    """``values`` as one contiguous Arrow array (a ``take`` from a chunked one searches the chunks per row)."""
    arr = pa.array(values)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
