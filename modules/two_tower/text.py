"""Title text layers: how a playlist title becomes word ids and character-trigram ids for the query tower.

Both are Keras ``TextVectorization`` layers, so the exported SavedModel tokenizes titles itself (no project
code at serving time). Words carry meaning ("chill"); trigrams survive spelling variants and unseen words
("chilll", "k-pop" vs "kpop").
"""

from __future__ import annotations

from modules.two_tower.config import TwoTowerConfig


def standardize_words(x):
    """Lower-case (Unicode), drop punctuation and symbols: "K-Pop Hits!" -> "kpop hits"."""
    import tensorflow as tf

    x = tf.strings.lower(x, encoding="utf-8")
    return tf.strings.regex_replace(x, r"[\p{P}\p{S}]", "")


def standardize_ngrams(x):
    """Words as above, joined by "_" with "_" at both ends, so character trigrams mark word boundaries."""
    import tensorflow as tf

    x = tf.strings.strip(tf.strings.regex_replace(standardize_words(x), r"\s+", " "))
    return tf.strings.join(["_", tf.strings.regex_replace(x, " ", "_"), "_"])


def title_vectorizers(cfg: TwoTowerConfig, words=None, ngrams=None):
    """The two title vectorizers (word ids, character-trigram ids); id 0 is padding, 1 is unknown.

    ``words`` / ``ngrams``: saved vocabularies (a loaded bundle); ``None`` leaves them to ``adapt``.
    """
    import tensorflow as tf

    w = tf.keras.layers.TextVectorization(max_tokens=cfg.word_vocab_size + 2, standardize=standardize_words,
                                          split="whitespace", output_mode="int",
                                          output_sequence_length=cfg.max_title_words, vocabulary=words,
                                          name="title_words")
    n = tf.keras.layers.TextVectorization(max_tokens=cfg.ngram_vocab_size + 2, standardize=standardize_ngrams,
                                          split="character", ngrams=(3,), output_mode="int",
                                          output_sequence_length=cfg.max_title_ngrams, vocabulary=ngrams,
                                          name="title_ngrams")
    return w, n


def fit_title_vectorizers(cfg: TwoTowerConfig, titles: list[str]):
    """``title_vectorizers`` adapted to the non-empty ``titles`` of the training playlists."""
    import tensorflow as tf

    words_layer, ngrams_layer = title_vectorizers(cfg)
    titled = [t for t in titles if t]
    words_layer.adapt(tf.constant(titled or [""]))
    ngrams_layer.adapt(tf.constant(titled or [""]))
    return words_layer, ngrams_layer
