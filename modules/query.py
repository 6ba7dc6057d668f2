"""One playlist to continue, checked once where it enters: ``Query``.

Every way of asking the ``Recommender`` (``recommend``, ``recommend_columns``, ``recommend_batch``, the REST
service's batches) builds ``Query`` objects and hands them to ``Recommender.recommend_many``; a ``Query`` that
exists is valid, so the core never checks again::

    Query(["spotify:track:…"], "chill", k=20)                    # seeds, title, k, weights, mode, explain
    Query.from_playlist({"tracks": [{"track_uri": …}], "name": "chill"}, index=3, k=500)   # MPD / challenge form
    Query.from_playlist({"seed_track_uris": […], "title": "chill"}, index=3, k=500)        # the REST form

Bad input raises ``InputError`` naming the field and what was received (``QueryTypeError``, also a
``TypeError``, for a value of the wrong type).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass

import numpy as np

from modules.errors import InputError, QueryTypeError
from modules.mpd import SUBMISSION_SIZE

MODES = ("hybrid", "collaborative")
DEFAULT_EXPLAIN = 50  # top rows that get a full explanation, unless asked otherwise
# a playlist's seeds and title, as the REST service and docs name them, then as MPD / challenge files do
SEED_KEYS = ("seed_track_uris", "tracks")
TITLE_KEYS = ("title", "name")


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
    """``value`` if it is valid Unicode, else an ``InputError`` naming ``name`` and the bad character."""
    bad = lone_surrogate(value)
    if bad is not None:
        raise InputError(f"{name} is not valid Unicode: {bad} (text decoded from bytes that were not UTF-8?); "
                         "pass valid text.")
    return value


@dataclass(frozen=True)
class Query:
    """A checked, normalized request for one playlist's continuation.

    Parameters
    ----------
    seed_track_uris : sequence of str, default=()
        The playlist's tracks (0 to any number; unknown URIs are fine). Kept as a tuple, duplicates dropped
        in order.
    title : str, default=None
        The playlist's title; blank or not a string is ``None``.
    k : int, default=500
        Number of tracks to return (positive).
    weights : mapping, default=None
        Emphasis on audio features, e.g. ``{"energy": 2.0}`` (finite numbers >= 0); all 1.0 is ``None``.
    mode : {"hybrid", "collaborative"}, default="hybrid"
    explain : int or bool, default=50
        Top rows that get a full explanation (``True``: all; ``False`` / ``None``: none).
    features : sequence of str, default=None
        The audio features ``weights`` may name (the model's); ``None`` leaves the names to the recommender.
    """

    seed_track_uris: tuple[str, ...] = ()
    title: str | None = None
    k: int = SUBMISSION_SIZE
    weights: dict[str, float] | None = None
    mode: str = "hybrid"
    explain: int | bool = DEFAULT_EXPLAIN
    features: InitVar[Sequence[str] | None] = None

    def __post_init__(self, features: Sequence[str] | None) -> None:
        # checked in this order: the seed list's type, k, mode, weights, the seeds' text, the title, explain
        seeds, k, title, explain = self.seed_track_uris, self.k, self.title, self.explain
        if isinstance(seeds, str):
            raise QueryTypeError("seed_track_uris must be a list of track URIs, not one string; wrap it in a list.")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer (got {k!r}).")
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES} (got {self.mode!r}).")
        weights = check_weights(self.weights, features)
        seeds = [str(s) for s in seeds]
        try:  # one encode for all the seeds; one by one only to name the bad one
            "".join(seeds).encode("utf-8")
        except UnicodeEncodeError:
            for i, s in enumerate(seeds):
                check_text(s, f"seed_track_uris[{i}]")
        if isinstance(title, str):
            title = check_text(title, "title").strip() or None
        else:
            title = None
        if explain is None:
            explain = False
        elif not isinstance(explain, bool) and (not isinstance(explain, (int, np.integer)) or explain < 0):
            raise InputError(f"explain must be True, False or a number of rows >= 0 (got {explain!r}).")
        set_ = object.__setattr__  # frozen: the normalized values are set once, here
        set_(self, "seed_track_uris", tuple(dict.fromkeys(seeds)))
        set_(self, "title", title)
        set_(self, "k", int(k))
        set_(self, "weights", weights)
        set_(self, "explain", explain)

    @property
    def seeds(self) -> list[str]:
        """The seeds as a list (what the hybrid's scans take)."""
        return list(self.seed_track_uris)

    @classmethod
    def from_playlist(cls, playlist: Mapping, *, index: int, k: int = SUBMISSION_SIZE,
                      explain: int | bool = DEFAULT_EXPLAIN, features: Sequence[str] | None = None) -> Query:
        """The query of one playlist given as a mapping: ``{"seed_track_uris": [uri, …], "title"?}`` (the REST
        form) or ``{"tracks": [{"track_uri": uri}, …], "name"?}`` (MPD and challenge files); other keys
        (``pid``, ``num_samples`` …) are ignored. ``index`` is its place in the caller's list, named in errors.

        A mapping with none of these keys is refused: its seeds would be silently lost.
        """
        where = f"playlists[{index}]"
        if not isinstance(playlist, Mapping):
            raise QueryTypeError(f"{where} must be a mapping like {{'seed_track_uris': [...], 'title': ...}} "
                                 f"(got {type(playlist).__name__}).")
        given = [key for key in (*SEED_KEYS, *TITLE_KEYS) if key in playlist]
        if not given:
            raise InputError(f"{where} has none of the keys {', '.join(SEED_KEYS + TITLE_KEYS)} (got keys "
                             f"{sorted(map(str, playlist))[:10]}); give its seeds as 'seed_track_uris' (a list of "
                             "URIs) or 'tracks' (MPD form), and/or its title as 'title' or 'name'.")
        for pair in (SEED_KEYS, TITLE_KEYS):
            if all(key in playlist for key in pair):
                raise InputError(f"{where} has both {pair[0]!r} and {pair[1]!r}; give one of them.")
        if "tracks" in playlist:
            seeds = _track_uris(playlist["tracks"], where)
        else:
            seeds = playlist.get("seed_track_uris") or ()
        title = playlist["title"] if "title" in playlist else playlist.get("name")
        return cls(seeds, title, k, None, "hybrid", explain, features=features)


def _track_uris(tracks, where: str) -> list[str]:
    """The URIs of an MPD ``tracks`` list (``[{"track_uri": …}, …]``)."""
    if isinstance(tracks, (str, Mapping)) or not isinstance(tracks, Sequence):
        raise QueryTypeError(f"{where}.tracks must be a list of {{'track_uri': ...}} objects "
                             f"(got {type(tracks).__name__}).")
    out = []
    for i, t in enumerate(tracks):
        if not isinstance(t, Mapping) or "track_uri" not in t:
            raise InputError(f"{where}.tracks[{i}] has no 'track_uri' (got {t!r:.80}).")
        out.append(t["track_uri"])
    return out


def check_weights(weights, features: Sequence[str] | None = None) -> dict[str, float] | None:
    """``weights`` as ``{feature: float}``, or ``None`` when empty or all 1.0 (the learned ranking).

    Names are checked against ``features`` when given (the model's audio features), values must be finite
    numbers >= 0.
    """
    if not weights:
        return None
    if not isinstance(weights, Mapping):
        raise QueryTypeError(f"weights must be a mapping like {{'energy': 2.0}} (got {type(weights).__name__}).")
    if features is not None:
        unknown_weights(weights, features)
    out = {}
    for f, v in weights.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise InputError(f"weights[{f!r}] must be a finite number >= 0 (got {v!r}).")
        out[f] = float(v)
    return None if all(v == 1.0 for v in out.values()) else out


def unknown_weights(weights: Mapping | None, features: Sequence[str]) -> None:
    """``InputError`` when ``weights`` names a feature that is not in ``features``."""
    allowed = list(features)
    bad = [f for f in weights or {} if f not in allowed]
    if bad:
        raise InputError(f"weights: unknown features {bad}; choose from {allowed}.")
