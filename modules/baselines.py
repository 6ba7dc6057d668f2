"""The peers every result is reported against: popularity, item-kNN, implicit ALS and the POC's ID two-tower.

A method counts as better only side by side with these, on the same split, fitted on the same training
playlists (docs/two_tower.md). Each is a ``PlaylistRecommender`` (``modules.base``): ``fit(store, pids=None)``
then ``recommend(seeds, title, k)``, deterministic for a given ``seed``.

* ``PopularityRecommender``: the most frequent tracks; a title-only playlist gets the tracks most frequent
  among training playlists whose normalized title matches or shares words with its title.
* ``ItemKNNRecommender``: item-item co-occurrence (cosine or conditional probability); the neighbours of every
  seed are summed. Computed on the fly from the sparse playlist × track matrix (no dense item × item table).
* ``ALSRecommender``: ``implicit`` ALS on the playlist × track matrix; a new playlist is folded in from its
  seeds with ``recalculate_user`` (one least-squares solve), so it needs no retraining.
* ``PlaylistIdTwoTowerRecommender``: the original proof of concept, a TFRS two-tower whose query tower embeds
  the playlist *ID*. A playlist it has not seen can only be answered with the out-of-vocabulary ID's vector
  (trained on a few percent of examples whose ID is masked), i.e. the same, essentially popularity, list for
  every new playlist. It is here to show what the inductive tower (``modules.two_tower``) buys.

Title-only playlists (and playlists none of whose seeds was seen in training) fall back to the title
popularity in every baseline, so the methods differ only where they claim to.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
from scipy import sparse
from tqdm import tqdm

from modules.base import PlaylistRecommender, popularity_order, recommend_challenge
from modules.challenge import Split, split_store
from modules.errors import InputError
from modules.metrics import evaluate

log = logging.getLogger(__name__)

_PUNCT = re.compile(r"[^\w\s]")
ALS_FORMAT = "als-arrays/1"  # ALSRecommender.save's folder
ALS_PARAMS = ("factors", "regularization", "alpha", "iterations", "num_threads", "show_progress", "seed")


def normalize_title(title: str | None) -> str:
    """Lower-case, drop punctuation, collapse whitespace (the MPD's own title normalization).

    ``"Chill  Vibes!!"`` and ``"chill vibes"`` normalize to the same string; ``None`` gives ``""``.
    """
    if not title:
        return ""
    return " ".join(_PUNCT.sub("", str(title).lower()).split())


def _check_param(owner: str, name: str, value, ok: bool, what: str) -> None:
    if not ok:
        raise InputError(f"The {name!r} parameter of {owner} must be {what}. Got {value!r} instead.")


class _Matrix:
    """The training playlist × track matrix with its index maps, shared by the baselines."""

    def __init__(self, store, pids=None):
        inter = store.interactions(pids)
        keep = np.asarray(inter.matrix.getnnz(axis=0)).ravel() > 0  # tracks of these playlists only
        names = store.playlists.set_index("pid")["name"]
        self._set(inter.matrix[:, keep].tocsr().astype(np.float32), inter.pids, inter.track_uris[keep],
                  [normalize_title(names.get(p)) for p in inter.pids.tolist()])

    @classmethod
    def from_arrays(cls, X, pids: np.ndarray, uris: np.ndarray, titles: list[str]) -> _Matrix:
        """The matrix from its parts (``ALSRecommender.load``): ``X`` ``[playlists, tracks]``, normalized titles."""
        self = cls.__new__(cls)
        self._set(X.tocsr().astype(np.float32), pids, uris, titles)
        return self

    def _set(self, X, pids, uris, titles) -> None:
        self.X = X
        self.pids = pids
        self.uris = uris
        self.index = {u: i for i, u in enumerate(self.uris.tolist())}
        self.counts = np.asarray(self.X.sum(axis=0)).ravel()
        self.titles = titles

    def known(self, seeds: Iterable[str]) -> np.ndarray:
        return np.array([self.index[s] for s in seeds if s in self.index], dtype=np.int64)

    def top(self, scores: np.ndarray, k: int, exclude: np.ndarray = ()) -> tuple[list[str], np.ndarray]:
        """The ``k`` best tracks with a positive score, ties broken by popularity then URI (deterministic)."""
        scores = np.asarray(scores, dtype=np.float64).copy()
        if len(exclude):
            scores[exclude] = 0.0
        cand = np.flatnonzero(scores > 0)
        if len(cand) > 4 * k:  # cheap pre-cut that cannot drop any of the true top k
            cut = np.partition(scores[cand], len(cand) - k)[len(cand) - k]
            cand = cand[scores[cand] >= cut]
        order = cand[np.lexsort((self.uris[cand], -self.counts[cand], -scores[cand]))][:k]
        return self.uris[order].tolist(), scores[order].astype(np.float32)


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


class _Baseline(PlaylistRecommender):
    """Shared fit steps: the matrix, the popularity fallback and the title popularity."""

    def _fit_common(self, store, pids):
        self.matrix_ = _Matrix(store, pids)
        self.fallback_ = popularity_order(store, pids)
        self.title_pop_ = _TitlePopularity(self.matrix_)

    def _title_answer(self, title, k, exclude=()):
        s = self.title_pop_.scores(title) if title else None
        if s is None:
            return [], np.zeros(0, np.float32)  # recommend() pads with plain popularity
        return self.matrix_.top(s, k, exclude)

    def _with_title_padding(self, uris, scores, title, k, exclude):
        """Pad a seed-based answer shorter than ``k`` with the title popularity (then ``recommend`` pads)."""
        if len(uris) >= k or not title:
            return uris, scores
        more, _ = self._title_answer(title, k, exclude)
        seen = set(uris)
        extra = [u for u in more if u not in seen][: k - len(uris)]
        floor = float(scores[-1]) if len(scores) else 0.0
        extra_scores = floor - 1e-3 - np.arange(1, len(extra) + 1, dtype=np.float32) * 1e-6
        return uris + extra, np.concatenate([scores, extra_scores]).astype(np.float32)


class PopularityRecommender(_Baseline):
    """The most popular tracks; title-only playlists get the popularity among title-matching playlists.

    Parameters
    ----------
    title_match : bool, default=True
        Use the title for playlists without seeds (popularity among training playlists with the same
        normalized title, or sharing title words, weighted by word overlap). ``False``: plain popularity.
    seed : int, default=0
        Accepted for a uniform interface; the method draws no randomness.

    Examples
    --------
    >>> rec = PopularityRecommender().fit(store)            # doctest: +SKIP
    >>> uris, scores = rec.recommend([], title="chill", k=10)  # doctest: +SKIP
    """

    def __init__(self, *, title_match: bool = True, seed: int = 0):
        self.title_match = title_match
        self.seed = seed

    def fit(self, store, pids=None):
        self._fit_common(store, pids)
        self.fitted_ = True
        return self

    def _recommend(self, seeds, title, k):
        if not seeds and title and self.title_match:
            return self._title_answer(title, k)
        m = self.matrix_
        n = k + len(seeds)
        uris = self.fallback_[:n]
        return uris, np.array([m.counts[m.index[u]] if u in m.index else 0 for u in uris], np.float32)


class ItemKNNRecommender(_Baseline):
    """Item-item co-occurrence kNN: each seed's most similar tracks, similarities summed over the seeds.

    ``sim(i, j) = c_ij / (n_i ** alpha * n_j ** (1 - alpha))`` where ``c_ij`` is the number of training
    playlists holding both tracks and ``n_i`` the number holding ``i``; ``alpha=0.5`` is the cosine,
    ``alpha=1`` the conditional probability of ``j`` given ``i``.

    Parameters
    ----------
    neighbors : int or None, default=None
        Keep only each seed's ``neighbors`` most similar tracks before summing (``None``: all co-occurring
        tracks; on sparse data truncation mostly loses recall).
    alpha : float, default=1.0
        Asymmetry of the normalization: 0.5 is the cosine, 1.0 the conditional probability P(j | i), which
        favours popular neighbours (chosen on a validation split carved from training playlists, see
        docs/two_tower.md).
    title_match : bool, default=True
        Answer playlists without known seeds (and pad short answers) with the title popularity.
    seed : int, default=0
        Accepted for a uniform interface; the method draws no randomness.
    """

    def __init__(self, *, neighbors: int | None = None, alpha: float = 1.0, title_match: bool = True,
                 seed: int = 0):
        self.neighbors = neighbors
        self.alpha = alpha
        self.title_match = title_match
        self.seed = seed

    def fit(self, store, pids=None):
        _check_param("ItemKNNRecommender", "neighbors", self.neighbors,
                     self.neighbors is None or (isinstance(self.neighbors, int) and self.neighbors > 0),
                     "None or a positive int")
        _check_param("ItemKNNRecommender", "alpha", self.alpha, 0.0 <= float(self.alpha) <= 1.0,
                     "a float in [0, 1]")
        self._fit_common(store, pids)
        self.XT_ = self.matrix_.X.T.tocsr()  # tracks × playlists
        n = np.maximum(self.matrix_.counts, 1.0)
        self.row_norm_ = n ** -float(self.alpha)
        self.col_norm_ = n ** -(1.0 - float(self.alpha))
        self.fitted_ = True
        return self

    def similarities(self, seed_index: np.ndarray) -> sparse.csr_matrix:
        """Rows of the item-item similarity matrix for the given track indices, ``[len(seed_index), n_tracks]``.

        Self-similarity is zeroed; with ``neighbors`` set, each row keeps its largest ``neighbors`` entries.
        """
        co = (self.XT_[seed_index] @ self.matrix_.X).tocsr()  # co-occurrence counts
        co = sparse.diags(self.row_norm_[seed_index]) @ co @ sparse.diags(self.col_norm_)
        co = co.tocsr()
        co[np.arange(len(seed_index)), seed_index] = 0.0
        co.eliminate_zeros()
        if self.neighbors is not None:
            co = _keep_top_per_row(co, self.neighbors, self.matrix_.counts)
        return co

    def _recommend(self, seeds, title, k):
        idx = self.matrix_.known(seeds)
        use_title = title if self.title_match else None
        if len(idx) == 0:
            return self._title_answer(use_title, k)
        scores = np.asarray(self.similarities(idx).sum(axis=0)).ravel()
        uris, s = self.matrix_.top(scores, k, exclude=idx)
        return self._with_title_padding(uris, s, use_title, k, idx)


def _keep_top_per_row(m: sparse.csr_matrix, n: int, counts: np.ndarray) -> sparse.csr_matrix:
    """Keep the ``n`` largest entries of each CSR row (ties: more popular, then lower index)."""
    m = m.tocsr()
    rows, cols, vals = [], [], []
    for r in range(m.shape[0]):
        a, b = m.indptr[r], m.indptr[r + 1]
        c, v = m.indices[a:b], m.data[a:b]
        if len(c) > n:
            keep = np.lexsort((c, -counts[c], -v))[:n]
            c, v = c[keep], v[keep]
        rows.append(np.full(len(c), r))
        cols.append(c)
        vals.append(v)
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape)


class ALSRecommender(_Baseline):
    """``implicit`` ALS on the playlist × track matrix; new playlists folded in from their seeds.

    A new playlist's factors are one regularized least-squares solve against the item factors
    (``AlternatingLeastSquares.recalculate_user``), so any playlist is answered without retraining. Playlists
    with no seed seen in training get the title popularity.

    Parameters
    ----------
    factors : int, default=128
        Latent dimension.
    regularization : float, default=0.05
        L2 penalty.
    alpha : float, default=10.0
        Confidence of an observed (playlist, track) pair (``C = 1 + alpha`` in Hu et al.'s notation).
    iterations : int, default=15
        ALS sweeps.
    num_threads : int, default=0
        Threads for implicit (0 = all cores). The result does not depend on it.
    show_progress : bool, default=False
        Show implicit's progress bar during ``fit``.
    seed : int, default=0
        Seeds the initial factors.

    Notes
    -----
    The defaults were chosen on a validation split carved from the training playlists of the 3,000-playlist
    world (``benchmarks/two_tower_tune.py --method als``; docs/two_tower.md has the grid and its numbers).
    """

    def __init__(self, *, factors: int = 128, regularization: float = 0.05, alpha: float = 10.0,
                 iterations: int = 15, num_threads: int = 0, show_progress: bool = False, seed: int = 0):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.num_threads = num_threads
        self.show_progress = show_progress
        self.seed = seed

    def fit(self, store, pids=None):
        for name in ("factors", "iterations"):
            v = getattr(self, name)
            _check_param("ALSRecommender", name, v, isinstance(v, int) and v > 0, "a positive int")
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        self._fit_common(store, pids)
        with threadpool_limits(1, "blas"):  # implicit's own threads do the work; BLAS threads only contend
            model = AlternatingLeastSquares(factors=self.factors, regularization=float(self.regularization),
                                            alpha=float(self.alpha), iterations=self.iterations,
                                            num_threads=self.num_threads, random_state=self.seed)
            model.fit(self.matrix_.X, show_progress=self.show_progress)
        self.model_ = model
        self._YtY = None
        self.fitted_ = True
        return self

    # -- persistence: arrays, Parquet and JSON (no pickle) ---------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted model to folder ``path``: ``config.json`` (parameters), ``item_factors.npy``,
        ``matrix.npz`` (the training playlist × track matrix, scipy sparse), ``tracks.parquet`` (the matrix's
        track URIs), ``playlists.parquet`` (its playlist ids and normalized titles) and ``fallback.parquet`` (the
        popularity order). The training playlists' own factors are not written: a playlist is always folded in
        from its seeds."""
        import pandas as pd

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        m, model = self.matrix_, self.model_
        config = {"format": ALS_FORMAT, "params": {k: getattr(self, k) for k in ALS_PARAMS},
                  "model": {"factors": int(model.factors), "regularization": float(model.regularization),
                            "alpha": float(model.alpha), "iterations": int(model.iterations)}}
        (path / "config.json").write_text(json.dumps(config, indent=1))
        np.save(path / "item_factors.npy", np.asarray(model.item_factors), allow_pickle=False)
        sparse.save_npz(path / "matrix.npz", m.X.tocsr())
        pd.DataFrame({"track_uri": np.asarray(m.uris, dtype=object)}).to_parquet(path / "tracks.parquet", index=False)
        pd.DataFrame({"pid": np.asarray(m.pids, np.int64), "title": m.titles}).to_parquet(
            path / "playlists.parquet", index=False)
        pd.DataFrame({"track_uri": [str(u) for u in self.fallback_]}).to_parquet(path / "fallback.parquet",
                                                                                  index=False)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ALSRecommender:
        """A model written by ``save``; reads only JSON, Parquet and arrays (``allow_pickle=False``)."""
        import pandas as pd
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"no {path / 'config.json'}: {path} holds no ALS model (write one with "
                                    "ALSRecommender.save)")
        config = json.loads((path / "config.json").read_text())
        if config.get("format") != ALS_FORMAT:
            raise ValueError(f"{path} holds ALS format {config.get('format')!r}; this version reads {ALS_FORMAT!r}. "
                             "Retrain the bundle with python -m modules train.")
        self = cls(**{k: v for k, v in config["params"].items() if k in ALS_PARAMS})
        try:
            factors = np.load(path / "item_factors.npy", allow_pickle=False)
        except ValueError as err:  # e.g. an array of Python objects, which only the pickle loader reads
            raise ValueError(f"{path / 'item_factors.npy'} holds more than numbers ({err}); it was not written by "
                             "this package: retrain the bundle.") from None
        X = sparse.load_npz(path / "matrix.npz").tocsr()  # scipy reads it with allow_pickle=False
        uris = pd.read_parquet(path / "tracks.parquet")["track_uri"].to_numpy().astype(object)
        playlists = pd.read_parquet(path / "playlists.parquet")
        if factors.ndim != 2 or factors.shape[0] != len(uris) or X.shape != (len(playlists), len(uris)):
            raise ValueError(f"{path}: item_factors {factors.shape}, matrix {X.shape}, {len(uris)} tracks and "
                             f"{len(playlists)} playlists do not fit together; copy or retrain the bundle.")
        spec = config["model"]
        with threadpool_limits(1, "blas"):  # as in fit: implicit warns about BLAS threads otherwise
            model = AlternatingLeastSquares(factors=int(spec["factors"]), regularization=float(spec["regularization"]),
                                            alpha=float(spec["alpha"]), iterations=int(spec["iterations"]),
                                            num_threads=self.num_threads, random_state=self.seed)
        model.item_factors = factors
        self.model_ = model
        self.matrix_ = _Matrix.from_arrays(X, playlists["pid"].to_numpy(np.int64), uris,
                                           [str(t) for t in playlists["title"]])
        self.fallback_ = [str(u) for u in pd.read_parquet(path / "fallback.parquet")["track_uri"]]
        self.title_pop_ = _TitlePopularity(self.matrix_)
        self._YtY = None
        self.fitted_ = True
        return self

    def fold_in(self, seed_index: np.ndarray) -> np.ndarray:
        """Factors of a new playlist holding the given track indices, shape ``[factors]``.

        The same least-squares solve as implicit's ``recalculate_user`` (confidence ``alpha`` on each seed,
        ``YtY`` cached), written out so one playlist costs a 128 x 128 solve instead of a call into its thread
        pool (30 ms on a busy machine). Equal to implicit's answer to float32 precision (tested).
        """
        m = self.model_
        Y = np.asarray(m.item_factors)
        ytY = getattr(self, "_YtY", None)
        if ytY is None:
            ytY = self._YtY = (Y.T.astype(np.float64) @ Y.astype(np.float64))
        idx = np.unique(np.asarray(seed_index, np.int64))
        if len(idx) == 0:
            return np.zeros(Y.shape[1], Y.dtype)
        c = float(m.alpha)
        Ys = Y[idx].astype(np.float64)
        A = ytY + float(m.regularization) * np.eye(Y.shape[1]) + (c - 1.0) * (Ys.T @ Ys)
        return np.linalg.solve(A, c * Ys.sum(axis=0)).astype(Y.dtype)

    def scan(self, seed_indices: list[np.ndarray]) -> np.ndarray:
        """Every track's score for each playlist (given by its known seeds' indices), ``[playlists, tracks]``;
        a playlist's row is the same alone or with others (``modules.scan``)."""
        from modules.scan import scan

        return scan(np.asarray(self.model_.item_factors), [self.fold_in(idx) for idx in seed_indices])

    def _recommend(self, seeds, title, k):
        idx = self.matrix_.known(seeds)
        if len(idx) == 0:
            return self._title_answer(title, k)
        scores = self.scan([idx])[0]
        scores[idx] = -np.inf
        top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        top = top[np.lexsort((top, -scores[top]))]
        top = top[np.isfinite(scores[top])]
        return self.matrix_.uris[top].tolist(), scores[top].astype(np.float32)


