"""The training-example sampler: training playlists as item ids and title tokens, and one epoch's examples.

Examples mimic the task: from each training playlist several (context = a random subset or a prefix of its
tracks, its title hidden sometimes -> target = one of its other tracks). An epoch is drawn from a seeded numpy
generator (same seed and epoch, same examples, which resuming relies on). Training writes it to disk as it is
drawn and reads it back a batch at a time (``write_examples``, ``EpochFiles``), so memory does not grow with the
examples; ``make_examples`` builds the same epoch in memory (kept ragged, padded one batch at a time), the
reference the tests compare with. ``sampling_probability`` is how often each item lands in a batch's candidate
pool (the logQ correction).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
    # each store track's item id, looked up once per track, then taken by the entries' categorical codes
    item_of = np.fromiter((idx.get(u, 0) for u in entries["track_uri"].cat.categories), np.int64,
                          len(entries["track_uri"].cat.categories))
    item_ids = item_of[entries["track_uri"].cat.codes.to_numpy()]
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
        extra = {k: (v.shape[1:], v.dtype) for k, v in self.extra.items()}
        return batch_signature(pl, batch_size, self.max_seeds, extra)

    def batches(self, pl: Playlists, batch_size: int):
        """Full batches in training order (the remainder is dropped), as dicts of padded arrays."""
        cols = np.arange(self.max_seeds)
        for i in range(self.n_batches(batch_size)):
            a, b = i * batch_size, (i + 1) * batch_size
            lengths = np.diff(self.offsets[a:b + 1])
            lo, hi = self.offsets[a], self.offsets[b]
            drop = np.zeros((batch_size, self.max_seeds), bool)
            drop[cols[None, :] < lengths[:, None]] = self.seed_drop[lo:hi]
            yield padded_rows(pl, self.max_seeds, lengths, self.context[lo:hi], drop, self.target[a:b],
                              self.title_row[a:b], self.target_drop[a:b], {k: v[a:b] for k, v in self.extra.items()})

    def dataset(self, pl: Playlists, batch_size: int):
        return batch_dataset(lambda: self.batches(pl, batch_size), self.signature(pl, batch_size))


def batch_signature(pl: Playlists, batch_size: int, max_seeds: int, extra: dict) -> dict:
    """The ``tf.TensorSpec`` of each array of a batch; ``extra`` maps the optional arrays to (shape tail, dtype)."""
    import tensorflow as tf

    b, s = batch_size, max_seeds
    sig = {"seeds": tf.TensorSpec((b, s), tf.int32), "target": tf.TensorSpec((b,), tf.int32),
           "words": tf.TensorSpec((b, pl.words.shape[1]), tf.int32),
           "ngrams": tf.TensorSpec((b, pl.ngrams.shape[1]), tf.int32),
           "seed_drop": tf.TensorSpec((b, s), tf.bool), "target_drop": tf.TensorSpec((b,), tf.bool)}
    for k, (tail, dtype) in extra.items():
        sig[k] = tf.TensorSpec((b, *tail), tf.as_dtype(dtype))
    return sig


def batch_dataset(batches, signature: dict):
    """A ``tf.data.Dataset`` of the batches a call of ``batches()`` yields, two prepared ahead."""
    import tensorflow as tf

    return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(2)


def padded_rows(pl: Playlists, max_seeds: int, lengths: np.ndarray, context: np.ndarray, drop: np.ndarray,
                target: np.ndarray, title_row: np.ndarray, target_drop: np.ndarray, extra: dict) -> dict:
    """One batch as the model takes it: the rows' contexts (``context`` concatenated, ``lengths`` each) padded to
    ``[n, max_seeds]`` with 0, ``drop`` ([n, max_seeds] bool) the seed dropout, title token rows looked up
    (zeros where ``title_row`` is -1)."""
    mask = np.arange(max_seeds)[None, :] < lengths[:, None]
    seeds = np.zeros((len(lengths), max_seeds), np.int32)
    seeds[mask] = context
    has = title_row >= 0
    out = {"seeds": seeds, "target": target,
           "words": np.where(has[:, None], pl.words[np.maximum(title_row, 0)], 0).astype(np.int32),
           "ngrams": np.where(has[:, None], pl.ngrams[np.maximum(title_row, 0)], 0).astype(np.int32),
           "seed_drop": drop, "target_drop": target_drop}
    out.update(extra)
    return out


# rows of seed-dropout draws made at once: the draws are the same whichever the chunk (one uniform per cell, in
# row order), only the transient [rows, max_seeds] float64 buffer is bounded
DROP_CHUNK = 65536


def playlist_draws(pl: Playlists, cfg: TwoTowerConfig, rng: np.random.Generator):
    """Each playlist's examples in playlist order, before shuffling: per playlist with at least two tracks,
    (contexts, targets, title rows) as lists.

    From each playlist of n tracks, ``max(1, round(n * examples_per_track))`` examples: a context of size 0
    (title-only, if titled), or log-uniform in [1, min(n - 1, max_context)], taken as a prefix or a random
    subset; the target is one of the playlist's other tracks. Contexts longer than ``max_seeds`` keep a
    random subset. The title row is -1 when the example has no title. The draws are taken from ``rng`` as the
    playlists are yielded (the caller must not draw from it in between).
    """
    S = cfg.max_seeds
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
        contexts, targets, title_rows = [], [], []
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
        yield contexts, targets, title_rows


def draw_examples(pl: Playlists, cfg: TwoTowerConfig, rng: np.random.Generator) -> tuple[list, list, list]:
    """(contexts, targets, title rows) of one epoch in playlist order, before shuffling (``playlist_draws``)."""
    contexts, targets, title_rows = [], [], []
    for c, t, r in playlist_draws(pl, cfg, rng):
        contexts += c
        targets += t
        title_rows += r
    return contexts, targets, title_rows


def shuffled_draws(rng: np.random.Generator, n_ex: int, cfg: TwoTowerConfig, n_candidates: int):
    """The draws an epoch takes after its shuffle, in training order and in the order ``rng`` gives them, in
    blocks of ``DROP_CHUNK`` rows: yields (name, first row, array) for "seed_drop" ([rows, max_seeds] bool, one
    draw per cell, the padding included), then "target_drop" ([rows] bool), then the optional "rng"
    ([rows, 2] int64, with ``dropout``) and "negatives" ([rows, mixed_negatives] int32). Drawing by blocks gives
    the values of one call for all rows (``test_compact_examples_give_the_padded_batches``)."""
    blocks = [(a, min(a + DROP_CHUNK, n_ex)) for a in range(0, n_ex, DROP_CHUNK)]
    for a, b in blocks:
        yield "seed_drop", a, rng.random((b - a, cfg.max_seeds)) < cfg.id_dropout
    for a, b in blocks:
        yield "target_drop", a, rng.random(b - a) < cfg.id_dropout
    if cfg.dropout > 0:
        for a, b in blocks:
            yield "rng", a, rng.integers(0, 2**31 - 1, size=(b - a, 2)).astype(np.int64)
    if cfg.mixed_negatives:
        for a, b in blocks:
            yield "negatives", a, rng.integers(1, n_candidates + 1, size=(b - a, cfg.mixed_negatives)).astype(np.int32)


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
    target_drop = np.zeros(n_ex, bool)
    cols = np.arange(S)
    extra = {}
    for name, a, block in shuffled_draws(rng, n_ex, cfg, n_candidates):
        b = a + len(block)
        if name == "seed_drop":
            seed_drop[offsets[a]:offsets[b]] = block[cols[None, :] < lengths[a:b, None]]
        elif name == "target_drop":
            target_drop[a:b] = block
        else:
            extra.setdefault(name, np.empty((n_ex, *block.shape[1:]), block.dtype))[a:b] = block
    seed_drop &= context > 0
    target = np.asarray(targets, np.int32)[order]
    trow = np.asarray(title_rows, np.int64)[order]
    return Examples(context, offsets, seed_drop, target, trow, target_drop, extra, S)


# -- an epoch on disk ------------------------------------------------------------------------------------------------

# one record per example in playlist order: where its context starts in context.bin (in tracks), its length, its
# target and title row
META = np.dtype([("offset", "<i8"), ("length", "<i4"), ("target", "<i4"), ("title_row", "<i4")])


class EpochFiles:
    """One epoch of examples written to a folder (``write_examples``) and read back one batch at a time.

    The examples are stored in playlist order (``context.bin``, ``meta.bin``: a ``META`` record each) and read
    through ``order`` (the epoch's shuffle, 4 bytes an example: the one per-example array held in memory); the
    draws taken after the shuffle are stored in training order (``seed_drop.bin`` as bits, ``target_drop.bin``,
    ``rng.bin``, ``negatives.bin``). Files are read with ``os.pread``, not memory-mapped, so what a batch reads
    does not stay in the process's resident memory. ``batches`` yields the arrays ``make_examples(...).batches``
    does for the same ``rng``, to the bit.
    """

    def __init__(self, folder: Path, n: int, max_seeds: int, order: np.ndarray, extra: dict):
        self.folder, self.n, self.max_seeds, self.order = Path(folder), n, max_seeds, order
        self.extra = extra  # name -> (shape tail, dtype)
        self.row_bytes = {"seed_drop": (max_seeds + 7) // 8, "target_drop": 1}
        self.row_bytes.update({k: int(np.prod(tail, dtype=np.int64)) * np.dtype(dt).itemsize
                               for k, (tail, dt) in extra.items()})
        self._fd = {name: os.open(self.folder / f"{name}.bin", os.O_RDONLY)
                    for name in ("context", "meta", *self.row_bytes)}

    def __len__(self) -> int:
        return self.n

    def n_batches(self, batch_size: int) -> int:
        return self.n // batch_size

    def close(self) -> None:
        for fd in self._fd.values():
            os.close(fd)
        self._fd = {}

    def _block(self, name: str, a: int, b: int) -> np.ndarray:
        """Rows [a, b) of a file stored in training order."""
        size = self.row_bytes[name]
        raw = os.pread(self._fd[name], (b - a) * size, a * size)
        if name == "seed_drop":
            return np.frombuffer(raw, np.uint8).reshape(b - a, size)
        if name == "target_drop":
            return np.frombuffer(raw, bool)
        tail, dtype = self.extra[name]
        return np.frombuffer(raw, dtype).reshape(b - a, *tail)

    def rows(self, pl: Playlists, a: int, b: int) -> dict:
        """Training rows [a, b) as one padded batch."""
        fd, rec = self._fd["meta"], META.itemsize
        meta = np.frombuffer(b"".join(os.pread(fd, rec, k * rec) for k in self.order[a:b].tolist()), META)
        lengths = meta["length"].astype(np.int64)
        fd = self._fd["context"]
        context = np.frombuffer(b"".join(os.pread(fd, 4 * n, 4 * o) for o, n in
                                         zip(meta["offset"].tolist(), lengths.tolist(), strict=True)), np.int32)
        mask = np.arange(self.max_seeds)[None, :] < lengths[:, None]
        drop = np.unpackbits(self._block("seed_drop", a, b), axis=1, count=self.max_seeds).astype(bool) & mask
        drop[mask] &= context > 0
        return padded_rows(pl, self.max_seeds, lengths, context, drop, meta["target"].copy(),
                           meta["title_row"].astype(np.int64), self._block("target_drop", a, b),
                           {k: self._block(k, a, b) for k in self.extra})

    def batches(self, pl: Playlists, batch_size: int, *, n_replicas: int = 1, replicas=(0,), start_batch: int = 0):
        """Full batches in training order (the remainder is dropped) from batch ``start_batch`` on. With
        ``n_replicas`` > 1: of each global batch of ``batch_size`` rows, the slices of ``replicas`` in turn (rows
        ``[r * L, (r + 1) * L)`` of replica ``r``, ``L = batch_size / n_replicas``), which tf.distribute hands to
        this worker's replicas; the replicas' slices together are exactly the single-worker batch."""
        L = batch_size // n_replicas
        for i in range(start_batch, self.n_batches(batch_size)):
            for r in replicas:
                a = i * batch_size + r * L
                yield self.rows(pl, a, a + L)

    def dataset(self, pl: Playlists, batch_size: int, **slices):
        """``batches`` (same arguments) as a ``tf.data.Dataset``."""
        L = batch_size // slices.get("n_replicas", 1)
        return batch_dataset(lambda: self.batches(pl, batch_size, **slices),
                             batch_signature(pl, L, self.max_seeds, self.extra))


def write_examples(pl: Playlists, cfg: TwoTowerConfig, rng: np.random.Generator, n_candidates: int,
                   folder: Path) -> EpochFiles:
    """``make_examples``' epoch (the same draws from ``rng``) written to ``folder`` as it is drawn, a playlist at a
    time, then the shuffle and the draws after it a block at a time: memory holds the shuffle's order (4 bytes an
    example) and a block, not the epoch."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = offset = 0
    with open(folder / "context.bin", "wb") as fc, open(folder / "meta.bin", "wb") as fm:
        for contexts, targets, title_rows in playlist_draws(pl, cfg, rng):
            lengths = np.fromiter(map(len, contexts), np.int64, len(contexts))
            meta = np.empty(len(contexts), META)
            meta["length"] = lengths
            meta["offset"] = offset + np.cumsum(lengths) - lengths
            meta["target"] = targets
            meta["title_row"] = title_rows
            fc.write(np.concatenate(contexts).astype(np.int32, copy=False).tobytes())
            fm.write(meta.tobytes())
            offset += int(lengths.sum())
            n += len(contexts)
    # rng.permutation(n) is np.arange(n) shuffled in place: the same draws, the same order, in half the memory
    order = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    rng.shuffle(order)
    files, extra = {}, {}
    try:
        for name, _, block in shuffled_draws(rng, n, cfg, n_candidates):
            if name not in files:
                files[name] = open(folder / f"{name}.bin", "wb")
                if block.ndim > 1 and name != "seed_drop":
                    extra[name] = (block.shape[1:], block.dtype)
            files[name].write((np.packbits(block, axis=1) if name == "seed_drop" else block).tobytes())
    finally:
        for f in files.values():
            f.close()
    for name in ("seed_drop", "target_drop", *extra):
        (folder / f"{name}.bin").touch()  # (an epoch without a full batch draws nothing)
    return EpochFiles(folder, n, cfg.max_seeds, order, extra)


@contextlib.contextmanager
def epoch_on_disk(pl: Playlists, cfg: TwoTowerConfig, rng: np.random.Generator, n_candidates: int,
                  near: Path | None = None):
    """``write_examples`` into a new temporary folder ``examples-*`` in ``near`` (the checkpoint folder, when it
    exists; else the system's temporary folder), removed with the epoch's files when the block ends."""
    where = near if near is not None and Path(near).is_dir() else None
    with tempfile.TemporaryDirectory(prefix=EPOCH_PREFIX, dir=where) as tmp:
        ex = write_examples(pl, cfg, rng, n_candidates, Path(tmp))
        try:
            yield ex
        finally:
            ex.close()


EPOCH_PREFIX = "examples-"


def remove_stale_epochs(folder: Path) -> None:
    """Remove epoch folders a killed run left in ``folder`` (``epoch_on_disk`` removes its own otherwise)."""
    for d in Path(folder).glob(EPOCH_PREFIX + "*"):
        shutil.rmtree(d, ignore_errors=True)
