"""The training-example sampler: training playlists as item ids and title tokens, and one epoch's examples.

Examples mimic the task: from each training playlist several (context = a random subset or a prefix of its
tracks, its title hidden sometimes -> target = one of its other tracks). An epoch is drawn from a seeded numpy
generator (same seed and epoch, same examples, which resuming relies on) and kept ragged, padded one batch at a
time. ``sampling_probability`` is how often each item lands in a batch's candidate pool (the logQ correction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modules.two_tower.config import TwoTowerConfig
from modules.two_tower.items import ItemTable


@dataclass
class Playlists:
    """Training playlists as item-id arrays (duplicates removed, order kept) and title token ids."""

    tracks: list[np.ndarray]
    has_title: np.ndarray  # [P] bool
    words: np.ndarray  # [P, W] int32
    ngrams: np.ndarray  # [P, N] int32


def playlist_items(store, train_pids: np.ndarray, items: ItemTable) -> tuple[list[np.ndarray], list[str]]:
    """The training playlists in pid order: each one's item ids in playlist order (duplicates removed, first kept)
    and its title ("" when it has none)."""
    entries = store.playlist_tracks
    entries = entries.loc[entries["pid"].isin(train_pids)].sort_values(["pid", "pos"], kind="stable")
    idx = items.index
    item_ids = entries["track_uri"].map(idx).to_numpy(np.int64)
    bounds = np.flatnonzero(np.diff(entries["pid"].to_numpy())) + 1
    tracks = [pd.unique(a).astype(np.int32) for a in np.split(item_ids, bounds)] if len(item_ids) else []
    names = store.playlists.set_index("pid")["name"]
    titles = [names.get(p) for p in np.unique(entries["pid"].to_numpy()).tolist()]
    titles = [t if isinstance(t, str) and t.strip() else "" for t in titles]
    return tracks, titles


def encode_playlists(tracks: list[np.ndarray], titles: list[str], words_layer, ngrams_layer) -> Playlists:
    """``Playlists`` with each title run through the (adapted) title vectorizers once."""
    import tensorflow as tf

    tt = tf.constant(titles) if titles else tf.constant([""])
    return Playlists(tracks=tracks, has_title=np.array([bool(t) for t in titles]),
                     words=words_layer(tt).numpy().astype(np.int32),
                     ngrams=ngrams_layer(tt).numpy().astype(np.int32))


def sampling_probability(tracks: list[np.ndarray], items: ItemTable, cfg: TwoTowerConfig) -> np.ndarray:
    """[n_items + 1]: expected copies of each item in a batch's candidate pool. Targets are drawn in proportion
    to an item's share of training entries; ``mixed_negatives`` adds a uniform share over the candidates."""
    counts = np.bincount(np.concatenate(tracks) if tracks else np.zeros(0, int), minlength=len(items.uris) + 1)
    prob = (cfg.batch_size * counts / max(counts.sum(), 1)
            + cfg.batch_size * cfg.mixed_negatives / max(items.n_candidates, 1))
    return np.maximum(prob, 1e-6)


@dataclass
class Examples:
    """One epoch of training examples, stored compactly and padded one batch at a time.

    Contexts are kept ragged (``context`` concatenated, ``offsets`` per example, in training order) and title
    token rows as an index into the playlists' table, so an epoch costs about ``mean context length × 5`` bytes
    per example instead of the ~3.5 KB of padded ``[max_seeds]`` rows, title rows and their TensorFlow copy (an
    epoch of 100,000 playlists peaked at 12.9 GB that way; docs/two_tower.md, "Memory"). ``batches`` yields exactly
    the padded arrays the materialized form held, so training is unchanged to the bit.
    """

    context: np.ndarray  # [sum of lengths] int32, training order
    offsets: np.ndarray  # [n + 1] int64
    seed_drop: np.ndarray  # [sum of lengths] bool, aligned with context
    target: np.ndarray  # [n] int32
    title_row: np.ndarray  # [n] int64, -1 = no title
    target_drop: np.ndarray  # [n] bool
    extra: dict  # "rng" [n, 2] int64, "negatives" [n, m] int32 when configured
    max_seeds: int

    def __len__(self) -> int:
        return len(self.target)

    def n_batches(self, batch_size: int) -> int:
        return len(self) // batch_size

    def signature(self, pl: Playlists, batch_size: int) -> dict:
        import tensorflow as tf

        b, s = batch_size, self.max_seeds
        sig = {"seeds": tf.TensorSpec((b, s), tf.int32), "target": tf.TensorSpec((b,), tf.int32),
               "words": tf.TensorSpec((b, pl.words.shape[1]), tf.int32),
               "ngrams": tf.TensorSpec((b, pl.ngrams.shape[1]), tf.int32),
               "seed_drop": tf.TensorSpec((b, s), tf.bool), "target_drop": tf.TensorSpec((b,), tf.bool)}
        for k, v in self.extra.items():
            sig[k] = tf.TensorSpec((b, *v.shape[1:]), tf.as_dtype(v.dtype))
        return sig

    def batches(self, pl: Playlists, batch_size: int):
        """Full batches in training order (the remainder is dropped), as dicts of padded arrays."""
        cols = np.arange(self.max_seeds)
        for i in range(self.n_batches(batch_size)):
            a, b = i * batch_size, (i + 1) * batch_size
            lengths = np.diff(self.offsets[a:b + 1])
            mask = cols[None, :] < lengths[:, None]
            lo, hi = self.offsets[a], self.offsets[b]
            seeds = np.zeros((batch_size, self.max_seeds), np.int32)
            seeds[mask] = self.context[lo:hi]
            drop = np.zeros((batch_size, self.max_seeds), bool)
            drop[mask] = self.seed_drop[lo:hi]
            trow = self.title_row[a:b]
            has = trow >= 0
            out = {"seeds": seeds, "target": self.target[a:b],
                   "words": np.where(has[:, None], pl.words[np.maximum(trow, 0)], 0).astype(np.int32),
                   "ngrams": np.where(has[:, None], pl.ngrams[np.maximum(trow, 0)], 0).astype(np.int32),
                   "seed_drop": drop, "target_drop": self.target_drop[a:b]}
            for k, v in self.extra.items():
                out[k] = v[a:b]
            yield out

    def dataset(self, pl: Playlists, batch_size: int):
        import tensorflow as tf

        return tf.data.Dataset.from_generator(lambda: self.batches(pl, batch_size),
                                              output_signature=self.signature(pl, batch_size)).prefetch(2)


