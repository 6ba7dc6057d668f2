"""``ContentModel``: tracks compared by how they sound (audio features) and what they are called (text tags).

Two vectors per track (built by ``preparation.py``):

* numeric: the audio features, standardized with a ``StandardScaler`` fitted on the catalog (one unit is one
  standard deviation of that feature across the catalog, whatever its scale: tempo in BPM, loudness in dB);
* text: TF-IDF over the track's artists, its album, its genres, and the words of the titles of the training
  playlists it appears in. Title words are tags the playlists themselves teach ("chill", "workout", "rap" for hip-hop);
  they exist for every track that appears in a playlist, including tracks without audio features.

A playlist is the (weighted) mean of its seeds' vectors, its "centre" (``query.py``; plus its title's words on
the text side). A candidate's similarity is ``(w_num · cos_num + w_text · cos_text) / (w_num + w_text)``, or
whichever part exists when one is missing. Everything is vectorized over candidates: ``similarity`` re-ranks
1,000 candidates for a 100-track playlist in about a millisecond (``benchmarks/content_bench.py``). This is the
estimator the hybrid recommender calls (``similarity``, ``explanations``, ``save``/``load``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from modules.base import positions
from modules.content.explain import describe_candidates
from modules.content.persistence import load_model, save_model
from modules.content.preparation import standardize_audio, tag_vectors, track_names, track_rows
from modules.content.query import _norm, _Query, compute_query
from modules.errors import ContentError
from modules.features import FEATURE_COLUMNS

if TYPE_CHECKING:
    from modules.uri_pool import UriPool

log = logging.getLogger(__name__)

ALBUM_WEIGHT = 1.0


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
    album_weight : float, default=ALBUM_WEIGHT
        Weight of the album group (a track's album, from the catalog or the playlists' ``album_uri``/
        ``album_name``; albums of one known track are no tag). 0 leaves albums out.
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
        Tokens, prefixed by group: ``a:`` artist, ``g:`` genre, ``t:`` title word, ``l:`` album.
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
                 min_title_count: int = 2, title_ngrams: int = 2, clip: float = 5.0,
                 album_weight: float = ALBUM_WEIGHT):
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
        self.album_weight = album_weight

    # -- parameters --------------------------------------------------------------------------------------------

    def _validate_params(self) -> None:
        for name in ("w_num", "w_text", "artist_weight", "genre_weight", "title_weight", "query_title_weight",
                     "clip", "album_weight"):
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
        tracks = track_rows(catalog, store)
        n = tracks.n
        self.has_num_, self.scaler_mean_, self.scaler_scale_, self.numeric_ = standardize_audio(
            tracks, list(self.features), self.clip)
        self.base_weights_ = self._weights(self.feature_weights, "feature_weights")
        self.num_norm_ = np.linalg.norm(self.numeric_ * self.base_weights_.astype(np.float32), axis=1)
        tags = tag_vectors(tracks, store, pids, artist_weight=self.artist_weight, genre_weight=self.genre_weight,
                           title_weight=self.title_weight, title_ngrams=self.title_ngrams,
                           min_title_count=self.min_title_count, album_weight=self.album_weight)
        self.idf_, self.text_ = tags.idf, tags.text
        self.has_text_ = np.diff(self.text_.indptr) > 0
        self.vocab_, self.labels_ = tags.vocab, tags.labels
        self.uris_ = tracks.uris
        self.index_ = tracks.index
        self.names_ = track_names(tracks, store)
        self._finish()
        log.info("content model: %d tracks (%d with audio features, %d with tags); tags: %d artists, %d genres, "
                 "%d title words, %d albums; %.1f s", n, self.has_num_.sum(), self.has_text_.sum(), *tags.sizes,
                 time.perf_counter() - t0)
        return self

    def _finish(self) -> None:
        """Derived lookups (also rebuilt by ``load``)."""
        self.title_index_ = {str(v)[2:]: i for i, v in enumerate(self.vocab_) if str(v).startswith("t:")}
        self.feature_index_ = {f: i for i, f in enumerate(self.features)}

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

    def share_uris(self, pool: UriPool) -> None:
        """Hold ``pool``'s strings for ``uris_`` (``modules.uri_pool``: equal strings, so no answer changes) and
        build ``index_`` again over them; the ``pandas.Index`` built from the old ones is dropped, built again on
        first use."""
        self.uris_ = pool.share(self.uris_)
        self.index_ = {u: i for i, u in enumerate(self.uris_.tolist())}
        self.__dict__.pop("_uri_index_", None)

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
        q = compute_query(self, seed_uris, seed_weights, title, feature_weights)
        if key is not None:
            self._last_query_ = (self.numeric_, key, q)  # one tuple: threads replace it whole
        return q

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
        top, top_scores = self.top_rows(score, seed_uris, k)
        return self.uris_[top].tolist(), top_scores

    def top_rows(self, score: np.ndarray, seed_uris: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the ``k`` best finite scores over the whole model (seeds and NaN excluded), best first,
        ties by row, and their scores as float32 (what ``nearest`` ranks by, also for the blend tuning)."""
        score = np.where(np.isnan(score), -np.inf, score)
        seed_rows = self._rows(seed_uris)
        score[seed_rows[seed_rows >= 0]] = -np.inf
        k = max(0, min(int(k), len(score)))
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        top = np.argpartition(-score, k - 1)[:k]
        top = top[np.lexsort((top, -score[top]))]
        top = top[np.isfinite(score[top])]
        return top, score[top].astype(np.float32)

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
                     threshold: float = 0.5, candidate_rows=None, parts=None) -> list[dict]:
        """Why each candidate fits (or not): similarity parts, the features that differ most from the
        playlist's centre, and the tags it shares with the playlist (``explain.py``).

        ``candidate_rows`` (``rows_of(candidate_uris)``) and ``parts`` (``(num, text)``, float32, what
        ``similarity`` gave these candidates for the same playlist) spare a caller that has them computing
        them again (the hybrid explains the rows it has just scored).

        Returns
        -------
        list of dict
            Per candidate: ``track_uri``, ``num``, ``text``, ``combined`` (floats, NaN when missing),
            ``differences`` (up to ``top`` of ``{"feature", "z", "phrase"}``: ``z`` is the candidate minus the
            centre in catalog standard deviations, only where ``|z| >= threshold``), ``shared`` (up to 3
            tag labels) and ``reason`` (the sentence ``explain`` returns).
        """
        q = self._query(seed_uris, seed_weights, title, feature_weights)
        return describe_candidates(self, q, candidate_uris, top=top, threshold=threshold, rows=candidate_rows,
                                   parts=parts)

    def explain(self, seed_uris: Sequence[str], candidate_uris: Sequence[str], feature_weights=None,
                **kwargs) -> list[str]:
        """One sentence per candidate, e.g. ``"sound 0.91, tags 0.40: a bit more energetic, much less
        acoustic; shares genre indie, artist Phoebe Bridgers"``."""
        return [e["reason"] for e in self.explanations(seed_uris, candidate_uris, feature_weights, **kwargs)]

    @property
    def names_(self) -> np.ndarray:
        """Track names, in ``uris_`` order. A loaded model reads them from its folder on first use
        (``persistence.read_names``): only the command line's answer prints them, and at 1M playlists they were
        2.28 M strings of a serving process."""
        if self.__dict__.get("_names") is None and self.__dict__.get("_names_from") is not None:
            from modules.content.persistence import read_names

            self._names = read_names(self._names_from)
        return self._names

    @names_.setter
    def names_(self, value: np.ndarray) -> None:
        self._names = value

    # -- persistence -------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to directory ``path`` (manifest.json, arrays.npz, text.npz, tokens.json)."""
        return save_model(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ContentModel:
        """A model written by ``save``."""
        return load_model(cls, path)
