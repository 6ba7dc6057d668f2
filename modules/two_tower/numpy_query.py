"""The query tower in NumPy: ``towers.QueryTower``'s serving copy computed without TensorFlow.

A bundle's query tower is small (embedding tables kept as float16, two dense layers), so serving runs it in NumPy
from the SavedModel's variables (``checkpoint.py`` reads them) and titles through ``title_tokens.py``: loading a
bundle to recommend never imports TensorFlow (~850 MiB resident, +130-180 MiB on its first call). Training and
the SavedModel export still use the Keras tower; ``tests/test_two_tower_numpy.py`` checks that both give the same
query vectors (within float32 rounding: the sums run in another order) and the same top-k.

The computation, per query (one at a time, so an answer never depends on the others in a batch): each seed's
track + artist + album embeddings (+ the audio layer of its standardized features, or the learned "missing"
vector), mean-pooled; the title's word and trigram embeddings, each mean-pooled; three flags (has seeds, has a
title, log1p(seeds) / 5); with ``pooling="mean+max"`` the per-dimension max of the seeds; a ReLU layer and a
linear layer whose output is added to the pooled seeds; L2-normalized; a constant 1 appended for the candidates'
bias when ``item_bias``.
"""

from __future__ import annotations

import numpy as np

from modules.two_tower.checkpoint import read_checkpoint, variable_keys
from modules.two_tower.config import TwoTowerConfig
from modules.two_tower.items import ItemTable
from modules.two_tower.title_tokens import TitleTokens

# weight name -> its object path under the SavedModel's query tower (``towers.QueryTower``'s attributes)
TABLES = {"track": "seed_encoder/track_emb/embeddings", "artist": "seed_encoder/artist_emb/embeddings",
          "album": "seed_encoder/album_emb/embeddings", "words": "word_emb/embeddings",
          "ngrams": "ngram_emb/embeddings"}
DENSE = {"hidden_kernel": "hidden/kernel", "hidden_bias": "hidden/bias", "out_kernel": "out/kernel",
         "out_bias": "out/bias"}
AUDIO = {"audio_kernel": "seed_encoder/audio/kernel", "audio_bias": "seed_encoder/audio/bias",
         "missing": "seed_encoder/missing"}
L2_EPSILON = 1e-12  # tf.math.l2_normalize's