class PlaylistIdTwoTowerRecommender(_Baseline):
    """The proof of concept: a TFRS two-tower whose query tower embeds the playlist ID.

    Trained like the TFRS retrieval tutorial on (playlist ID, track) pairs with in-batch softmax. A
    playlist outside training has no ID embedding; the honest answer without retraining is the
    out-of-vocabulary ID's vector, which is trained on the ``oov_rate`` share of examples whose ID is masked,
    so it learns the average playlist: every new playlist gets the same, popularity-like, ranking (seeds are
    only excluded, never used; titles are not used).

    Parameters
    ----------
    embedding_dim : int, default=32
    epochs : int, default=3
    batch_size : int, default=1024
    learning_rate : float, default=0.1
        Adagrad step size (as in the TFRS tutorial).
    oov_rate : float, default=0.05
        Share of training examples whose playlist ID is replaced by the OOV token.
    show_progress : bool, default=False
    seed : int, default=0
    """

    def __init__(self, *, embedding_dim: int = 32, epochs: int = 3, batch_size: int = 1024,
                 learning_rate: float = 0.1, oov_rate: float = 0.05, show_progress: bool = False, seed: int = 0):
        self.embedding_dim = embedding_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.oov_rate = oov_rate
        self.show_progress = show_progress
        self.seed = seed

    def fit(self, store, pids=None):
        _check_param("PlaylistIdTwoTowerRecommender", "oov_rate", self.oov_rate,
                     0.0 < float(self.oov_rate) < 1.0, "a float in (0, 1)")
        import tensorflow as tf
        import tensorflow_recommenders as tfrs

        import modules  # noqa: F401  (sets TF_USE_LEGACY_KERAS; already imported with this module anyway)

        self._fit_common(store, pids)
        m = self.matrix_
        tf.keras.utils.set_random_seed(self.seed)
        rows, cols = m.X.nonzero()
        pid_str = np.array([str(p) for p in m.pids.tolist()], dtype=object)
        rng = np.random.default_rng(self.seed)
        playlist_ids = pid_str[rows].copy()
        playlist_ids[rng.random(len(rows)) < self.oov_rate] = "[OOV]"
        d = self.embedding_dim
        query = tf.keras.Sequential([
            tf.keras.layers.StringLookup(vocabulary=pid_str.tolist(), mask_token=None),
            tf.keras.layers.Embedding(len(pid_str) + 1, d)])
        cand = tf.keras.Sequential([
            tf.keras.layers.StringLookup(vocabulary=m.uris.tolist(), mask_token=None),
            tf.keras.layers.Embedding(len(m.uris) + 1, d)])

        class PocModel(tfrs.models.Model):
            def __init__(self):
                super().__init__()
                self.query, self.cand = query, cand
                self.task = tfrs.tasks.Retrieval()

            def compute_loss(self, features, training=False):
                return self.task(self.query(features["pid"]), self.cand(features["track"]),
                                 compute_metrics=False)

        model = PocModel()
        model.compile(optimizer=tf.keras.optimizers.Adagrad(self.learning_rate))
        order = rng.permutation(len(rows))
        ds = tf.data.Dataset.from_tensor_slices({"pid": playlist_ids[order].astype(str),
                                                 "track": m.uris[cols[order]].astype(str)})
        ds = ds.shuffle(100_000, seed=self.seed, reshuffle_each_iteration=True).batch(self.batch_size)
        t0 = time.perf_counter()
        hist = model.fit(ds, epochs=self.epochs, verbose=1 if self.show_progress else 0)
        log.info("POC two-tower: %d pairs x %d epochs in %.1f s, loss %s", len(rows), self.epochs,
                 time.perf_counter() - t0, [round(x, 1) for x in hist.history["loss"]])
        # Every playlist outside training maps to the OOV ID: one query vector, one ranking for all.
        q = query(tf.constant(["[never-seen-playlist]"])).numpy()[0]
        c = cand(tf.constant(m.uris.astype(str))).numpy()
        self.model_ = model
        self.query_vector_ = q
        scores = c @ q
        self.order_ = np.lexsort((m.uris, -scores))
        self.scores_ = scores.astype(np.float32)
        self.fitted_ = True
        return self

    def _recommend(self, seeds, title, k):
        top = self.order_[: k + len(seeds)]
        return self.matrix_.uris[top].tolist(), self.scores_[top]


