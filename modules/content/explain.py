"""Explanations: why a candidate fits a playlist, in a listener's words.

``describe_candidates`` (behind ``ContentModel.explanations`` and ``explain``) gives, per candidate, the two
similarity parts, the audio features that differ most from the playlist's centre ("a bit more energetic",
"much less acoustic") and the tags it shares with the playlist ("genre indie", "artist …", "'chill'
playlists", "album …"). ``LISTENER_WORDS`` is the vocabulary, also used for the Explore map's cluster labels.
"""

from __future__ import annotations

from math import isnan

import numpy as np

from modules.content.query import rows_of

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


def describe_candidates(model, q, candidate_uris, *, top: int = 2, threshold: float = 0.5, rows=None,
                        parts=None) -> list[dict]:
    """Per candidate: similarity parts, the ``top`` features that differ by at least ``threshold`` catalog
    standard deviations from the centre ``q`` (a ``_Query`` of ``model``), up to 3 shared tags and the sentence.
    ``rows`` (the candidates' rows) and ``parts`` (their ``(num, text)`` cosines to ``q``) are computed when not
    given.

    See ``ContentModel.explanations`` for the keys of each dict.
    """
    rows = rows_of(model, candidate_uris) if rows is None else np.asarray(rows, np.int64)
    num, text = model._score(q, rows) if parts is None else parts
    combined = model._combine(num, text)
    differences = _differences(model, q, rows, top, threshold)
    shared = _shared_tags(model, q, rows)
    has_num = model.has_num_
    out = []
    for i, (uri, r, n, t, c) in enumerate(zip(candidate_uris, rows.tolist(), num.tolist(), text.tolist(),
                                               combined.tolist(), strict=True)):
        item = {"track_uri": uri, "num": n, "text": t, "combined": c, "differences": differences.get(i, []),
                "shared": shared.get(i, [])}
        item["reason"] = _sentence(item, known=r >= 0, has_num=r >= 0 and bool(has_num[r]))
        out.append(item)
    return out


def _shared_tags(model, q, rows: np.ndarray, most: int = 3) -> dict[int, list[str]]:
    """Per candidate position (those with tags), the labels of its ``most`` tags that weigh most in its cosine
    with the centre ``q.text`` (tag weight times the centre's, ties in the track's tag order), those the playlist
    has: one pass over every candidate's tags instead of a sort per candidate."""
    if q.text is None:
        return {}
    text = model.text_
    at = np.flatnonzero(rows >= 0)
    at = at[model.has_text_[rows[at]]]
    if not len(at):
        return {}
    lo, hi = text.indptr[rows[at]], text.indptr[rows[at] + 1]
    lengths = (hi - lo).astype(np.int64)
    owner = np.repeat(np.arange(len(at)), lengths)
    pos = np.repeat(lo - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(int(lengths.sum()))
    cols = text.indices[pos]
    vals = text.data[pos] * q.text[cols]
    order = np.lexsort((-vals, owner))  # by candidate, then by weight (stable: ties in the track's tag order)
    owner, cols = owner[order], cols[order]
    rank = np.arange(len(owner)) - np.searchsorted(owner, owner)
    keep = (rank < most) & (q.text[cols] > 0)
    out: dict[int, list[str]] = {}
    vocab, labels = model.vocab_, model.labels_
    for k, j in zip(owner[keep].tolist(), cols[keep].tolist(), strict=True):
        out.setdefault(int(at[k]), []).append(_tag_label(vocab[j], labels[j]))
    return out


def _differences(model, q, rows: np.ndarray, top: int, threshold: float) -> dict[int, list[dict]]:
    """Per candidate position (those with audio features), the ``top`` listener features farthest from the centre
    ``q.num`` (by ``|z|`` times the feature's weight, ties in feature order), each at least ``threshold``: one
    array pass for all candidates instead of a sort per candidate (an explanation per returned row)."""
    if q.num is None:
        return {}
    at = np.flatnonzero(rows >= 0)
    at = at[model.has_num_[rows[at]]]
    if not len(at) or top <= 0:
        return {}
    order = sorted(model.feature_index_.items(), key=lambda x: x[1])
    listener = np.array([f in LISTENER_WORDS for f, _ in order])
    cols = np.array([j for _, j in order], np.int64)
    weights = q.weights[cols]
    d = model.numeric_[rows[at]][:, cols].astype(np.float64) - q.num[cols]
    ok = listener & (weights > 0) & (np.abs(d) >= threshold)
    key = np.where(ok, -np.abs(d) * weights, np.inf)
    best = np.argsort(key, axis=1, kind="stable")[:, :top]
    out = {}
    for k, (i, picks) in enumerate(zip(at.tolist(), best.tolist(), strict=True)):
        diffs = []
        for c in picks:
            if not ok[k, c]:
                break
            f, z = order[c][0], float(d[k, c])
            more, less = LISTENER_WORDS[f][:2]
            if f == "mode":  # a track is in a major key or not: no "a bit"
                phrase = "in a major key" if z > 0 else "in a minor key"
            else:
                phrase = ("a bit " if abs(z) < 1 else "" if abs(z) < 2 else "much ") + (more if z > 0 else less)
            diffs.append({"feature": f, "z": round(z, 2), "phrase": phrase})
        out[i] = diffs
    return out


def _tag_label(token: str, label: str) -> str:
    kind = token[:2]
    if kind == "a:":
        return f"artist {label}"
    if kind == "g:":
        return f"genre {label}"
    if kind == "l:":
        return f"album {label}"
    return f"'{label}' playlists"


def _sentence(e: dict, known: bool, has_num: bool) -> str:
    # ``math.isnan`` on the parts (Python floats): ``np.isnan`` of a scalar cost ~1 µs, three per returned row
    if not known:
        return "unknown track: no audio features or tags to compare"
    parts = []
    if not isnan(e["num"]):
        parts.append(f"sound {e['num']:.2f}")
    if not isnan(e["text"]):
        parts.append(f"tags {e['text']:.2f}")
    head = ", ".join(parts) if parts else "nothing to compare"
    body = []
    if not has_num:
        body.append("no audio features")
    elif e["differences"]:
        body.append(", ".join(d["phrase"] for d in e["differences"]))
    elif not isnan(e["num"]):
        body.append("sounds like the playlist")
    if e["shared"]:
        body.append("shares " + ", ".join(e["shared"]))
    return f"{head}: {'; '.join(body)}" if body else head
