"""Content model: tracks compared by how they sound (audio features) and what they are called (text tags).

Two vectors per track:

* numeric: the audio features, standardized with a ``StandardScaler`` fitted on the catalog (one unit is one
  standard deviation of that feature across the catalog, whatever its scale: tempo in BPM, loudness in dB);
* text: TF-IDF over the track's artists, its genres, and the words of the titles of the training playlists it
  appears in. Title words are tags the playlists themselves teach ("chill", "workout", "rap" for hip-hop);
  they exist for every track that appears in a playlist, including tracks without audio features.

A playlist is the (weighted) mean of its seeds' vectors, its "centre" (plus its title's words on the text
side). A candidate's similarity is ``(w_num · cos_num + w_text · cos_text) / (w_num + w_text)``, or whichever
part exists when one is missing. Everything is vectorized over candidates: ``similarity`` re-ranks 1,000
candidates for a 100-track playlist in about a millisecond (``benchmarks/content_bench.py``).

``ContentModel`` is the estimator the hybrid recommender calls (``similarity``, ``explain``, ``save``/``load``);
``ContentRecommender`` is the same model used alone, as a ``PlaylistRecommender`` ranking the whole catalog;
``feature_map`` gives the app's Explore page a 2-D PCA map of the catalog with KMeans clusters.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_is_fitted

from modules.base import PlaylistRecommender, popularity_order, positions
from modules.errors import UserError
from modules.features import FEATURE_COLUMNS

log = logging.getLogger(__name__)

MODEL_FORMAT = "content-model/1"

# How a listener says "this track has more/less of X" (explanations) and the adjectives for a cluster centre
# far above/below the catalog's average (map labels). key and time_signature are never put in words: "a higher
# key number" means nothing to a listener.
LISTENER_WORDS: dict[str, tuple[str, str, str, str]] = {
    "danceability": ("more danceable", "less danceable", "danceable", "not for dancing"),
    "energy": ("more energetic", "calmer", "energetic", "calm"),
    "loudness": ("louder", "quieter", "loud", "quiet"),
    "speechiness": ("more spoken", "less spoken", "spoken-word", "sung"),
    "acousticness": ("more acoustic", "less acoustic", "acoustic", "electric"),
    "instrumentalness": ("more instrumental", "more vocal", "instrumental", "vocal"),
    "liveness": ("more live-sounding", "more studio-like", "live", "studio"),
    "valence": ("happier", "sadder", "happy", "sad"),
    "tempo": ("faster", "slower", "fast", "slow"),
    "duration_ms": ("longer", "shorter", "long", "short"),
    "mode": ("in a major key", "in a minor key", "major-key", "minor-key"),
}
# Continuous features used for the 2-D map (key, mode, time_signature are categories, not distances).
MAP_FEATURES = ("danceability", "energy", "loudness", "speechiness", "acousticness", "instrumentalness",
                "liveness", "valence", "tempo", "duration_ms")
_NON_WORD = re.compile(r"[^\w&]+")
# n-grams that start or end with one of these say nothing the single words do not ("best of", "of anime")
_NGRAM_EDGE_STOP = frozenset({"a", "an", "and", "&", "best", "for", "in", "my", "of", "on", "the", "to"})


class ContentError(UserError, ValueError):
    """Input the content model cannot use."""


def title_tokens(title: str | None, ngrams: int = 2) -> list[str]:
    """Normalized words of a playlist title and their n-grams up to ``ngrams``.

    >>> title_tokens("Chill Vibes!!")
    ['chill', 'vibes', 'chill vibes']
    """
    words = _NON_WORD.sub(" ", str(title or "").lower().replace("_", " ")).split()
    out = list(words)
    for n in range(2, ngrams + 1):
        out += [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)
                if words[i] not in _NGRAM_EDGE_STOP and words[i + n - 1] not in _NGRAM_EDGE_STOP]
    return out


@dataclass
class _Query:
    """A playlist's centre: numeric (standardized, unweighted) and text (unit vector), and feature weights."""

    num: np.ndarray | None
    text: np.ndarray | None
    weights: np.ndarray
    default_weights: bool


