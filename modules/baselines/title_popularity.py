"""Title popularity: what every baseline answers a playlist with when its seeds say nothing.

Training playlists are indexed by normalized title and by title word; a query title weighs each training
playlist by 1 for the same normalized title, else by the Jaccard overlap of their words, and tracks are scored
by their weighted playlist counts. Title-only playlists (and playlists none of whose seeds was seen in
training) get this in every baseline, so the methods differ only where they claim to.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from modules.baselines.shared import _Matrix

_PUNCT = re.compile(r"[^\w\s]")


def normalize_title(title: str | None) -> str:
    """Lower-case, drop punctuation, collapse whitespace (the MPD's own title normalization).

    ``"Chill  Vibes!!"`` and ``"chill vibes"`` normalize to the same string; ``None`` gives ``""``.
    """
    if not title:
        return ""
    return " ".join(_PUNCT.sub("", str(title).lower()).split())


class _TitleIndex:
    """Training playlists by normalized title and by title word, for title popularity.

    A query title's weight on a training playlist is 1 for the same normalized title, else the Jaccard
    overlap of their word sets (0 when they share no word).
    """

    def __init__(self, titles: list[str]):
        self.exact: dict[str, list[int]] = defaultdict(list)
        self.by_word: dict[str, list[int]] = defaultdict(list)
        self.words = [frozenset(t.split()) for t in titles]
        for i, t in enumerate(titles):
            if t:
                self.exact[t].append(i)
                for w in self.words[i]:
                    self.by_word[w].append(i)
        self.n = len(titles)

    def weights(self, title: str | None) -> np.ndarray | None:
        t = normalize_title(title)
        if not t:
            return None
        w = np.zeros(self.n, dtype=np.float32)
        q = frozenset(t.split())
        for word in q:
            for i in self.by_word.get(word, ()):
                w[i] = len(q & self.words[i]) / len(q | self.words[i])
        w[self.exact.get(t, [])] = 1.0
        return w if w.any() else None


class _TitlePopularity:
    """Popularity among title-matching training playlists (``None`` when no training title shares a word)."""

    def __init__(self, m: _Matrix):
        self.m = m
        self.index = _TitleIndex(m.titles)
        self.XT = m.X.T.tocsr()

    def scores(self, title: str | None) -> np.ndarray | None:
        w = self.index.weights(title)
        if w is None:
            return None
        return self.XT @ w
