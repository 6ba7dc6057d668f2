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
    known = rows >= 0
    has_num = known & model.has_num_[np.where(known, rows, 0)]
    out = []
    for i, (uri, k, h, n, t, c) in enumerate(zip(candidate_uris, known.tolist(), has_num.tolist(), num.tolist(),
                                                  text.tolist(), combined.tolist(), strict=True)):
        diffs, tags = differences.get(i, []), shared.get(i, [])
        out.append({"track_uri": uri, "num": n, "text": t, "combined": c, "differences": diffs, "shared": tags,
                    "reason": _sentence(n, t, diffs, tags, known=k, has_num=h)})
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
    tags = _tag_table(model)
    if tags.positive:
        # every stored tag weight is > 0, so a tag weighs > 0 exactly where the centre has it, and those come first
        # in each candidate's order: sorting only them keeps the same ranks (~130 of ~1,900 tags for 50 rows)
        has = q.text[cols] > 0
        owner, cols, pos = owner[has], cols[has], pos[has]
    vals = text.data[pos] * q.text[cols]
    order = np.lexsort((-vals, owner))  # by candidate, then by weight (stable: ties in the track's tag order)
    owner, cols = owner[order], cols[order]
    rank = np.arange(len(owner)) - np.searchsorted(owner, owner)
    keep = (rank < most) & (q.text[cols] > 0)
    out: dict[int, list[str]] = {}
    places, labels = at.tolist(), tags.labels
    for k, j in zip(owner[keep].tolist(), cols[keep].tolist(), strict=True):
        out.setdefault(places[k], []).append(labels[j])
    return out


class _TagTable:
    """A model's tag labels as shown (``_tag_label`` of every token, built once) and whether every stored tag
    weight is positive (what lets ``_shared_tags`` sort only the playlist's tags)."""

    def __init__(self, model):
        self.text, self.vocab = model.text_, model.vocab_
        self.labels = [_tag_label(v, lab) for v, lab in zip(model.vocab_.tolist(), model.labels_.tolist(),
                                                             strict=True)]
        self.positive = bool((model.text_.data > 0).all())


def _tag_table(model) -> _TagTable:
    table = getattr(model, "_tag_table_", None)
    if table is None or table.text is not model.text_ or table.vocab is not model.vocab_:
        table = model._tag_table_ = _TagTable(model)
    return table


class _FeatureWords:
    """A model's audio features in column order, which of them a listener has words for, and each one's phrases
    (``_differences``), built once per model."""

    def __init__(self, feature_index: dict):
        order = sorted(feature_index.items(), key=lambda x: x[1])
        self.feature_index = feature_index
        self.names = [f for f, _ in order]
        self.listener = np.array([f in LISTENER_WORDS for f in self.names])
        self.cols = np.array([j for _, j in order], np.int64)
        # phrases[c][(|z| >= 1) + (|z| >= 2)][z > 0]
        self.phrases = [None if f not in LISTENER_WORDS else
                        [["in a minor key", "in a major key"]] * 3 if f == "mode" else  # a key is major or not
                        [[f"{bit}{LISTENER_WORDS[f][1]}", f"{bit}{LISTENER_WORDS[f][0]}"]
                         for bit in ("a bit ", "", "much ")] for f in self.names]


def _feature_words(model) -> _FeatureWords:
    words = getattr(model, "_feature_words_", None)
    if words is None or words.feature_index is not model.feature_index_:
        words = model._feature_words_ = _FeatureWords(model.feature_index_)
    return words


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
    words = _feature_words(model)
    cols = words.cols
    weights = q.weights[cols]
    d = model.numeric_[rows[at]][:, cols].astype(np.float64) - q.num[cols]
    ok = words.listener & (weights > 0) & (np.abs(d) >= threshold)
    key = np.where(ok, -np.abs(d) * weights, np.inf)
    best = np.argsort(key, axis=1, kind="stable")[:, :top]
    names, phrases = words.names, words.phrases
    out = {}
    for i, picks, oks, zs in zip(at.tolist(), best.tolist(), np.take_along_axis(ok, best, axis=1).tolist(),
                                 np.take_along_axis(d, best, axis=1).tolist(), strict=True):
        diffs = []
        for c, good, z in zip(picks, oks, zs, strict=True):
            if not good:
                break
            size = abs(z)
            diffs.append({"feature": names[c], "z": round(z, 2),
                          "phrase": phrases[c][(size >= 1) + (size >= 2)][z > 0]})
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


def _sentence(num: float, text: float, differences: list[dict], shared: list[str], known: bool,
              has_num: bool) -> str:
    # ``math.isnan`` on the parts (Python floats): ``np.isnan`` of a scalar cost ~1 µs, three per returned row
    if not known:
        return "unknown track: no audio features or tags to compare"
    has_sound = not isnan(num)
    if has_sound:
        head = f"sound {num:.2f}, tags {text:.2f}" if not isnan(text) else f"sound {num:.2f}"
    else:
        head = f"tags {text:.2f}" if not isnan(text) else "nothing to compare"
    if not has_num:
        body = "no audio features"
    elif differences:
        body = ", ".join([d["phrase"] for d in differences])
    elif has_sound:
        body = "sounds like the playlist"
    else:
        body = ""
    if shared:
        tags = "shares " + ", ".join(shared)
        body = f"{body}; {tags}" if body else tags
    return f"{head}: {body}" if body else head