class ContentModel(BaseEstimator):
    """Audio-feature and text-tag similarity between tracks and playlists.

    Parameters
    ----------
    w_num : float, default=0.6
        Weight of the audio-feature cosine in the combined similarity.
    w_text : float, default=0.4
        Weight of the text-tag cosine (artists, genres, playlist-title words).
    features : sequence of str, default=FEATURE_COLUMNS
        Audio features of the numeric vector (the catalog's 12 and ``duration_ms``).
    feature_weights : mapping, default=None
        Fixed per-feature multipliers of the standardized features (``{"key": 0}`` drops one); the caller's
        ``feature_weights`` in ``similarity`` multiply these.
    artist_weight, genre_weight, title_weight : float, default=1.0
        Weight of each tag group in the text vector (applied after TF-IDF, before normalizing).
    query_title_weight : float, default=1.0
        Weight of a playlist's own title words in its text centre, relative to its seeds' mean.
    min_title_count : int, default=2
        A title word (or n-gram) is a tag only when at least this many training playlists use it.
    title_ngrams : int, default=2
        Longest word n-gram of titles used as a tag.
    clip : float, default=5.0
        Standardized features are clipped to ``[-clip, clip]`` (one 40-minute track should not dominate).

    Attributes
    ----------
    uris_ : ndarray of str, shape (n_tracks,)
        Track URIs (catalog ∪ training playlists), sorted; row ``i`` of every matrix is ``uris_[i]``.
    index_ : dict
        URI → row.
    numeric_ : ndarray of float32, shape (n_tracks, n_features)
        Standardized, clipped audio features (zeros where ``has_num_`` is False).
    has_num_ : ndarray of bool, shape (n_tracks,)
    text_ : csr_matrix of float32, shape (n_tracks, n_tokens)
        L2-normalized TF-IDF tag vectors (empty rows where ``has_text_`` is False).
    has_text_ : ndarray of bool, shape (n_tracks,)
    vocab_ : ndarray of str, shape (n_tokens,)
        Tokens, prefixed by group: ``a:`` artist, ``g:`` genre, ``t:`` title word.
    labels_ : ndarray of str, shape (n_tokens,)
        The tokens as a listener reads them (artist names in their own case).
    idf_ : ndarray of shape (n_tokens,)
    scaler_mean_, scaler_scale_ : ndarray of shape (n_features,)
        The StandardScaler fitted on the catalog.

    Examples
    --------
    >>> model = ContentModel().fit(read_catalog(), store)               # doctest: +SKIP
    >>> model.similarity(seed_uris, candidate_uris)["combined"]           # doctest: +SKIP
    >>> model.explain(seed_uris, candidate_uris[:1])                      # doctest: +SKIP
    ['sound 0.91, tags 0.40: a bit more energetic, much less acoustic; shares genre indie']
    """

    def __init__(self, *, w_num: float = 0.6, w_text: float = 0.4, features: Sequence[str] = FEATURE_COLUMNS,
                 feature_weights: Mapping[str, float] | None = None, artist_weight: float = 1.0,
                 genre_weight: float = 1.0, title_weight: float = 1.0, query_title_weight: float = 1.0,
                 min_title_count: int = 2, title_ngrams: int = 2, clip: float = 5.0):
        self.w_num = w_num
        self.w_text = w_text
        self.features = features
        self.feature_weights = feature_weights
        self.artist_weight = artist_weight
        self.genre_weight = genre_weight
        self.title_weight = title_weight
        self.query_title_weight = query_title_weight
        self.min_title_count = min_title_count
        self.title_ngrams = title_ngrams
        self.clip = clip

    # -- parameters --------------------------------------------------------------------------------------------

    def _validate_params(self) -> None:
        for name in ("w_num", "w_text", "artist_weight", "genre_weight", "title_weight", "query_title_weight",
                     "clip"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or v < 0:
                raise ContentError(f"The {name!r} parameter of ContentModel must be a number >= 0. Got {v!r} instead.")
        if self.w_num + self.w_text <= 0:
            raise ContentError("The 'w_num' and 'w_text' parameters of ContentModel cannot both be 0 "
                               "(nothing would be compared).")
        if isinstance(self.features, str) or not len(self.features) or any(f not in FEATURE_COLUMNS
                                                                             for f in self.features):
            raise ContentError(f"The 'features' parameter of ContentModel must be a non-empty list drawn from "
                               f"{list(FEATURE_COLUMNS)}. Got {self.features!r} instead.")
        for name in ("min_title_count", "title_ngrams"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ContentError(f"The {name!r} parameter of ContentModel must be an int >= 1. Got {v!r} instead.")
        self._weights(self.feature_weights, "feature_weights")

    def _weights(self, weights, name: str) -> np.ndarray:
        """Per-feature multipliers as a vector over ``features`` (ones where not given)."""
        w = np.ones(len(self.features), dtype=np.float64)
        if weights is None or (isinstance(weights, Mapping) and not weights):
            return w
        if not isinstance(weights, Mapping):
            raise ContentError(f"{name} must be a mapping like {{'energy': 2.0}}. Got {type(weights).__name__}.")
        index = {f: i for i, f in enumerate(self.features)}
        unknown = [k for k in weights if k not in index]
        if unknown:
            raise ContentError(f"{name}: unknown features {unknown}; this model compares {list(self.features)}.")
        for k, v in weights.items():
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) \
                    or v < 0:
                raise ContentError(f"{name}[{k!r}] must be a finite number >= 0. Got {v!r} instead.")
            w[index[k]] = float(v)
        return w

    # -- fitting -----------------------------------------------------------------------------------------------

    def fit(self, catalog=None, store=None, pids=None) -> ContentModel:
        """Learn the scaler, the tag vocabulary and every track's vectors.

        Parameters
        ----------
        catalog : DataFrame, FeatureStore, path or None, default=None
            Track features: a ``read_catalog`` frame, a ``FeatureStore`` (all its rows), a catalog file, or
            ``None`` for the shipped catalog. The scaler is fitted on its rows that have audio features.
        store : PlaylistStore, default=None
            Training playlists: their titles become tags of their tracks, and their tracks join the model even
            when the catalog lacks them (text only). ``None``: catalog tags only (artists, genres).
        pids : array-like, default=None
            Use only these playlists of ``store`` (e.g. the training part of a split).

        Returns
        -------
        self
        """
        t0 = time.perf_counter()
        self._validate_params()
        cat = _catalog_frame(catalog)
        feats = list(self.features)
        cat_uris = cat["track_uri"].to_numpy(dtype=object)
        if store is not None:
            st = store.tracks
            st_uris, st_artists = st["track_uri"].to_numpy(dtype=object), st["artist_name"].to_numpy(dtype=object)
        else:
            st_uris = st_artists = np.array([], dtype=object)
        uris = np.unique(np.concatenate([cat_uris, st_uris]).astype(str)).astype(object)
        n = len(uris)
        index = {u: i for i, u in enumerate(uris.tolist())}
        cat_rows = np.fromiter((index[u] for u in cat_uris), dtype=np.int64, count=len(cat_uris))

        # numeric side: StandardScaler fitted on the catalog rows that have every feature
        missing = [f for f in feats if f not in cat.columns]
        if missing:
            raise ContentError(f"the catalog lacks the audio features {missing}; pass features=[...] without them "
                               "or a catalog that has them.")
        raw = np.full((n, len(feats)), np.nan)
        raw[cat_rows] = cat[feats].to_numpy(dtype=np.float64)
        self.has_num_ = ~np.isnan(raw).any(axis=1)
        if not self.has_num_.any():
            raise ContentError(f"no catalog track has all of the features {feats}; pass a catalog with audio "
                               "features (the shipped data/spotify_tracks has them).")
        self.scaler_mean_ = raw[self.has_num_].mean(axis=0)
        scale = raw[self.has_num_].std(axis=0)
        self.scaler_scale_ = np.where(scale > 0, scale, 1.0)  # as StandardScaler: constant features stay 0
        z = np.zeros_like(raw)
        z[self.has_num_] = np.clip((raw[self.has_num_] - self.scaler_mean_) / self.scaler_scale_, -self.clip, self.clip)
        self.numeric_ = z.astype(np.float32)
        self.base_weights_ = self._weights(self.feature_weights, "feature_weights")
        self.num_norm_ = np.linalg.norm(self.numeric_ * self.base_weights_.astype(np.float32), axis=1)

        # text side: artist, genre and title-word counts -> sublinear TF × IDF -> group weights -> L2
        artist_lists: list[list[str]] = [[] for _ in range(n)]
        for r, s in zip(cat_rows.tolist(), cat["artists"].tolist(), strict=True):
            artist_lists[r] = [a.strip() for a in str(s).split(";") if a.strip()]
        for u, a in zip(st_uris.tolist(), st_artists.tolist(), strict=True):
            if not artist_lists[index[u]] and isinstance(a, str) and a.strip():
                artist_lists[index[u]] = [a.strip()]
        genre_lists: list[list[str]] = [[] for _ in range(n)]
        for r, g in zip(cat_rows.tolist(), cat["genres"].tolist(), strict=True):
            genre_lists[r] = [str(x) for x in g] if g is not None else []
        a_counts, a_keys, a_labels = _bag(artist_lists, n, key=str.lower)
        g_counts, g_keys, g_labels = _bag(genre_lists, n, key=str.lower)
        t_counts, t_keys = self._title_counts(store, pids, index, n)
        counts = sparse.hstack([a_counts, g_counts, t_counts], format="csr", dtype=np.float64)
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        self.idf_ = np.log((1.0 + n) / (1.0 + df)) + 1.0  # scikit-learn's smooth idf
        group = np.concatenate([np.full(len(a_keys), self.artist_weight), np.full(len(g_keys), self.genre_weight),
                                np.full(len(t_keys), self.title_weight)])
        tf = counts.copy()
        tf.data = 1.0 + np.log(tf.data)  # sublinear: a tag in 100 playlists is not 100 times the tag
        self.text_ = normalize(tf @ sparse.diags(self.idf_ * group), norm="l2").astype(np.float32).tocsr()
        self.text_.eliminate_zeros()
        self.has_text_ = np.diff(self.text_.indptr) > 0
        self.vocab_ = np.array([f"a:{k}" for k in a_keys] + [f"g:{k}" for k in g_keys] + [f"t:{k}" for k in t_keys],
                               dtype=object)
        self.labels_ = np.array(list(a_labels) + list(g_labels) + list(t_keys), dtype=object)
        self.uris_ = uris
        self.index_ = index
        names = np.full(n, "", dtype=object)
        if store is not None:
            st_names = store.tracks["track_name"].fillna("").astype(str) + " — " + pd.Series(st_artists).fillna("")
            names[np.fromiter((index[u] for u in st_uris), dtype=np.int64, count=len(st_uris))] = st_names.to_numpy()
        if "track_name" in cat.columns:
            artists = cat["artists"].astype(str).str.replace(";", ", ", regex=False)
            names[cat_rows] = (cat["track_name"].fillna("").astype(str) + " — " + artists).to_numpy()
        self.names_ = names
        self._finish()
        log.info("content model: %d tracks (%d with audio features, %d with tags); tags: %d artists, %d genres, "
                 "%d title words; %.1f s", n, self.has_num_.sum(), self.has_text_.sum(), len(a_keys), len(g_keys),
                 len(t_keys), time.perf_counter() - t0)
        return self

    def _finish(self) -> None:
        """Derived lookups (also rebuilt by ``load``)."""
        self.title_index_ = {str(v)[2:]: i for i, v in enumerate(self.vocab_) if str(v).startswith("t:")}
        self.feature_index_ = {f: i for i, f in enumerate(self.features)}

    def _title_counts(self, store, pids, index: dict, n: int) -> tuple[sparse.csr_matrix, list[str]]:
        """``[n_tracks, n_title_tags]``: in how many training playlists each track sits under each title tag."""
        if store is None:
            return sparse.csr_matrix((n, 0)), []
        inter = store.interactions(pids)
        names = store.playlists.set_index("pid")["name"]
        titles = names.reindex(inter.pids).fillna("").tolist()
        token_lists = [sorted(set(title_tokens(t, self.title_ngrams))) for t in titles]
        vocab: dict[str, int] = {}
        rows, cols = [], []
        for r, toks in enumerate(token_lists):
            for t in toks:
                rows.append(r)
                cols.append(vocab.setdefault(t, len(vocab)))
        w = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(titles), len(vocab)))
        keep = np.flatnonzero(np.asarray(w.sum(axis=0)).ravel() >= self.min_title_count)
        keys = np.array(list(vocab), dtype=object)[keep]
        order = np.argsort(keys.astype(str), kind="stable")
        keep, keys = keep[order], keys[order]
        per_track = (inter.matrix.T.tocsr() @ w[:, keep]).tocsr()  # [store tracks, tags]
        rows_in_model = np.fromiter((index[u] for u in inter.track_uris.tolist()), dtype=np.int64,
                                    count=len(inter.track_uris))
        place = sparse.csr_matrix((np.ones(len(rows_in_model)), (rows_in_model, np.arange(len(rows_in_model)))),
                                  shape=(n, len(rows_in_model)))
        return (place @ per_track).tocsr(), keys.tolist()

    # -- queries -----------------------------------------------------------------------------------------------

    def _rows(self, uris: Sequence[str]) -> np.ndarray:
        """Row of each URI, -1 when unknown."""
        if isinstance(uris, str):
            raise TypeError("pass a list of track URIs, not one string; wrap it in a list.")
        if not isinstance(uris, (list, tuple, np.ndarray)):
            uris = list(uris)
        return positions(self._uri_index(), uris)

    def rows_of(self, uris: Sequence[str]) -> np.ndarray:
        """Row of each URI in this model (-1 when unknown), for ``similarity(candidate_rows=…)``."""
        return self._rows(uris)

    def _uri_index(self):
        """``index_`` as a ``pandas.Index`` (row order), built once: candidate sets map thousands of URIs."""
        cached = getattr(self, "_uri_index_", None)
        if cached is None or cached[0] is not self.index_:
            import pandas as pd

            keys = np.empty(len(self.index_), dtype=object)
            keys[np.fromiter(self.index_.values(), np.int64, len(self.index_))] = list(self.index_.keys())
            cached = self._uri_index_ = (self.index_, pd.Index(keys, dtype=object))
        return cached[1]

    def _query(self, seed_uris, seed_weights=None, title=None, feature_weights=None) -> _Query:
        """The playlist's centre; the last one is kept, since a recommendation asks for it twice (similarity of
        the candidates, then explanations of the top rows)."""
        check_is_fitted(self, "numeric_")
        key = None
        if seed_weights is None and not isinstance(seed_uris, str) and (feature_weights is None
                                                                         or isinstance(feature_weights, dict)):
            key = (tuple(seed_uris), title, tuple(sorted(feature_weights.items())) if feature_weights else None)
            last = getattr(self, "_last_query_", None)
            if last is not None and last[0] is self.numeric_ and last[1] == key:
                return last[2]
        q = self._compute_query(seed_uris, seed_weights, title, feature_weights)
        if key is not None:
            self._last_query_ = (self.numeric_, key, q)  # one tuple: threads replace it whole
        return q

    def _compute_query(self, seed_uris, seed_weights, title, feature_weights) -> _Query:
        rows = self._rows(seed_uris)
        if seed_weights is None:
            sw = np.ones(len(rows))
        else:
            sw = np.asarray(seed_weights, dtype=np.float64)
            if sw.shape != rows.shape or (sw < 0).any() or not np.isfinite(sw).all():
                raise ContentError(f"seed_weights must be {len(rows)} finite numbers >= 0 (one per seed). "
                                   f"Got shape {sw.shape} instead.")
        known = rows >= 0
        rows, sw = rows[known], sw[known]
        num = None
        m = self.has_num_[rows] & (sw > 0)
        if m.any():
            num = (self.numeric_[rows[m]] * sw[m, None]).sum(axis=0) / sw[m].sum()
        text = None
        m = self.has_text_[rows] & (sw > 0)
        if m.any():
            text = np.asarray(self.text_[rows[m]].T @ sw[m]).ravel()
            text /= max(_norm(text), 1e-12)
        tvec = self._title_vector(title)
        if tvec is not None:
            text = tvec if text is None else text + self.query_title_weight * tvec
            norm = _norm(text)
            text = text / norm if norm > 0 else None
        user = self._weights(feature_weights, "feature_weights")
        return _Query(num, text, self.base_weights_ * user, default_weights=not feature_weights)

    def _title_vector(self, title: str | None) -> np.ndarray | None:
        """A title's words as a unit vector in tag space (title-word tags only), or None."""
        cols = [self.title_index_[t] for t in dict.fromkeys(title_tokens(title, self.title_ngrams))
                if t in self.title_index_]
        if not cols:
            return None
        v = np.zeros(len(self.vocab_))
        v[cols] = self.idf_[cols] * self.title_weight
        return v / _norm(v)

    def _score(self, q: _Query, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Cosine of each track (all, or ``rows``; -1 rows give NaN) to the centre: ``(num, text)``."""
        n = len(self.uris_) if rows is None else len(rows)
        known = None if rows is None else rows >= 0
        sel = slice(None) if rows is None else rows[known]
        num = np.full(n, np.nan, dtype=np.float32)
        if q.num is not None:
            w = q.weights.astype(np.float32)
            centre = (q.num * q.weights).astype(np.float32)
            cnorm = _norm(centre)
            x = self.numeric_[sel]
            if q.default_weights:
                dots, norms = np.einsum("ij,j->i", x, centre * w), self.num_norm_[sel]
            else:
                xw = x * w
                dots, norms = np.einsum("ij,j->i", xw, centre), np.sqrt(np.einsum("ij,ij->i", xw, xw))
            ok = self.has_num_[sel] & (norms > 0)
            vals = np.full(len(dots), np.nan, dtype=np.float32)
            if cnorm > 0:
                vals[ok] = dots[ok] / (norms[ok] * cnorm)
            if rows is None:
                num = vals
            else:
                num[known] = vals
        text = np.full(n, np.nan, dtype=np.float32)
        if q.text is not None:
            t = self.text_[sel] @ q.text.astype(np.float32)
            vals = np.where(self.has_text_[sel], t, np.nan).astype(np.float32)
            if rows is None:
                text = vals
            else:
                text[known] = vals
        return num, text

    def _combine(self, num: np.ndarray, text: np.ndarray, w_num: float | None = None,
                 w_text: float | None = None) -> np.ndarray:
        wn = self.w_num if w_num is None else w_num
        wt = self.w_text if w_text is None else w_text
        has_n, has_t = ~np.isnan(num), ~np.isnan(text)
        both = has_n & has_t
        out = np.where(has_n, num, text)  # fallback: whichever part exists (NaN when neither)
        if wn + wt > 0:
            out[both] = (wn * num[both] + wt * text[both]) / (wn + wt)
        return out

    def similarity(self, seed_uris: Sequence[str], candidate_uris: Sequence[str] = (), feature_weights=None, *,
                   seed_weights=None, title: str | None = None, candidate_rows=None) -> dict[str, np.ndarray]:
        """How close each candidate is to the playlist made of ``seed_uris`` (and ``title``).

        Parameters
        ----------
        seed_uris : sequence of str
            The playlist's tracks; unknown URIs are ignored.
        candidate_uris : sequence of str, length n
            Tracks to score; unknown ones get NaN.
        feature_weights : mapping, default=None
            The listener's emphasis, e.g. ``{"energy": 3.0}`` ("energy matters more"); ``0`` ignores a
            feature. Multiplies the model's own ``feature_weights``.
        seed_weights : sequence of float, default=None
            Weight of each seed in the playlist's centre (e.g. more for recent tracks).
        title : str, default=None
            The playlist's title: its words join the text centre (weight ``query_title_weight``).
        candidate_rows : array of int, default=None
            The candidates as rows of this model (``rows_of``; -1 unknown) instead of ``candidate_uris``, for a
            caller that maps URIs once.

        Returns
        -------
        dict of ndarray of float32, shape (n,)
            ``num`` (cosine over audio features), ``text`` (cosine over tags), ``combined``; NaN where a part
            cannot be computed (no features, no tags, unknown track). ``combined`` falls back to whichever
            part exists.
        """
        q = self._query(seed_uris, seed_weights, title, feature_weights)
        rows = self._rows(candidate_uris) if candidate_rows is None else np.asarray(candidate_rows, np.int64)
        num, text = self._score(q, rows)
        return {"num": num, "text": text, "combined": self._combine(num, text)}

    def nearest(self, seed_uris: Sequence[str] = (), k: int = 10, feature_weights=None, *, title: str | None = None,
                seed_weights=None, prior: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
        """The ``k`` tracks of the whole model closest to the playlist (seeds excluded), best first.

        ``prior`` (shape ``(n_tracks,)``, aligned with ``uris_``) is added to the combined similarity, e.g. a
        popularity prior. Returns ``(uris, scores)``; empty when neither seeds nor title are known.
        """
        q = self._query(seed_uris, seed_weights, title, feature_weights)
        if q.num is None and q.text is None:
            return [], np.zeros(0, dtype=np.float32)
        score = self._combine(*self._score(q))
        if prior is not None:
            score = score + prior
        score = np.where(np.isnan(score), -np.inf, score)
        seed_rows = self._rows(seed_uris)
        score[seed_rows[seed_rows >= 0]] = -np.inf
        k = max(0, min(int(k), len(score)))
        if k == 0:
            return [], np.zeros(0, dtype=np.float32)
        top = np.argpartition(-score, k - 1)[:k]
        top = top[np.lexsort((top, -score[top]))]
        top = top[np.isfinite(score[top])]
        return self.uris_[top].tolist(), score[top].astype(np.float32)

    def rerank(self, seed_uris: Sequence[str], candidate_uris: Sequence[str], k: int | None = None,
               **kwargs) -> tuple[list[str], np.ndarray]:
        """Candidates sorted by ``combined`` similarity (NaN last), best first: ``(uris, scores)``."""
        sim = self.similarity(seed_uris, candidate_uris, **kwargs)["combined"]
        score = np.where(np.isnan(sim), -np.inf, sim)
        order = np.argsort(-score, kind="stable")[:k]
        cands = list(candidate_uris)
        return [cands[i] for i in order], sim[order]

    # -- explanations ------------------------------------------------------------------------------------------

    def explanations(self, seed_uris: Sequence[str], candidate_uris: Sequence[str], feature_weights=None, *,
                     seed_weights=None, title: str | None = None, top: int = 2,
                     threshold: float = 0.5) -> list[dict]:
        """Why each candidate fits (or not): similarity parts, the features that differ most from the
        playlist's centre, and the tags it shares with the playlist.

        Returns
        -------
        list of dict
            Per candidate: ``track_uri``, ``num``, ``text``, ``combined`` (floats, NaN when missing),
            ``differences`` (up to ``top`` of ``{"feature", "z", "phrase"}``: ``z`` is the candidate minus the
            centre in catalog standard deviations, only where ``|z| >= threshold``), ``shared`` (up to 3
            tag labels) and ``reason`` (the sentence ``explain`` returns).
        """
        q = self._query(seed_uris, seed_weights, title, feature_weights)
        rows = self._rows(candidate_uris)
        num, text = self._score(q, rows)
        combined = self._combine(num, text)
        out = []
        for i, (uri, r) in enumerate(zip(candidate_uris, rows.tolist(), strict=True)):
            diffs, shared = [], []
            if r >= 0 and q.num is not None and self.has_num_[r]:
                d = self.numeric_[r].astype(np.float64) - q.num
                cand = [(f, d[j]) for f, j in self.feature_index_.items()
                        if f in LISTENER_WORDS and q.weights[j] > 0 and abs(d[j]) >= threshold]
                for f, z in sorted(cand, key=lambda x: -abs(x[1]) * q.weights[self.feature_index_[x[0]]])[:top]:
                    more, less = LISTENER_WORDS[f][:2]
                    if f == "mode":  # a track is in a major key or not: no "a bit"
                        phrase = "in a major key" if z > 0 else "in a minor key"
                    else:
                        phrase = ("a bit " if abs(z) < 1 else "" if abs(z) < 2 else "much ") + (more if z > 0 else less)
                    diffs.append({"feature": f, "z": round(float(z), 2), "phrase": phrase})
            if r >= 0 and q.text is not None and self.has_text_[r]:
                lo, hi = self.text_.indptr[r], self.text_.indptr[r + 1]
                cols, vals = self.text_.indices[lo:hi], self.text_.data[lo:hi] * q.text[self.text_.indices[lo:hi]]
                for j in cols[np.argsort(-vals, kind="stable")][:3]:
                    if q.text[j] > 0:
                        shared.append(_tag_label(self.vocab_[j], self.labels_[j]))
            item = {"track_uri": uri, "num": float(num[i]), "text": float(text[i]), "combined": float(combined[i]),
                    "differences": diffs, "shared": shared}
            item["reason"] = _sentence(item, known=r >= 0, has_num=r >= 0 and bool(self.has_num_[r]))
            out.append(item)
        return out

    def explain(self, seed_uris: Sequence[str], candidate_uris: Sequence[str], feature_weights=None,
                **kwargs) -> list[str]:
        """One sentence per candidate, e.g. ``"sound 0.91, tags 0.40: a bit more energetic, much less
        acoustic; shares genre indie, artist Phoebe Bridgers"``."""
        return [e["reason"] for e in self.explanations(seed_uris, candidate_uris, feature_weights, **kwargs)]

    # -- persistence -------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to directory ``path`` (manifest.json, arrays.npz, text.npz, tokens.json)."""
        check_is_fitted(self, "numeric_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        params["features"] = list(params["features"])
        manifest = {"format": MODEL_FORMAT, "params": params, "tracks": len(self.uris_),
                    "tokens": len(self.vocab_)}
        np.savez(path / "arrays.npz", numeric=self.numeric_, has_num=self.has_num_, has_text=self.has_text_,
                 idf=self.idf_, scaler_mean=self.scaler_mean_, scaler_scale=self.scaler_scale_,
                 base_weights=self.base_weights_)
        sparse.save_npz(path / "text.npz", self.text_)
        (path / "tokens.json").write_bytes(orjson.dumps({"uris": self.uris_.tolist(), "vocab": self.vocab_.tolist(),
                                                         "labels": self.labels_.tolist(),
                                                         "names": self.names_.tolist()}))
        (path / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ContentModel:
        """A model written by ``save``."""
        path = Path(path)
        manifest_file = path / "manifest.json"
        if not manifest_file.exists():
            raise ContentError(f"{path} holds no content model (no manifest.json); write one with ContentModel.save.")
        manifest = orjson.loads(manifest_file.read_bytes())
        if manifest.get("format") != MODEL_FORMAT:
            raise ContentError(f"{path} has format {manifest.get('format')!r}; this code reads {MODEL_FORMAT!r}.")
        params = manifest["params"]
        params["features"] = tuple(params["features"])
        model = cls(**params)
        arrays = np.load(path / "arrays.npz", allow_pickle=False)  # numbers only: never unpickle a file
        model.numeric_, model.has_num_, model.has_text_ = arrays["numeric"], arrays["has_num"], arrays["has_text"]
        model.idf_ = arrays["idf"]
        model.scaler_mean_, model.scaler_scale_ = arrays["scaler_mean"], arrays["scaler_scale"]
        model.base_weights_ = arrays["base_weights"]
        model.num_norm_ = np.linalg.norm(model.numeric_ * model.base_weights_.astype(np.float32), axis=1)
        model.text_ = sparse.load_npz(path / "text.npz").tocsr()
        tokens = orjson.loads((path / "tokens.json").read_bytes())
        model.uris_ = np.array(tokens["uris"], dtype=object)
        model.vocab_ = np.array(tokens["vocab"], dtype=object)
        model.labels_ = np.array(tokens["labels"], dtype=object)
        model.names_ = np.array(tokens["names"], dtype=object)
        model.index_ = {u: i for i, u in enumerate(tokens["uris"])}
        model._finish()
        return model


def _norm(v: np.ndarray) -> float:
    """Euclidean norm without BLAS: OpenBLAS splits long dot products over threads, and on a busy machine
    waiting for those threads costs milliseconds where the arithmetic costs microseconds."""
    return float(np.sqrt(np.einsum("i,i->", v, v)))


def _bag(lists: list[list[str]], n: int, key=str.lower) -> tuple[sparse.csr_matrix, list[str], list[str]]:
    """Count matrix ``[n, n_keys]`` of token lists; keys sorted; labels = first spelling seen of each key."""
    labels: dict[str, str] = {}
    for toks in lists:
        for t in toks:
            labels.setdefault(key(t), t)
    keys = sorted(labels)
    col = {k: i for i, k in enumerate(keys)}
    rows, cols = [], []
    for r, toks in enumerate(lists):
        for t in toks:
            rows.append(r)
            cols.append(col[key(t)])
    m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(keys)))
    m.sum_duplicates()
    return m, keys, [labels[k] for k in keys]


def _tag_label(token: str, label: str) -> str:
    kind = token[:2]
    if kind == "a:":
        return f"artist {label}"
    if kind == "g:":
        return f"genre {label}"
    return f"'{label}' playlists"


def _sentence(e: dict, known: bool, has_num: bool) -> str:
    if not known:
        return "unknown track: no audio features or tags to compare"
    parts = []
    if not np.isnan(e["num"]):
        parts.append(f"sound {e['num']:.2f}")
    if not np.isnan(e["text"]):
        parts.append(f"tags {e['text']:.2f}")
    head = ", ".join(parts) if parts else "nothing to compare"
    body = []
    if not has_num:
        body.append("no audio features")
    elif e["differences"]:
        body.append(", ".join(d["phrase"] for d in e["differences"]))
    elif not np.isnan(e["num"]):
        body.append("sounds like the playlist")
    if e["shared"]:
        body.append("shares " + ", ".join(e["shared"]))
    return f"{head}: {'; '.join(body)}" if body else head


def _catalog_frame(catalog) -> pd.DataFrame:
    """The track catalog as a ``read_catalog``-shaped frame (from a frame, a FeatureStore, a path or None)."""
    from modules.catalog import read_catalog
    from modules.features import FeatureStore

    if isinstance(catalog, pd.DataFrame):
        frame = catalog
    elif isinstance(catalog, FeatureStore):
        frame = catalog.read_all()
        frame = frame.assign(artists=frame["artists"].fillna(frame["artist_name"]).fillna(""))
    else:
        frame = read_catalog(catalog)
    need = {"track_uri", "artists", "genres"} - set(frame.columns)
    if need:
        raise ContentError(f"the catalog lacks columns {sorted(need)} (has {list(frame.columns)}); read it with "
                           "modules.catalog.read_catalog or a FeatureStore.")
    return frame


# -- the content recommender -------------------------------------------------------------------------------------

class ContentRecommender(PlaylistRecommender):
    """Nearest tracks to the playlist's centre over the whole catalog (content only, no co-occurrence).

    Parameters
    ----------
    w_num, w_text, query_title_weight, feature_weights, artist_weight, genre_weight, title_weight,
    min_title_count : see ``ContentModel``.
    popularity_weight : float, default=0.0
        Adds ``popularity_weight × log-popularity`` (training playlist counts, scaled to [0, 1]) to the
        similarity; 0 is pure content.
    catalog : path, default=None
        Catalog file (default: the shipped one); a feature store path (``*.sqlite``) works too.
    seed : int, default=0
        Accepted for the shared ``submit`` surface; the model has no randomness.

    Examples
    --------
    >>> rec = ContentRecommender().fit(store)                             # doctest: +SKIP
    >>> uris, scores = rec.recommend(["spotify:track:…"], title="chill", k=10)   # doctest: +SKIP
    """

    def __init__(self, *, w_num: float = 0.6, w_text: float = 0.4, query_title_weight: float = 1.0,
                 feature_weights: Mapping[str, float] | None = None, artist_weight: float = 1.0,
                 genre_weight: float = 1.0, title_weight: float = 1.0, min_title_count: int = 2,
                 popularity_weight: float = 0.0, catalog: str | os.PathLike | None = None, seed: int = 0):
        self.w_num = w_num
        self.w_text = w_text
        self.query_title_weight = query_title_weight
        self.feature_weights = feature_weights
        self.artist_weight = artist_weight
        self.genre_weight = genre_weight
        self.title_weight = title_weight
        self.min_title_count = min_title_count
        self.popularity_weight = popularity_weight
        self.catalog = catalog
        self.seed = seed

    def fit(self, store, pids=None) -> ContentRecommender:
        """Fit the content model on the catalog and the titles of ``store``'s playlists (``pids`` if given)."""
        catalog = self.catalog
        if catalog is not None and str(catalog).endswith((".sqlite", ".db")):
            from modules.features import FeatureStore

            catalog = FeatureStore(catalog)
        self.model_ = ContentModel(
            w_num=self.w_num, w_text=self.w_text, query_title_weight=self.query_title_weight,
            feature_weights=self.feature_weights, artist_weight=self.artist_weight, genre_weight=self.genre_weight,
            title_weight=self.title_weight, min_title_count=self.min_title_count).fit(catalog, store, pids)
        inter = store.interactions(pids)
        counts = np.zeros(len(self.model_.uris_))
        rows = self.model_._rows(inter.track_uris.tolist())
        counts[rows] = np.asarray(inter.matrix.sum(axis=0)).ravel()
        self.popularity_ = (np.log1p(counts) / max(np.log1p(counts.max()), 1e-12)).astype(np.float32)
        self.fallback_ = popularity_order(store, pids)
        self.fitted_ = True
        return self

    def _recommend(self, seeds: list[str], title: str | None, k: int) -> tuple[list[str], np.ndarray]:
        prior = self.popularity_weight * self.popularity_ if self.popularity_weight else None
        return self.model_.nearest(seeds, k, title=title, prior=prior)


# -- the Explore map -----------------------------------------------------------------------------------------------

def feature_map(frame: pd.DataFrame, *, n_clusters: int = 12, seed: int = 0,
                features: Sequence[str] = MAP_FEATURES) -> tuple[pd.DataFrame, dict]:
    """A 2-D PCA projection and KMeans clusters of the tracks' standardized audio features.

    Parameters
    ----------
    frame : DataFrame
        Tracks with ``track_uri`` and the ``features`` columns (e.g. ``read_catalog()``); rows missing a
        feature are left out.
    n_clusters : int, default=12
    seed : int, default=0
        Seeds KMeans and PCA, so the same input gives the same map.
    features : sequence of str, default=MAP_FEATURES
        The continuous audio features.

    Returns
    -------
    map : DataFrame
        ``track_uri``, ``track_name``, ``artist_name``, ``genre`` (first), ``popularity``, ``x``, ``y``,
        ``cluster`` (int) and ``cluster_label`` (the cluster centre's most distinctive features in words,
        e.g. "acoustic, calm").
    info : dict
        ``explained_variance`` (of the 2 components), ``components`` (loadings per feature), ``clusters``
        (label and size per cluster), ``features``, ``seed``.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    if n_clusters < 2:
        raise ContentError(f"n_clusters must be at least 2 (got {n_clusters}).")
    feats = list(features)
    missing = [f for f in feats if f not in frame.columns]
    if missing:
        raise ContentError(f"the tracks lack the features {missing}; the map needs {feats}.")
    data = frame.loc[frame[feats].notna().all(axis=1)].reset_index(drop=True)
    if len(data) < n_clusters:
        raise ContentError(f"{len(data)} tracks with audio features is too few for {n_clusters} clusters.")
    x = data[feats].to_numpy(dtype=np.float64)
    z = np.clip((x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0), -5, 5)
    km = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit(z)
    pca = PCA(n_components=2, random_state=seed).fit(z)
    xy = pca.transform(z)
    labels = _cluster_labels(km.cluster_centers_, feats)
    cluster = km.labels_.astype(np.int32)
    genres = data["genres"] if "genres" in data.columns else pd.Series([[]] * len(data))
    out = pd.DataFrame({
        "track_uri": data["track_uri"].astype(str).to_numpy(),
        "track_name": data.get("track_name", pd.Series([""] * len(data))).astype(str).to_numpy(),
        "artist_name": data.get("artist_name", pd.Series([""] * len(data))).astype(str).to_numpy(),
        "genre": [g[0] if g is not None and len(g) else "" for g in genres],
        "popularity": data.get("popularity", pd.Series([0] * len(data))).fillna(0).astype(np.int32).to_numpy(),
        "x": xy[:, 0].astype(np.float32), "y": xy[:, 1].astype(np.float32), "cluster": cluster,
        "cluster_label": np.array(labels, dtype=object)[cluster],
    })
    sizes = np.bincount(cluster, minlength=n_clusters)
    info = {"explained_variance": [round(float(v), 4) for v in pca.explained_variance_ratio_],
            "components": {f: [round(float(pca.components_[0, i]), 4), round(float(pca.components_[1, i]), 4)]
                           for i, f in enumerate(feats)},
            "clusters": [{"cluster": i, "label": labels[i], "size": int(sizes[i])} for i in range(n_clusters)],
            "features": feats, "seed": seed, "tracks": len(out)}
    return out, info


def _cluster_labels(centres: np.ndarray, feats: list[str]) -> list[str]:
    """Each cluster centre's two most distinctive features in words ("acoustic, calm"); clusters that would
    share a label get their third feature too, and a number if that is still not enough."""
    words = []
    for c in centres:
        top = [i for i in np.argsort(-np.abs(c)) if feats[i] in LISTENER_WORDS and abs(c[i]) >= 0.3][:3]
        words.append([LISTENER_WORDS[feats[i]][2 if c[i] > 0 else 3] for i in top])
    labels = [", ".join(w[:2]) or "middle of the road" for w in words]
    counts = Counter(labels)
    labels = [", ".join(w) if counts[lab] > 1 and len(w) > 2 else lab for lab, w in zip(labels, words, strict=True)]
    counts, seen = Counter(labels), Counter()
    out = []
    for lab in labels:
        seen[lab] += 1
        out.append(f"{lab} ({seen[lab]})" if counts[lab] > 1 else lab)
    return out


def write_feature_map(out: str | os.PathLike, *, store=None, catalog=None, n_clusters: int = 12,
                      seed: int = 0) -> dict:
    """Compute ``feature_map`` over a feature store (``store``) or a catalog file and write it as Parquet
    (the info dict is kept in the file's metadata under ``feature_map``). Returns a summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    if store is not None:
        from modules.features import FeatureStore

        frame = FeatureStore(store).read_all()
    else:
        frame = _catalog_frame(catalog)
    data, info = feature_map(frame, n_clusters=n_clusters, seed=seed)
    table = pa.Table.from_pandas(data, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"feature_map": orjson.dumps(info)})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(out)
    return {"tracks": len(data), "clusters": n_clusters, "explained_variance": sum(info["explained_variance"]),
            "seconds": time.perf_counter() - t0}


def read_feature_map(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """The map and its info, as written by ``write_feature_map`` (what the app loads)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    info = orjson.loads((table.schema.metadata or {}).get(b"feature_map", b"{}"))
    return table.to_pandas(), info
