"""``TwoTowerRecommender``: the estimator surface of the two-tower (fit, candidates, recommend, save, load).

It assembles the parts of this package: the item table (``items.py``), title layers (``text.py``), towers
(``towers.py``) and their retrieval model (``retrieval.py``), the optimizer (``optimizer.py``), the example
sampler (``examples.py``) and the training loop (``training.py``); ``export.py`` writes the SavedModel and
``bundle.py`` the bundle folder. Inference scores against cached candidate embeddings with a numpy scan.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm import tqdm

import modules  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from modules import ann
from modules.base import PlaylistRecommender, popularity_order
from modules.challenge import SplitError, split_store, validation_per_category
from modules.two_tower.bundle import VARIABLES, read_bundle, write_bundle
from modules.two_tower.config import TwoTowerConfig
from modules.two_tower.examples import encode_playlists, playlist_items, sampling_probability
from modules.two_tower.items import build_items
from modules.two_tower.optimizer import make_optimizer, optimizer_name
from modules.two_tower.text import fit_title_vectorizers, title_vectorizers

if TYPE_CHECKING:
    from modules.uri_pool import UriPool

log = logging.getLogger(__name__)


class TwoTowerRecommender(PlaylistRecommender):
    """Inductive TFRS two-tower: answers any playlist from its seed tracks and title, no retraining.

    Parameters
    ----------
    config : TwoTowerConfig, dict or None, default=None
        Model and training configuration (``None``: the defaults).
    features : DataFrame or None, default=None
        Audio features: ``track_uri`` plus numeric columns (the ``AUDIO_FEATURES`` present are used, e.g.
        ``modules.catalog.read_catalog()``); ``None`` reads the shipped catalog. Tracks absent from it use the
        learned "missing" vector. With ``artist_uri``/``album_uri`` columns, tracks never seen in training
        still get their artist and album when they appear as seeds.
    seed : int, default=0
        Seeds weight initialization and example sampling: same seed, same data → same scores.
    checkpoint_dir : path or None, default=None
        Where to keep per-epoch checkpoints; a run interrupted there resumes from its last finished epoch
        when started again with the same data and configuration.
    show_progress : bool, default=False
        tqdm bars per epoch (loss, examples/s).
    **params
        Overrides of ``config`` fields, e.g. ``epochs=5`` (what ``--params`` passes).

    Attributes
    ----------
    curve_ : list of dict
        Per epoch: loss, seconds, examples/s, validation metrics.
    candidate_embeddings_ : ndarray of shape (n_candidates, embedding_dim)
        Cached candidate-tower outputs (``candidates`` scores against these with a matmul); with ``ann_``, the
        index itself, which holds them.
    ann_ : modules.ann.ClusterIndex or None
        The index ``candidates`` searches instead of scanning every candidate (catalogs of at least
        ``modules.ann.MIN_ROWS`` candidates: ``save`` builds it, ``load`` reads it); ``None``: exact scan.

    Examples
    --------
    >>> rec = TwoTowerRecommender(epochs=5).fit(store)                       # doctest: +SKIP
    >>> uris, scores = rec.candidates(["spotify:track:..."], "chill", n=1000)  # doctest: +SKIP
    >>> rec.save("models/demo")                                               # doctest: +SKIP
    """

    ann_: ann.ClusterIndex | None = None  # set by fit, load and add_index; a class default: every path has it

    def __init__(self, config: TwoTowerConfig | dict | None = None, *, features: pd.DataFrame | None = None,
                 seed: int = 0, checkpoint_dir: str | Path | None = None, show_progress: bool = False,
                 **params):
        self.config = config
        self.features = features
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.show_progress = show_progress
        self.params = params

    def _resolved_config(self) -> TwoTowerConfig:
        base = self.config
        if isinstance(base, TwoTowerConfig):
            base = base.params()
        return TwoTowerConfig.from_dict({**(base or {}), **self.params})

    # -- fit --
    def fit(self, store, pids=None, *, validation=None):
        """Train on the playlists of ``store`` (restricted to ``pids``); returns ``self``.

        A validation split (``validation_per_category`` playlists per category) is carved from these
        playlists with ``split_store``; its held-out tracks are never trained on (its seeds are). The epoch
        with the best validation recall@500 is kept. Turns on TensorFlow op determinism for the process
        (``tf.config.experimental.enable_op_determinism``), which same seed ⇒ same scores relies on.

        Parameters
        ----------
        store : PlaylistStore
            The training playlists.
        pids : array-like of int or None, default=None
            Train on these playlists only (``None``: all of ``store``).
        validation : object or None, default=None
            A validation split computed once by the caller and shared with other parts (the hybrid's): its
            ``.split`` (what ``modules.challenge.split_store`` returns for these ``pids``, or ``None`` for no
            validation: every epoch is trained and the last kept) is used instead of carving one, and its
            ``.per_category`` (int) is recorded as ``config_.validation_per_category``. ``None``: carve it here.
        """
        import tensorflow as tf

        from modules.two_tower import training
        from modules.two_tower.retrieval import make_model
        from modules.two_tower.towers import make_towers

        cfg = self._resolved_config()
        t_start = time.perf_counter()
        self.config_ = cfg
        self._encode_fn = self.query_encoder_ = None  # validation runs the Keras tower being trained
        tf.keras.utils.set_random_seed(int(self.seed))
        tf.config.experimental.enable_op_determinism()
        all_pids = store.playlists["pid"].to_numpy() if pids is None else np.asarray(pids, np.int64)
        cfg, split = self._validation_split(store, all_pids, cfg, validation)
        self.config_ = cfg
        train_pids = split.train_pids if split is not None else np.unique(all_pids)
        # Validation playlists are left out of training altogether, seeds included, as test playlists are.
        items = build_items(store, train_pids, self.features, cfg)
        self.items_ = items
        tracks, titles = playlist_items(store, train_pids, items)
        self.words_layer_, self.ngrams_layer_ = fit_title_vectorizers(cfg, titles)
        pl = encode_playlists(tracks, titles, self.words_layer_, self.ngrams_layer_)
        self.query_tower_, self.candidate_tower_ = make_towers(items, cfg, self.words_layer_.vocabulary_size(),
                                                               self.ngrams_layer_.vocabulary_size())
        model = make_model(self.query_tower_, self.candidate_tower_, cfg, sampling_probability(tracks, items, cfg))
        self.model_ = model
        self.optimizer_ = optimizer_name(cfg, len(items.uris))
        log.info("two-tower: %d tracks, optimizer %s", len(items.uris), self.optimizer_)
        optimizer = make_optimizer(cfg, len(items.uris))
        training.build_variables(model, optimizer, cfg)
        self.fallback_ = popularity_order(store, train_pids)
        fingerprint = self._fingerprint(store, train_pids, cfg)

        def validate() -> dict:
            self._cache_candidates()
            self.fitted_ = True
            return training.validation_summary(self, split, store)

        state = training.train(model, optimizer, pl, items.n_candidates, cfg, seed=int(self.seed),
                               fingerprint=fingerprint, validate=validate if split is not None else None,
                               checkpoint_dir=self.checkpoint_dir, show_progress=self.show_progress)
        self.curve_ = state["curve"]
        self.best_epoch_ = state["best_epoch"] if split is not None else state["epoch"]
        self.fit_seconds_ = round(time.perf_counter() - t_start, 1)
        self.fingerprint_ = fingerprint
        self._cache_candidates()
        self.round_tables()
        self.fitted_ = True
        return self

    def round_tables(self) -> TwoTowerRecommender:
        """Round the query tower's embedding tables and the candidate table to what a bundle keeps
        (``towers.TABLE_DTYPE``, float16), answer with the NumPy query tower and release the training state (the
        Keras tower included); ``fit`` ends with it. Returns ``self``."""
        self._keras_parts()  # fit released its Keras tower; one built from the NumPy tower's weights instead
        self._to_stored(trained=self.query_tower_)
        return self

    def _to_stored(self, trained):
        """Become the model a bundle holds: the query tower with its tables rounded to float16
        (``towers.serving_query_tower``), answering through its NumPy copy (``numpy_query.py``), the
        candidate table rounded the same way, and no training state (the retrieval model, the candidate tower
        and the float32 tables are released). A fitted model and the one ``load`` reads from its bundle
        answer the same."""
        from modules.two_tower.numpy_query import NumpyQueryTower
        from modules.two_tower.title_tokens import TitleTokens
        from modules.two_tower.towers import TABLE_DTYPE, serving_query_tower

        cfg = self.config_
        self.query_tower_ = serving_query_tower(self.items_, cfg, self.words_layer_.vocabulary_size(),
                                                self.ngrams_layer_.vocabulary_size(), trained)
        tokens = TitleTokens(self.words_layer_.get_vocabulary(include_special_tokens=False),
                             self.ngrams_layer_.get_vocabulary(include_special_tokens=False),
                             cfg.max_title_words, cfg.max_title_ngrams)
        paths = NumpyQueryTower.weight_paths(cfg, self.items_)
        self.query_encoder_ = NumpyQueryTower(
            {name: _attribute(self.query_tower_, path.split("/", 1)[1]).numpy() for name, path in paths.items()},
            self.items_, cfg, tokens)
        self.candidate_embeddings_ = self.candidate_embeddings_.astype(TABLE_DTYPE).astype(np.float32)
        # as after ``load``: no Keras parts until ``save`` or the export asks for them (``_keras_parts``)
        self.query_tower_ = self.words_layer_ = self.ngrams_layer_ = None
        self.model_ = self.candidate_tower_ = None
        self._encode_fn = None

    def _keras_parts(self) -> None:
        """Build the Keras title layers and query tower from the NumPy tower's weights when this model was
        loaded (``load`` builds none, so serving never imports TensorFlow); ``save`` and the SavedModel export
        need them."""
        if getattr(self, "query_tower_", None) is not None:
            return
        from modules.two_tower.numpy_query import NumpyQueryTower
        from modules.two_tower.towers import serving_query_tower

        cfg, enc = self.config_, self.query_encoder_
        tokens = enc.tokens
        self.words_layer_, self.ngrams_layer_ = title_vectorizers(cfg, tokens.word_vocab or None,
                                                                  tokens.ngram_vocab or None)
        tower = serving_query_tower(self.items_, cfg, tokens.n_words, tokens.n_ngrams)
        for name, path in NumpyQueryTower.weight_paths(cfg, self.items_).items():
            variable = _attribute(tower, path.split("/", 1)[1])
            variable.assign(enc.w[name].astype(variable.dtype.as_numpy_dtype))
        self.query_tower_ = tower

    def _validation_split(self, store, all_pids, cfg: TwoTowerConfig, validation):
        """(config with ``validation_per_category`` resolved, the validation split or ``None``)."""
        if validation is not None:
            cfg = dataclasses.replace(cfg, validation_per_category=validation.per_category)
            cfg.validate()
            return cfg, validation.split
        if cfg.validation_per_category == "auto":
            cfg = dataclasses.replace(cfg, validation_per_category=validation_per_category(len(np.unique(all_pids))))
        split = None
        if cfg.validation_per_category > 0:
            try:
                split = split_store(store, per_category=cfg.validation_per_category, seed=int(self.seed),
                                    pids=all_pids)
            except SplitError as err:
                log.warning("no validation split (%s); training %d epochs without early stopping", err, cfg.epochs)
        return cfg, split

    def _fingerprint(self, store, train_pids, cfg) -> str:
        """What a checkpoint must match to be resumed: data, seed and config (bar epochs and patience)."""
        from modules.two_tower.training import data_fingerprint

        return data_fingerprint(store, train_pids, cfg, int(self.seed), len(self.items_.uris),
                                self.items_.feature_columns)

    # -- inference --
    def _cache_candidates(self):
        """Run the candidate tower over every candidate once (``candidate_embeddings_``)."""
        import tensorflow as tf

        n = self.items_.n_candidates
        ids = np.arange(1, n + 1, dtype=np.int32)
        out = [self.candidate_tower_(tf.constant(ids[a:a + 65536])).numpy() for a in range(0, n, 65536)]
        dim = self.config_.embedding_dim + int(self.config_.item_bias)
        self.candidate_embeddings_ = (np.concatenate(out) if out else np.zeros((0, dim), np.float32)).astype(
            np.float32)
        self.candidate_uris_ = self.items_.uris[:n]
        self.ann_ = None

    def encode_queries(self, seed_lists: list[list[str]], titles: list[str | None]) -> np.ndarray:
        """Query-tower outputs for playlists, ``[len(seed_lists), embedding_dim]``; unknown seeds are ignored.

        A fitted or loaded model runs its NumPy query tower (``numpy_query.py``), one playlist at a time; the
        Keras tower (all playlists in one padded batch) only runs during training, for validation."""
        idx = self.items_.index
        enc = getattr(self, "query_encoder_", None)
        if enc is not None:
            dim = self.config_.embedding_dim + int(self.config_.item_bias)
            rows = [enc.encode([idx[u] for u in s if u in idx], t if isinstance(t, str) else None)
                    for s, t in zip(seed_lists, titles, strict=True)]
            return np.stack(rows) if rows else np.zeros((0, dim), np.float32)
        import tensorflow as tf

        if getattr(self, "_encode_fn", None) is None:
            words, ngrams, tower = self.words_layer_, self.ngrams_layer_, self.query_tower_

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.string)])
            def encode(seeds, titles):
                return tower({"seeds": seeds, "words": words(titles), "ngrams": ngrams(titles)})

            # the concrete function: one signature, so calls skip tf.function's dispatch
            self._encode_fn = encode.get_concrete_function()
        ids = [[idx[u] for u in s if u in idx] for s in seed_lists]
        width = max([len(i) for i in ids] + [1])
        arr = np.zeros((len(ids), width), np.int32)
        for r, i in enumerate(ids):
            arr[r, :len(i)] = i
        t = [x if isinstance(x, str) else "" for x in titles]
        return self._encode_fn(tf.constant(arr), tf.constant(t, dtype=tf.string)).numpy()

    def top_batch(self, seed_lists, titles, n) -> list[tuple[np.ndarray, np.ndarray]]:
        """``candidates`` for several queries (e.g. a playlist and its last seeds), as positions in
        ``candidate_uris_`` instead of URIs (for a later stage that keeps integer ids).

        Each query's answer is exactly what it gets alone: the query tower runs once per query (a batched call
        pads the seeds to the longest list and multiplies other matrix shapes, which changes the float sums), and
        the catalog scan is ``modules.scan.scan``. A tower call costs ~0.5 ms; the scan is shared by the batch.
        With an index (``ann_``) each query scores only the candidates of its probed clusters
        (``modules.ann``), exactly."""
        from modules.scan import scan
        from modules.top_n import top_n

        Q = [self.encode_queries([s], [t])[0] for s, t in zip(seed_lists, titles, strict=True)]
        nc = len(self.candidate_uris_)
        idx = self.items_.index
        if self.ann_ is not None:
            return [self.ann_.search(q, min(n, nc), exclude=[idx[u] - 1 for u in seeds if u in idx and idx[u] <= nc])
                    for q, seeds in zip(Q, seed_lists, strict=True)]
        S = scan(self.candidate_embeddings_, Q)
        out = []
        for r, seeds in enumerate(seed_lists):
            s = S[r]
            ex = [idx[u] - 1 for u in seeds if u in idx and idx[u] <= nc]
            if ex:
                s[ex] = -np.inf
            top = top_n(s, min(n, nc))  # the m best, best first, ties by row (modules.top_n: no whole argpartition)
            top = top[np.isfinite(s[top])]
            out.append((top, s[top].astype(np.float32)))
        return out

    def _candidates_batch(self, seed_lists, titles, n):
        return [(self.candidate_uris_[top].tolist(), scores) for top, scores in self.top_batch(seed_lists, titles, n)]

    def candidates(self, seed_track_uris=(), title: str | None = None, n: int = 1000) -> tuple[list[str], np.ndarray]:
        """The ``n`` best-scoring tracks (seeds excluded) and their scores, best first.

        For a later stage (the hybrid) that re-ranks a top-N: one query-tower call and a numpy matmul over
        the cached candidate embeddings. Unknown seeds are ignored; no seeds and no title still answers.
        """
        self._check_fitted()
        if isinstance(seed_track_uris, str):
            raise TypeError("seed_track_uris must be a list of track URIs, not one string; wrap it in a list.")
        return self._candidates_batch([list(seed_track_uris)], [title], int(n))[0]

    def _recommend(self, seeds, title, k):
        return self._candidates_batch([seeds], [title], k)[0]

    def recommend_batch(self, playlists, k=500, show_progress=False):
        """``recommend`` for challenge-format playlists, 256 per catalog scan (``top_batch``)."""
        playlists = list(playlists)
        self._check_fitted()
        out = []
        for a in tqdm(range(0, len(playlists), 256), desc="recommend", disable=not show_progress):
            chunk = playlists[a:a + 256]
            seeds = [list(dict.fromkeys(t["track_uri"] for t in p.get("tracks", ()))) for p in chunk]
            titles = [p.get("name") if isinstance(p.get("name"), str) and p.get("name").strip() else None
                      for p in chunk]
            for s, (uris, scores) in zip(seeds, self._candidates_batch(seeds, titles, k), strict=True):
                out.append(self._complete(uris, scores, set(s), k))
        return out

    def _check_fitted(self):
        if not getattr(self, "fitted_", False):
            from modules.errors import NotFittedError

            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(store) or load(dir).")

    # -- export / bundle --
    def export_saved_model(self, path: str | Path, k: int | None = None) -> Path:
        """Write a SavedModel answering ``serving_default(seed_track_uris, title)`` with plain TensorFlow
        (``export.py``); ``k`` recommendations per query (default ``config_.k``)."""
        from modules.two_tower.export import export_saved_model

        self._check_fitted()
        self._keras_parts()
        return export_saved_model(self, path, int(min(k or self.config_.k, len(self.candidate_uris_))))

    def save(self, bundle_dir: str | Path, *, ann_min_rows: int | None = ann.MIN_ROWS) -> Path:
        """Write the bundle to ``bundle_dir/two_tower/`` (layout in ``bundle.py``); returns that folder.

        With ``ann_min_rows`` candidates or more (``None``: never) the candidate index is built if missing,
        kept as ``ann_`` and written (``ann.npz``); a model that has one writes it."""
        self._check_fitted()
        root = write_bundle(self, bundle_dir)
        self.add_index(ann_min_rows)
        if self.ann_ is not None:
            self.ann_.save(root)
        return root

    def add_index(self, min_rows: int | None = 0, **build) -> TwoTowerRecommender:
        """Build ``ann_`` over the candidate table when it has ``min_rows`` rows or more (``None``: never;
        ``build``: ``nlist``, ``nprobe``, ``seed`` of ``ClusterIndex.build``); the index then holds the table
        (float16, the same values) and stands for it as ``candidate_embeddings_``. An existing index is kept unless
        ``build`` is given (``modules.ann.ensure_index``). Returns ``self``."""
        self.ann_ = ann.ensure_index(self.candidate_embeddings_, self.ann_, min_rows, **build)
        if self.ann_ is not None:
            self.candidate_embeddings_ = self.ann_
        return self

    def share_uris(self, pool: UriPool) -> None:
        """Hold ``pool``'s track URI strings (``modules.uri_pool``: equal strings, so no answer changes) in the
        item table and ``candidate_uris_`` (its head)."""
        self.items_.share_uris(pool)
        self.candidate_uris_ = self.items_.uris[:len(self.candidate_uris_)]

    @classmethod
    def load(cls, bundle_dir: str | Path) -> TwoTowerRecommender:
        """A fitted recommender from ``bundle_dir`` (the bundle or its ``two_tower/`` folder).

        Reads the SavedModel's variables with NumPy (``checkpoint.py``) into the NumPy query tower: loading
        and recommending do not import TensorFlow (``save`` and ``export_saved_model`` do).

        Raises
        ------
        BundleError
            When files are missing (they are named) or the bundle was written by another format version.
        """
        from modules.errors import BundleError
        from modules.two_tower.numpy_query import NumpyQueryTower
        from modules.two_tower.title_tokens import TitleTokens

        found = read_bundle(bundle_dir)
        cfg, meta = found.config, found.meta
        self = cls(cfg, seed=meta.get("seed", 0))
        self.config_ = cfg
        self.items_ = found.items
        tokens = TitleTokens(found.vocab["words"], found.vocab["ngrams"], cfg.max_title_words, cfg.max_title_ngrams)
        self.query_encoder_, extra = NumpyQueryTower.from_checkpoint(found.root / VARIABLES, self.items_, cfg, tokens,
                                                                     {"candidates": "candidates"})
        self.query_encoder_.check(f"two-tower bundle {found.root}")
        n = self.items_.n_candidates
        table = extra.pop("candidates")
        if table.shape != (n, cfg.embedding_dim + int(cfg.item_bias)):
            raise BundleError(f"two-tower bundle {found.root}: the SavedModel's candidate table is {table.shape}, "
                              f"config.json/items.parquet say ({n}, {cfg.embedding_dim + int(cfg.item_bias)}). "
                              "Re-train it.")
        from modules.ann import ClusterIndex

        self.ann_ = ClusterIndex.load(found.root, table)
        # with an index the index holds the table (float16) and stands for it
        self.candidate_embeddings_ = table.astype(np.float32) if self.ann_ is None else self.ann_
        self.candidate_uris_ = self.items_.uris[:n]
        del table
        self.query_tower_ = self.words_layer_ = self.ngrams_layer_ = None
        self.model_ = self.candidate_tower_ = self._encode_fn = None
        self.fallback_ = list(meta.get("fallback", []))
        self.best_epoch_ = meta.get("best_epoch")
        self.optimizer_ = meta.get("optimizer")
        self.fingerprint_ = meta.get("fingerprint")
        self.curve_ = found.curve
        self.fitted_ = True
        return self


def _attribute(obj, path: str):
    """``obj.a.b.c`` for ``path`` "a/b/c" (a weight of a Keras tower by its object path)."""
    for name in path.split("/"):
        obj = getattr(obj, name)
    return obj