# rows of seed-dropout draws made at once: the draws are the same whichever the chunk (one uniform per cell, in
# row order), only the transient [rows, max_seeds] float64 buffer is bounded
DROP_CHUNK = 65536


def draw_examples(pl: Playlists, cfg: TwoTowerConfig, rng: np.random.Generator) -> tuple[list, list, list]:
    """(contexts, targets, title rows) of one epoch in playlist order, before shuffling.

    From each playlist of n tracks, ``max(1, round(n * examples_per_track))`` examples: a context of size 0
    (title-only, if titled), or log-uniform in [1, min(n - 1, max_context)], taken as a prefix or a random
    subset; the target is one of the playlist's other tracks. Contexts longer than ``max_seeds`` keep a
    random subset. The title row is -1 when the example has no title.
    """
    S = cfg.max_seeds
    contexts, targets, title_rows = [], [], []
    for p, arr in enumerate(pl.tracks):
        n = len(arr)
        if n < 2:
            continue
        m = max(1, int(round(n * cfg.examples_per_track)))
        hi = min(n - 1, cfg.max_context)
        empty = (rng.random(m) < cfg.empty_context_rate) & pl.has_title[p]
        log_sizes = np.floor(np.exp(rng.random(m) * math.log(hi + 1))).astype(int)
        uniform_sizes = rng.integers(1, hi + 1, size=m)
        sizes = np.where(rng.random(m) < cfg.uniform_context_rate, uniform_sizes, log_sizes).clip(1, hi)
        sizes[empty] = 0
        prefix = rng.random(m) < cfg.prefix_rate
        drop_title = rng.random(m) < cfg.title_drop_rate
        for c, pre, drop in zip(sizes.tolist(), prefix.tolist(), drop_title.tolist(), strict=True):
            if pre:
                ctx = arr[:c]
                tgt = arr[rng.integers(c, n)]
            else:
                perm = rng.permutation(n)
                ctx, tgt = arr[perm[:c]], arr[perm[c]]
            if len(ctx) > S:
                ctx = ctx[np.sort(rng.choice(len(ctx), S, replace=False))]
            contexts.append(ctx)
            targets.append(tgt)
            title_rows.append(p if pl.has_title[p] and (c == 0 or not drop) else -1)
    return contexts, targets, title_rows


def make_examples(pl: Playlists, cfg: TwoTowerConfig, rng: np.random.Generator, n_candidates: int) -> Examples:
    """One epoch of (context, title?) -> target examples (``draw_examples``), shuffled; deterministic for
    ``rng``."""
    S = cfg.max_seeds
    contexts, targets, title_rows = draw_examples(pl, cfg, rng)
    n_ex = len(targets)
    order = rng.permutation(n_ex)
    shuffled = [contexts[j] for j in order.tolist()]
    del contexts
    lengths = np.fromiter(map(len, shuffled), np.int64, n_ex)
    offsets = np.zeros(n_ex + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    context = np.concatenate(shuffled).astype(np.int32, copy=False) if n_ex else np.zeros(0, np.int32)
    del shuffled
    # the dropout draws cover every [max_seeds] cell of every example, as the padded form did; padding (id 0)
    # is never dropped, so only the cells holding a track are kept
    seed_drop = np.zeros(len(context), bool)
    cols = np.arange(S)
    for a in range(0, n_ex, DROP_CHUNK):
        b = min(a + DROP_CHUNK, n_ex)
        draws = rng.random((b - a, S)) < cfg.id_dropout
        seed_drop[offsets[a]:offsets[b]] = draws[cols[None, :] < lengths[a:b, None]]
    seed_drop &= context > 0
    target = np.asarray(targets, np.int32)[order]
    trow = np.asarray(title_rows, np.int64)[order]
    target_drop = rng.random(n_ex) < cfg.id_dropout
    extra = {}
    if cfg.dropout > 0:
        extra["rng"] = rng.integers(0, 2**31 - 1, size=(n_ex, 2)).astype(np.int64)
    if cfg.mixed_negatives:
        extra["negatives"] = rng.integers(1, n_candidates + 1, size=(n_ex, cfg.mixed_negatives)).astype(np.int32)
    return Examples(context, offsets, seed_drop, target, trow, target_drop, extra, S)