class NumpyQueryTower:
    """``encode(item_ids, title)`` -> the query vector ``[embedding_dim (+1)]`` float32.

    Parameters
    ----------
    weights : dict of str to ndarray
        The keys of ``TABLES``, ``DENSE`` (and ``AUDIO`` when the tower uses audio features): embedding tables
        as stored (float16), dense layers float32.
    items : ItemTable
        Item id -> track/artist/album row and standardized audio features.
    cfg : TwoTowerConfig
    tokens : TitleTokens
        The title vocabularies.
    """

    def __init__(self, weights: dict[str, np.ndarray], items: ItemTable, cfg: TwoTowerConfig, tokens: TitleTokens):
        self.cfg, self.items, self.tokens = cfg, items, tokens
        self.w = dict(weights)
        self.use_audio = bool(cfg.audio and items.features.shape[1] > 0)
        # a bundle's tower keeps the features as it keeps the tables (float16) and reads them as float32
        self.features = items.features.astype(self.w["track"].dtype) if self.use_audio else None

    @classmethod
    def weight_paths(cls, cfg: TwoTowerConfig, items: ItemTable) -> dict[str, str]:
        """Weight name -> its object path in the SavedModel (``query_tower/...``)."""
        names = {**TABLES, **DENSE, **(AUDIO if cfg.audio and items.features.shape[1] > 0 else {})}
        return {k: f"query_tower/{v}" for k, v in names.items()}

    @classmethod
    def from_checkpoint(cls, prefix, items: ItemTable, cfg: TwoTowerConfig, tokens: TitleTokens,
                        extra: dict[str, str] | None = None):
        """The tower from the checkpoint at ``prefix`` (a SavedModel's ``variables/variables``), and the tensors
        of ``extra`` (name -> object path, e.g. ``{"candidates": "candidates"}``) as a dict."""
        paths = cls.weight_paths(cfg, items)
        keys = variable_keys(prefix, [*paths.values(), *(extra or {}).values()])
        # the embedding tables memory-mapped: a query reads its seeds' rows (at 1M playlists the tables are 0.4 GiB)
        tensors = read_checkpoint(prefix, list(keys.values()), mapped={keys[paths[t]] for t in TABLES})
        got = {name: tensors[keys[p]] for name, p in paths.items()}
        return cls(got, items, cfg, tokens), {name: tensors[keys[p]] for name, p in (extra or {}).items()}

    def check(self, where: str) -> None:
        """Raise ``BundleError`` when the weights' shapes do not fit the items, vocabularies and config."""
        from modules.errors import BundleError

        cfg, it, d = self.cfg, self.items, self.cfg.embedding_dim
        n_in = 3 * d + 3 + (d if cfg.pooling == "mean+max" else 0)
        want = {"track": (len(it.track_vocab) + cfg.track_oov_buckets + 1, d),
                "artist": (len(it.artist_vocab) + cfg.artist_oov_buckets + 1, d),
                "album": (len(it.album_vocab) + cfg.album_oov_buckets + 1, d),
                "words": (self.tokens.n_words, d), "ngrams": (self.tokens.n_ngrams, d),
                "hidden_kernel": (n_in, cfg.hidden_dim), "hidden_bias": (cfg.hidden_dim,),
                "out_kernel": (cfg.hidden_dim, d), "out_bias": (d,)}
        if self.use_audio:
            want |= {"audio_kernel": (it.features.shape[1], d), "audio_bias": (d,), "missing": (d,)}
        bad = {k: (tuple(self.w[k].shape), v) for k, v in want.items() if tuple(self.w[k].shape) != v}
        if bad:
            raise BundleError(f"{where}: the SavedModel's variables do not match config.json/vocab "
                              f"(shape found, expected: {bad}). Re-train it.")

    def _items(self, ids: np.ndarray) -> np.ndarray:
        """``ItemEncoder``: item ids [n] -> [n, d] float32."""
        w, it = self.w, self.items
        e = (w["track"][it.track[ids]].astype(np.float32) + w["artist"][it.artist[ids]].astype(np.float32)
             + w["album"][it.album[ids]].astype(np.float32))
        if self.use_audio:
            a = self.features[ids].astype(np.float32) @ w["audio_kernel"] + w["audio_bias"]
            e += np.where(it.has_features[ids][:, None], a, w["missing"])
        return e

    @staticmethod
    def _mean(x: np.ndarray, d: int) -> np.ndarray:
        return x.sum(axis=0, dtype=np.float32) / np.float32(len(x)) if len(x) else np.zeros(d, np.float32)

    def encode(self, item_ids, title: str | None) -> np.ndarray:
        """The query vector of a playlist: its seeds as item ids (``ItemTable.index``; unknown seeds already
        dropped, repeats kept as the Keras tower keeps them) and its title (``None`` or "" for none)."""
        cfg, w, d = self.cfg, self.w, self.cfg.embedding_dim
        ids = np.asarray(item_ids, np.int64)
        e = self._items(ids)
        pooled = self._mean(e, d)
        words, ngrams = self.tokens(title)
        wv = self._mean(w["words"][words].astype(np.float32), d)
        gv = self._mean(w["ngrams"][ngrams].astype(np.float32), d)
        n = np.float32(len(ids))
        flags = np.array([n > 0, bool(words or ngrams), np.log1p(n) / np.float32(5.0)], np.float32)
        parts = [pooled, wv, gv, flags]
        if cfg.pooling == "mean+max":
            parts.append(e.max(axis=0) if len(ids) else np.zeros(d, np.float32))
        x = np.concatenate(parts)
        h = np.maximum(x @ w["hidden_kernel"] + w["hidden_bias"], np.float32(0))
        q = h @ w["out_kernel"] + w["out_bias"] + pooled
        q = q / np.sqrt(np.maximum(np.dot(q, q), np.float32(L2_EPSILON)))
        if cfg.item_bias:
            q = np.concatenate([q, np.ones(1, np.float32)])
        return q.astype(np.float32, copy=False)
