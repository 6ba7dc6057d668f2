"""A playlist as a query: its centre in the content model's two spaces (audio features and tags).

The centre is the (weighted) mean of the seeds' standardized audio features and the unit mean of their tag
vectors, plus the title's words on the tag side (weight ``query_title_weight``). ``ContentModel._query``
caches the last one; ``ContentModel._score`` compares tracks to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modules.content.preparation import title_tokens
from modules.errors import ContentError

# up to this many URIs, a dict lookup per URI (~0.1 µs each) beats building a pandas Index for one get_indexer call
# (~50-200 µs a call on a busy machine, and a request asked for a playlist's seeds and its returned rows 4 times)
FEW_URIS = 512


@dataclass
class _Query:
    """A playlist's centre: numeric (standardized, unweighted) and text (unit vector), and feature weights."""

    num: np.ndarray | None
    text: np.ndarray | None
    weights: np.ndarray
    default_weights: bool


def _norm(v: np.ndarray) -> float:
    """Euclidean norm without BLAS: OpenBLAS splits long dot products over threads, and on a busy machine
    waiting for those threads costs milliseconds where the arithmetic costs microseconds."""
    return float(np.sqrt(np.einsum("i,i->", v, v)))


def rows_of(model, uris) -> np.ndarray:
    """``model.rows_of(uris)`` (row of each URI, -1 unknown), through the model's ``index_`` dict when the list is
    short: the same rows, without a pandas Index per call."""
    if isinstance(uris, str):
        raise TypeError("pass a list of track URIs, not one string; wrap it in a list.")
    if not isinstance(uris, (list, tuple, np.ndarray)):
        uris = list(uris)
    if len(uris) > FEW_URIS:
        return model._rows(uris)
    get = model.index_.get
    return np.fromiter((get(u, -1) for u in uris), np.int64, len(uris))


def weighted_row_sum(matrix, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``matrix[rows].T @ weights`` as a flat float64 array, bit for bit, without slicing the sparse matrix: scipy
    adds each row's entries (times its weight, in float64) into their columns row after row, as ``bincount`` adds
    its weights (~0.08 ms against ~0.24 ms for 100 seeds). ``matrix`` is CSR, ``weights`` float64."""
    if np.result_type(matrix.dtype, weights.dtype) != np.float64:
        return np.asarray(matrix[rows].T @ weights).ravel()
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    take = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    return np.bincount(matrix.indices[take], weights=matrix.data[take].astype(np.float64) * np.repeat(weights, lengths),
                       minlength=matrix.shape[1])


def compute_query(model, seed_uris, seed_weights, title, feature_weights) -> _Query:
    """The centre of the playlist ``seed_uris`` (and ``title``) in a fitted ``ContentModel``.

    Unknown seeds are ignored; ``seed_weights`` (one finite number >= 0 per seed) weight the means;
    ``feature_weights`` multiply the model's own per-feature weights.
    """
    rows = rows_of(model, seed_uris)
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
    m = model.has_num_[rows] & (sw > 0)
    if m.any():
        num = (model.numeric_[rows[m]] * sw[m, None]).sum(axis=0) / sw[m].sum()
    text = None
    m = model.has_text_[rows] & (sw > 0)
    if m.any():
        text = weighted_row_sum(model.text_, rows[m], sw[m])
        text /= max(_norm(text), 1e-12)
    tvec = title_vector(model, title)
    if tvec is not None:
        text = tvec if text is None else text + model.query_title_weight * tvec
        norm = _norm(text)
        text = text / norm if norm > 0 else None
    user = model._weights(feature_weights, "feature_weights")
    return _Query(num, text, model.base_weights_ * user, default_weights=not feature_weights)


def title_vector(model, title: str | None) -> np.ndarray | None:
    """A title's words as a unit vector in tag space (title-word tags only), or None."""
    cols = [model.title_index_[t] for t in dict.fromkeys(title_tokens(title, model.title_ngrams))
            if t in model.title_index_]
    if not cols:
        return None
    v = np.zeros(len(model.vocab_))
    v[cols] = model.idf_[cols] * model.title_weight
    return v / _norm(v)
