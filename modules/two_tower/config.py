"""``TwoTowerConfig``: every knob that shapes the two-tower and its training, and their validation.

It is what ``config.json`` of a bundle stores and what ``--config`` / ``--params`` / ``two_tower={...}`` set,
so it is checked once, here, with one message shape naming the field, the rule and the value received.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from modules.errors import BundleError, InputError

OPTIMIZERS = ("auto", "adam", "lazy_adam")
POOLINGS = ("mean", "mean+max")

# Options that validation rejected, deleted with the code they switched on (docs/two_tower.md, "Options removed",
# names the commit that measured each): the value every model has now, and why the other one went. A saved
# config.json still records them at that value (``to_dict``), so a bundle's bytes did not change.
REMOVED = {
    "normalize": (True, "an unnormalized dot product ranked worse on validation (recall@500 0.460 vs 0.505); "
                        "both towers' outputs are always L2-normalized"),
    "mask_context_hits": (True, "training without the mask was no better on validation (NDCG 0.3432 vs 0.3444); "
                                "in-batch candidates in the query's own context are always masked"),
    "pool_normalized": (False, "normalizing each seed's vector before pooling was no better on validation "
                               "(NDCG 0.3300 vs 0.3323)"),
    "catalog_candidates": (False, "ranking tracks known only from the feature table lowered validation "
                                  "recall@500 (0.486 vs 0.505)"),
}
# values of a kept option that validation rejected: option -> value -> why
REMOVED_VALUES = {
    "pooling": {"attention": "attention pooling was no better than the mean on validation (NDCG 0.3233 vs "
                             "0.3312); pooling is 'mean' or 'mean+max'"},
}
# the order of config.json's keys: the fields, with the removed options where they stood
SAVED_ORDER = ("embedding_dim", "hidden_dim", "temperature", "normalize", "epochs", "patience", "min_delta",
               "batch_size", "learning_rate", "optimizer", "examples_per_track", "max_seeds", "max_context",
               "empty_context_rate", "prefix_rate", "uniform_context_rate", "title_drop_rate", "id_dropout",
               "logq_weight", "mask_context_hits", "mixed_negatives", "dropout", "min_track_count",
               "track_oov_buckets", "artist_oov_buckets", "album_oov_buckets", "share_item_embeddings", "pooling",
               "pool_normalized", "item_bias", "audio", "word_vocab_size", "ngram_vocab_size", "max_title_words",
               "max_title_ngrams", "catalog_candidates", "validation_per_category", "k")


@dataclass
class TwoTowerConfig:
    """Everything that shapes the model and its training (saved in ``config.json``).

    Parameters
    ----------
    embedding_dim : int, default=64
        Size of every embedding and of the final query/candidate vectors.
    hidden_dim : int, default=256
        Width of the query tower's hidden layer.
    temperature : float, default=0.2
        Softmax temperature on the cosine similarities (both towers' outputs are L2-normalized).
    epochs : int, default=15
        Maximum epochs; early stopping usually ends sooner.
    patience : int, default=3
        Stop after this many epochs without a better validation recall@500.
    min_delta : float, default=0.002
        A validation recall@500 counts as better only when it beats the best so far by more than this
        (gains below the validation noise do not keep training going).
    batch_size : int, default=512
        In-batch softmax size (each example's negatives are the other targets of its batch).
    learning_rate : float, default=0.002
        Adam step size.
    optimizer : {"auto", "adam", "lazy_adam"}, default="auto"
        Keras' Adam moves every embedding row at every step, so its step grows with the track vocabulary (an
        epoch doubles at 443k tracks); "lazy_adam" computes the same updates lazily, touching only the rows in
        a batch (same validation on the worlds). "auto": Adam up to ``LAZY_ADAM_FROM_TRACKS`` tracks, lazy above
        (docs/two_tower.md, "The optimizer and the track vocabulary").
    examples_per_track : float, default=0.5
        Training examples drawn per playlist entry per epoch (at least one per playlist).
    max_seeds : int, default=100
        Context tracks kept per training example (a random subset when there are more); serving uses all.
    max_context : int, default=150
        Largest context size drawn.
    empty_context_rate : float, default=0.1
        Share of examples (of titled playlists) with no seed at all: the title-only case.
    prefix_rate : float, default=0.5
        Share of contexts that are a prefix (else a random subset) of the playlist.
    uniform_context_rate : float, default=0.5
        Share of context sizes drawn uniformly in [1, min(n - 1, max_context)] instead of log-uniformly
        (more long contexts, as in the 25- and 100-seed categories).
    title_drop_rate : float, default=0.3
        Share of examples (with seeds) whose title is hidden, for the no-title categories.
    id_dropout : float, default=0.1
        Share of track IDs replaced by their OOV bucket during training.
    logq_weight : float, default=1.0
        Strength of the sampling-bias correction: logits minus ``logq_weight * log P(candidate in batch)``
        (0 disables it).
    dropout : float, default=0.0
        Dropout on the query tower's MLP input during training.
    mixed_negatives : int, default=0
        Extra negatives per example drawn uniformly from the candidates (mixed negative sampling), so rare
        tracks are pushed down too, not only the popular ones in-batch sampling favours.
    min_track_count : int, default=1
        Tracks in fewer training playlists than this get an OOV bucket instead of their own embedding.
    track_oov_buckets, artist_oov_buckets, album_oov_buckets : int, default=16
        Hashed buckets for unknown or rare IDs.
    share_item_embeddings : bool, default=True
        Seeds and candidates share one item encoder (else each tower has its own). Sharing ties what a
        track means as a seed to what it means as a candidate, which matters when most tracks are rare.
    pooling : {"mean", "mean+max"}, default="mean+max"
        How seed vectors are pooled: masked mean, or the mean with the per-dimension max as an extra MLP input.
    item_bias : bool, default=True
        Add a learned per-track and per-artist bias to the score (as one more dimension of both towers, so
        retrieval stays one dot product): the cosine alone cannot express a prior.
    audio : bool, default=True
        Use audio features (where known) in the item encoders.
    word_vocab_size, ngram_vocab_size : int, default=20000
        Title vocabularies (most frequent words / character trigrams of training titles).
    max_title_words, max_title_ngrams : int, default=8, 48
        Title tokens kept.
    validation_per_category : int or "auto", default="auto"
        Validation playlists per challenge category, carved from the training playlists (0: no
        validation, train ``epochs`` epochs). ``"auto"``: 1.5 % of the training playlists, 10 to 50 per
        category (``modules.challenge.validation_per_category``); the fitted ``config_`` holds the number used.
    k : int, default=500
        Recommendations returned by the exported SavedModel.
    """

    embedding_dim: int = 64
    hidden_dim: int = 256
    temperature: float = 0.2
    epochs: int = 15
    patience: int = 3
    min_delta: float = 0.002
    batch_size: int = 512
    learning_rate: float = 0.002
    optimizer: str = "auto"
    examples_per_track: float = 0.5
    max_seeds: int = 100
    max_context: int = 150
    empty_context_rate: float = 0.1
    prefix_rate: float = 0.5
    uniform_context_rate: float = 0.5
    title_drop_rate: float = 0.3
    id_dropout: float = 0.1
    logq_weight: float = 1.0
    mixed_negatives: int = 0
    dropout: float = 0.0
    min_track_count: int = 1
    track_oov_buckets: int = 16
    artist_oov_buckets: int = 16
    album_oov_buckets: int = 16
    share_item_embeddings: bool = True
    pooling: str = "mean+max"
    item_bias: bool = True
    audio: bool = True
    word_vocab_size: int = 20000
    ngram_vocab_size: int = 20000
    max_title_words: int = 8
    max_title_ngrams: int = 48
    validation_per_category: int | str = "auto"
    k: int = 500

    @classmethod
    def from_dict(cls, d: dict | None) -> TwoTowerConfig:
        """A config from a dict (e.g. a JSON ``--config`` file); unknown keys are an error naming them, and so
        is an option that was removed (saying why)."""
        d = dict(d or {})
        removed = sorted(set(d) & set(REMOVED))
        if removed:
            raise InputError("two-tower config: " + "; ".join(f"{k!r} was removed: {REMOVED[k][1]}" for k in removed)
                             + ". Drop it from the config.")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise InputError(f"unknown two-tower config keys {unknown}; known keys: {', '.join(sorted(names))}.")
        for k, gone in REMOVED_VALUES.items():
            if isinstance(d.get(k), str) and d[k] in gone:
                raise InputError(f"two-tower config: {k}={d[k]!r} was removed: {gone[d[k]]}.")
        out = cls(**d)
        out.validate()
        return out

    @classmethod
    def from_saved(cls, d: dict, where: str = "the bundle") -> TwoTowerConfig:
        """The config a bundle's ``config.json`` holds (``to_dict``'s form): a removed option at the value every
        model has now is read as it; any other value means a model this code cannot rebuild (``BundleError``)."""
        d = dict(d)
        for k, (value, why) in REMOVED.items():
            saved = d.pop(k, value)
            if saved != value:
                raise BundleError(f"{where} was trained with {k}={saved!r}, an option that was removed ({why}). "
                                  "Retrain it with python -m modules train (or train-two-tower).")
        for k, gone in REMOVED_VALUES.items():
            if isinstance(d.get(k), str) and d[k] in gone:
                raise BundleError(f"{where} was trained with {k}={d[k]!r}, which was removed ({gone[d[k]]}). "
                                  "Retrain it with python -m modules train (or train-two-tower).")
        return cls.from_dict(d)

    def validate(self) -> None:
        def need(name, ok, what):
            if not ok:
                raise InputError(f"The {name!r} parameter of TwoTowerConfig must be {what}. "
                                 f"Got {getattr(self, name)!r} instead.")
        for name in ("embedding_dim", "hidden_dim", "epochs", "batch_size", "max_seeds", "max_context",
                     "min_track_count", "track_oov_buckets", "artist_oov_buckets", "album_oov_buckets",
                     "word_vocab_size", "ngram_vocab_size", "max_title_words", "max_title_ngrams", "k"):
            v = getattr(self, name)
            need(name, isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive int")
        need("patience", isinstance(self.patience, int) and self.patience >= 1, "a positive int")
        need("min_delta", isinstance(self.min_delta, (int, float)) and self.min_delta >= 0, "a float >= 0")
        need("mixed_negatives", isinstance(self.mixed_negatives, int) and self.mixed_negatives >= 0, "an int >= 0")
        need("validation_per_category", self.validation_per_category == "auto" or (
            isinstance(self.validation_per_category, int) and not isinstance(self.validation_per_category, bool)
            and self.validation_per_category >= 0), "'auto' or an int >= 0")
        need("optimizer", self.optimizer in OPTIMIZERS, " or ".join(map(repr, OPTIMIZERS)))
        need("pooling", self.pooling in POOLINGS, "'mean' or 'mean+max'")
        for name in ("empty_context_rate", "prefix_rate", "title_drop_rate", "id_dropout", "uniform_context_rate",
                     "dropout"):
            v = getattr(self, name)
            need(name, isinstance(v, (int, float)) and 0.0 <= v < 1.0, "a float in [0, 1)")
        for name in ("temperature", "learning_rate", "examples_per_track"):
            v = getattr(self, name)
            need(name, isinstance(v, (int, float)) and v > 0, "a positive float")
        need("logq_weight", isinstance(self.logq_weight, (int, float)) and self.logq_weight >= 0, "a float >= 0")
        need("batch_size", self.batch_size >= 2, "at least 2 (in-batch negatives)")

    def params(self) -> dict:
        """The options, as ``from_dict`` takes them."""
        return dataclasses.asdict(self)

    def to_dict(self) -> dict:
        """The saved form (``config.json``, the checkpoint fingerprint): the options, and the removed ones at the
        value every model has, in the order they always had."""
        values = {**self.params(), **{k: value for k, (value, _why) in REMOVED.items()}}
        return {k: values[k] for k in SAVED_ORDER}
