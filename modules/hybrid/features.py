"""The fusion's features: which columns a hybrid has, the playlist's context, and one playlist's candidate set.

44 columns with every part on and the shipped catalog's 13 audio features: the context (``BASE_FEATURES``:
popularity, how many seeds share the candidate's artist / album, whether the *last* seed does, number of seeds,
share of known seeds, title or not) and each source's own (``PART_FEATURES``, filled by ``modules.hybrid.sources``;
the audio-taste columns are ``sources.taste.AudioTaste.feature_names_for``). The context reads the hybrid's
per-track tables (``track_tables``), fitted on the playlists outside the validation split for the fusion's
examples.
"""

from __future__ import annotations

import numpy as np

from modules.hybrid.candidates import CandidateSet, pool_candidates
from modules.hybrid.sources import BEST_RULE, AudioTaste, Candidates, Query, SourceSet

PARTS = ("two_tower", "rules", "content", "als")
DEFAULT_PARTS = PARTS
BASE_FEATURES = ("pop_log", "same_artist", "same_album", "same_artist_last", "same_album_last", "n_seeds_log",
                 "known_share", "has_title")
PART_FEATURES = {
    "two_tower": ("tt_score", "tt_gap", "tt_z", "tt_rank_log", "tt_found", "tt_recent"),
    "rules": ("rule_score", "rule_norm", "rule_recent", "rule_conf", "rule_lift_log", "rule_rank_log", "rule_found"),
    "content": ("cont_num", "cont_text", "cont_combined", "cont_z"),
    "als": ("als_score", "als_z", "als_rank_log"),
}


def feature_names(parts: tuple[str, ...], audio_features: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The columns of a hybrid with these ``parts``; with ``audio_features`` (the content model's, when audio
    taste is on) the taste columns after them."""
    names = BASE_FEATURES + tuple(f for p in parts for f in PART_FEATURES[p])
    if audio_features is not None:
        names += AudioTaste.feature_names_for(audio_features)
    return names


def track_tables(store, pids, n_popular: int) -> dict[str, np.ndarray]:
    """The hybrid's per-track lookups (attribute name → array): every store track's URI, artist and album codes
    and log count in ``pids``, and the ``n_popular`` most popular tracks (ties by URI)."""
    tr = store.tracks
    track_uris = tr["track_uri"].to_numpy().astype(str)
    _, artist_code = np.unique(tr["artist_uri"].to_numpy().astype(str), return_inverse=True)
    _, album_code = np.unique(tr["album_uri"].to_numpy().astype(str), return_inverse=True)
    inter = store.interactions(pids)
    counts = np.asarray(inter.matrix.sum(axis=0)).ravel()
    return {"track_uris_": track_uris, "artist_code_": artist_code, "album_code_": album_code,
            "pop_log_": np.log1p(counts).astype(np.float32),
            "popular_": track_uris[np.lexsort((track_uris, -counts))[: max(n_popular, 1)]]}


def context_features(query: Query, candidates: Candidates, artist_code: np.ndarray, album_code: np.ndarray,
                     n_known: int) -> dict[str, np.ndarray]:
    """The ``BASE_FEATURES`` other than popularity, from the seeds, the title and the artist and album codes of
    the training tracks (``[n_known]``)."""
    pool, n, seeds, title = candidates.ids, len(candidates), query.seeds, query.title
    cols: dict[str, np.ndarray] = {}
    known = pool < n_known
    rows = np.where(known, pool, 0)
    seed_rows = query.known
    ns = max(len(seeds), 1)
    for name, codes in (("same_artist", artist_code), ("same_album", album_code)):
        if len(seed_rows):
            sc, cnt = np.unique(codes[seed_rows], return_counts=True)
            cand = codes[rows]
            pos = np.clip(np.searchsorted(sc, cand), 0, len(sc) - 1)
            cols[name] = np.where(known & (sc[pos] == cand), cnt[pos], 0) / ns
        else:
            cols[name] = np.zeros(n)
    # the playlist's last seed: people add runs of one artist or album, and the held-out tracks follow it
    seed_ids = query.seed_ids
    last = int(seed_ids[-1]) if len(seeds) and 0 <= seed_ids[-1] < n_known else -1
    for name, codes in (("same_artist_last", artist_code), ("same_album_last", album_code)):
        cols[name] = (known & (codes[rows] == codes[last])).astype(np.float64) if last >= 0 else np.zeros(n)
    cols["n_seeds_log"] = np.full(n, np.log1p(len(seeds)))
    cols["known_share"] = np.full(n, len(seed_rows) / ns if seeds else 0.0)
    cols["has_title"] = np.full(n, 1.0 if title else 0.0)
    return cols


def candidate_set(sources: SourceSet, query: Query, names: tuple[str, ...], artist_code: np.ndarray,
                  album_code: np.ndarray, sizes=None) -> CandidateSet:
    """The candidates of one playlist (``query``, its sources' answers in ``query.found``) with the columns
    ``names``, seeds excluded; ``sizes``: how many of each source's answer join the pool (``None``: all)."""
    candidates = pool_candidates(sources, query, sizes)
    n = len(candidates)
    cols = context_features(query, candidates, artist_code, album_code, sources.ids.n_known)
    for source in sources.featuring:
        cols.update(source.features(query, candidates))
    rule_rows = cols.pop(BEST_RULE, np.full(n, -1, np.int64))
    # filled row by row (one contiguous copy each), then transposed into the row-major [n, n_features] the fusion
    # reads: the same numbers as ``np.column_stack`` of the float64 columns, ~40 % less time for ~2,000 candidates
    X = np.empty((len(names), n))
    for j, f in enumerate(names):
        X[j] = cols[f]
    X = np.ascontiguousarray(X.T)
    return CandidateSet(sources.ids.uris[candidates.ids], X, names, rule_rows, candidates.ids)