# --- validation on a split carved from training playlists ---------------------------------------------------

def validation_split(store, *, per_category: int, seed: int = 0, pids=None) -> Split:
    """A validation split carved from training playlists (``split_store``), never from the test split."""
    return split_store(store, per_category=per_category, seed=seed, pids=pids)


def validate(recommender: PlaylistRecommender, store, split: Split, *, fit: bool = True,
             show_progress: bool = False) -> dict[str, dict[str, float]]:
    """Fit ``recommender`` on ``split.train_pids`` (if ``fit``) and score it on the split's challenge.

    Returns ``Evaluation.summary()``: ``{"ALL": {...}, "<category>": {...}}``.
    """
    if fit:
        recommender.fit(store, split.train_pids)
    rows = recommend_challenge(recommender, split.challenge, None, show_progress=show_progress)
    artist_of = dict(zip(store.tracks["track_uri"], store.tracks["artist_name"], strict=True))
    return evaluate(rows, split.truth, artist_of=artist_of).summary()


def grid_search(make: Callable[..., PlaylistRecommender], grid: Iterable[Mapping], store, split: Split, *,
                metric: str = "ndcg", show_progress: bool = True) -> tuple[dict, list[dict]]:
    """Try each parameter set of ``grid`` on a validation split; returns ``(best params, rows)``.

    Each row is ``{"params", "metrics" (ALL summary), "seconds"}``; the best maximizes ``metric`` over ALL.
    """
    rows = []
    for params in tqdm(list(grid), desc="grid", disable=not show_progress):
        t0 = time.perf_counter()
        summary = validate(make(**params), store, split)
        rows.append({"params": dict(params), "metrics": summary["ALL"],
                     "seconds": round(time.perf_counter() - t0, 1)})
        log.info("%s -> %s %.4f", params, metric, summary["ALL"][metric])
    best = max(rows, key=lambda r: r["metrics"][metric])
    return best["params"], rows
