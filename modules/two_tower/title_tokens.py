"""Title tokens in pure Python: the ids the title layers of ``text.py`` give, without TensorFlow.

Serving reads a title as ``text.py``'s two ``TextVectorization`` layers do, step for step:

* words: lower-case (Unicode), drop every character of Unicode category P* or S* (``[\\p{P}\\p{S}]``), split on
  ASCII whitespace, look each word up (id = its place in the vocabulary + 2; 1 unknown, 0 padding), keep the
  first ``max_title_words``;
* trigrams: the same standardized text with runs of RE2's ``\\s`` (space, \\t, \\n, \\f, \\r) made one space, ASCII
  whitespace stripped from both ends, spaces made "_" and "_" added at both ends; every three consecutive
  characters joined by spaces ("_ r o" ...), looked up the same way, the first ``max_title_ngrams`` kept.

The Unicode tables differ: Python 3.11's are Unicode 14, TensorFlow 2.21's lower-casing (ICU) is older and its
regular expressions (RE2) newer. The code points where they disagree are listed below (``TF_KEEPS_CASE``,
``TF_DROPS``); and TensorFlow's lower-casing ends a title at its first NUL character. With those,
``tests/test_two_tower_numpy.py`` finds the same standardized text for every Unicode code point, and the same ids
as the layers for the world's titles. Another TensorFlow or Python version can move these lists: that test says
which code points.
"""

from __future__ import annotations

import re
import unicodedata

ASCII_WHITESPACE = " \t\n\v\f\r"  # what TensorFlow's string split and strip treat as whitespace
RE2_SPACE = re.compile(r"[\t\n\f\r ]+")  # RE2's \s (no \v)
WORD_SPLIT = re.compile(r"[ \t\n\v\f\r]+")
PADDING, UNKNOWN = 0, 1
# upper-case letters Python lower-cases and TensorFlow's ICU leaves (Unicode 14 additions)
TF_KEEPS_CASE = ((0x2C2F, 0x2C2F), (0xA7C0, 0xA7C0), (0xA7D0, 0xA7D0), (0xA7D6, 0xA7D6), (0xA7D8, 0xA7D8),
                 (0x10570, 0x1057A), (0x1057C, 0x1058A), (0x1058C, 0x10592), (0x10594, 0x10595))
# symbols and punctuation of Unicode 15 (e.g. the pink heart U+1FA77), unassigned for Python 3.11, that RE2 drops
TF_DROPS = ((0x11B00, 0x11B09), (0x11F43, 0x11F4F), (0x1F6DC, 0x1F6DC), (0x1F774, 0x1F776), (0x1F77B, 0x1F77F),
            (0x1F7D9, 0x1F7D9), (0x1FA75, 0x1FA77), (0x1FA87, 0x1FA88), (0x1FAAD, 0x1FAAF), (0x1FABB, 0x1FABD),
            (0x1FABF, 0x1FABF), (0x1FACE, 0x1FACF), (0x1FADA, 0x1FADB), (0x1FAE8, 0x1FAE8), (0x1FAF7, 0x1FAF8))


def _char_class(ranges) -> re.Pattern:
    return re.compile("[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]")


KEEPS_CASE, DROPS = _char_class(TF_KEEPS_CASE), _char_class(TF_DROPS)
FIRST_TOKEN = 2  # a vocabulary's first token gets this id


def _lower(text: str) -> str:
    """``tf.strings.lower(text, encoding="utf-8")``: Python's lower-casing, but up to a NUL and not of
    ``TF_KEEPS_CASE``."""
    text = text.split("\x00", 1)[0]
    if not KEEPS_CASE.search(text):
        return text.lower()
    parts = KEEPS_CASE.split(text)
    kept = KEEPS_CASE.findall(text)
    return "".join(p.lower() + k for p, k in zip(parts, [*kept, ""], strict=True))


def _drop_punctuation_and_symbols(text: str) -> str:
    return DROPS.sub("", "".join(c for c in text if unicodedata.category(c)[0] not in "PS"))


def standardize_words(title: str) -> str:
    """``text.standardize_words`` in Python: "K-Pop Hits!" -> "kpop hits"."""
    return _drop_punctuation_and_symbols(_lower(title))


def standardize_ngrams(title: str) -> str:
    """``text.standardize_ngrams`` in Python: "K-Pop  Hits!" -> "_kpop_hits_"."""
    return "_" + RE2_SPACE.sub(" ", standardize_words(title)).strip(ASCII_WHITESPACE).replace(" ", "_") + "_"


def words(title: str) -> list[str]:
    return [w for w in WORD_SPLIT.split(standardize_words(title)) if w]


def trigrams(title: str) -> list[str]:
    s = standardize_ngrams(title)
    return [" ".join(s[i:i + 3]) for i in range(len(s) - 2)]


class TitleTokens:
    """Title -> (word ids, trigram ids) as ``text.title_vectorizers(cfg, words, ngrams)`` gives them, padding
    dropped (at most ``max_words`` / ``max_ngrams`` ids; unknown tokens are 1)."""

    def __init__(self, word_vocab: list[str], ngram_vocab: list[str], max_words: int, max_ngrams: int):
        self.word_vocab, self.ngram_vocab = list(word_vocab), list(ngram_vocab)
        self.word_ids = {w: i + FIRST_TOKEN for i, w in enumerate(self.word_vocab)}
        self.ngram_ids = {g: i + FIRST_TOKEN for i, g in enumerate(self.ngram_vocab)}
        self.max_words, self.max_ngrams = int(max_words), int(max_ngrams)

    @property
    def n_words(self) -> int:
        """The word layer's vocabulary size (padding and unknown included)."""
        return len(self.word_vocab) + FIRST_TOKEN

    @property
    def n_ngrams(self) -> int:
        return len(self.ngram_vocab) + FIRST_TOKEN

    def __call__(self, title: str | None) -> tuple[list[int], list[int]]:
        title = title if isinstance(title, str) else ""
        w = [self.word_ids.get(t, UNKNOWN) for t in words(title)[:self.max_words]]
        g = [self.ngram_ids.get(t, UNKNOWN) for t in trigrams(title)[:self.max_ngrams]]
        return w, g
