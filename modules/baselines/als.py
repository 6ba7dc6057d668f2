"""``ALSRecommender``: ``implicit`` ALS on the playlist × track matrix, new playlists folded in from their seeds.

A new playlist's factors are one least-squares solve against the item factors (``fold_in``), so it needs no
retraining. ``save``/``load`` write and read arrays, Parquet and JSON only (``ALS_FORMAT``); the hybrid keeps
one as its ALS part.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from modules import ann
from modules.baselines.shared import _Baseline, _check_param, _Matrix
from modules.baselines.title_popularity import _TitlePopularity
from modules.bundle import PARQUET_COMPRESSION
from modules.errors import BundleError, MissingInputError

if TYPE_CHECKING:
    from modules.uri_pool import UriPool

ALS_FORMAT = "als-arrays/1"  # ALSRecommender.save's folder
FACTORS_DTYPE = np.float16  # item_factors.npy on disk (read as float32; bundles with float32 factors still load)
ALS_PARAMS = ("factors", "regularization", "alpha", "iterations", "num_threads", "show_progress", "seed")


def _npz_shape(path: Path) -> tuple[int, int]:
    """The shape of the sparse matrix ``sparse.save_npz`` wrote to ``path``, without reading its arrays."""
    with np.load(path, allow_pickle=False) as npz:
        return tuple(int(n) for n in npz["shape"])


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
    world (``benchmarks/lab/two_tower_tune.py --method als``; docs/two_tower.md has the grid and its numbers).
    """

    # the factors' index (``modules.ann``), set by fit, load and add_index; a class default so that every path
    # reads the attribute, a model unpickled from a playlist-bundle/1 bundle (``bundle convert``) included
    ann_: ann.ClusterIndex | None = None

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
        # a bundle keeps the factors as float16 (half the bytes); the fitted model answers with the same
        # rounded values, so it and the model loaded from its bundle agree exactly
        model.item_factors = np.asarray(model.item_factors).astype(FACTORS_DTYPE).astype(np.float32)
        model.user_factors = None  # a playlist is always folded in from its seeds
        self.model_ = model
        self._YtY = None
        self.ann_ = None  # an index is built by save (large catalogs) or add_index
        self.fitted_ = True
        return self

    # -- persistence: arrays, Parquet and JSON (no pickle) ---------------------------------------------------
    def save(self, path: str | Path, *, ann_min_rows: int | None = ann.MIN_ROWS) -> Path:
        """Write the fitted model to folder ``path``: ``config.json`` (parameters), ``item_factors.npy``,
        ``gram.npy`` (the factors' Gram matrix ``Y.T @ Y`` in float64, factors x factors, which every fold-in
        uses: a loaded model need not build it from a float64 copy of the factors, the serving peak),
        ``matrix.npz`` (the training playlist × track matrix, scipy sparse), ``tracks.parquet`` (the matrix's
        track URIs), ``playlists.parquet`` (its playlist ids and normalized titles) and ``fallback.parquet`` (the
        popularity order). The training playlists' own factors are not written: a playlist is always folded in
        from its seeds. With ``ann_min_rows`` tracks or more (``None``: never) the factors' index is built if
        missing (``add_index``) and written (``ann.npz``); a model that has one writes it."""
        import pandas as pd

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        m, model = self.matrix_, self.model_
        config = {"format": ALS_FORMAT, "params": {k: getattr(self, k) for k in ALS_PARAMS},
                  "model": {"factors": int(model.factors), "regularization": float(model.regularization),
                            "alpha": float(model.alpha), "iterations": int(model.iterations)}}
        (path / "config.json").write_text(json.dumps(config, indent=1))
        np.save(path / "item_factors.npy", np.asarray(model.item_factors).astype(FACTORS_DTYPE), allow_pickle=False)
        np.save(path / "gram.npy", self._gram(), allow_pickle=False)
        self.add_index(ann_min_rows)
        if self.ann_ is not None:
            self.ann_.save(path)
        sparse.save_npz(path / "matrix.npz", m.X.tocsr())

        def parquet(frame: pd.DataFrame, name: str) -> None:
            frame.to_parquet(path / name, index=False, compression=PARQUET_COMPRESSION)

        parquet(pd.DataFrame({"track_uri": np.asarray(m.uris, dtype=object)}), "tracks.parquet")
        parquet(pd.DataFrame({"pid": np.asarray(m.pids, np.int64), "title": m.titles}), "playlists.parquet")
        parquet(pd.DataFrame({"track_uri": [str(u) for u in self.fallback_]}), "fallback.parquet")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ALSRecommender:
        """A model written by ``save``; reads only JSON, Parquet and arrays (``allow_pickle=False``). A folder
        without ``gram.npy`` (written before it was kept) still loads: the Gram matrix is built on first use."""
        import pandas as pd
        import pyarrow.parquet as pq
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        from modules.ann import ClusterIndex

        path = Path(path)
        if not (path / "config.json").exists():
            raise MissingInputError(f"no {path / 'config.json'}: {path} holds no ALS model (write one with "
                                    "ALSRecommender.save)")
        config = json.loads((path / "config.json").read_text())
        if config.get("format") != ALS_FORMAT:
            raise BundleError(f"{path} holds ALS format {config.get('format')!r}; this version reads {ALS_FORMAT!r}. "
                             "Retrain the bundle with python -m modules train.")
        self = cls(**{k: v for k, v in config["params"].items() if k in ALS_PARAMS})
        arrays = {}
        for name in ("item_factors", "gram"):
            if name == "gram" and not (path / "gram.npy").exists():
                continue
            try:
                arrays[name] = np.load(path / f"{name}.npy", allow_pickle=False)
            except ValueError as err:  # e.g. an array of Python objects, which only the pickle loader reads
                raise BundleError(f"{path / f'{name}.npy'} holds more than numbers ({err}); it was not written by "
                                  "this package: retrain the bundle.") from None
        factors, gram = arrays["item_factors"], arrays.get("gram")
        uris = pd.read_parquet(path / "tracks.parquet")["track_uri"].to_numpy().astype(object)
        shape, n_playlists = _npz_shape(path / "matrix.npz"), pq.read_metadata(path / "playlists.parquet").num_rows
        if factors.ndim != 2 or factors.shape[0] != len(uris) or shape != (n_playlists, len(uris)):
            raise BundleError(f"{path}: item_factors {factors.shape}, matrix {shape}, {len(uris)} tracks and "
                             f"{n_playlists} playlists do not fit together; copy or retrain the bundle.")
        if gram is not None and (gram.shape != (factors.shape[1],) * 2 or gram.dtype != np.float64):
            raise BundleError(f"{path / 'gram.npy'} is {gram.dtype} {gram.shape}, not float64 "
                              f"{(factors.shape[1],) * 2} (the factors' Gram matrix); copy or retrain the bundle.")
        spec = config["model"]
        with threadpool_limits(1, "blas"):  # as in fit: implicit warns about BLAS threads otherwise
            model = AlternatingLeastSquares(factors=int(spec["factors"]), regularization=float(spec["regularization"]),
                                            alpha=float(spec["alpha"]), iterations=int(spec["iterations"]),
                                            num_threads=self.num_threads, random_state=self.seed)
        self.ann_ = ClusterIndex.load(path, factors)
        # with an index the index holds the factors (float16) and stands for them
        model.item_factors = factors.astype(np.float32) if self.ann_ is None else self.ann_
        self.model_ = model

        def read_matrix():
            playlists = pd.read_parquet(path / "playlists.parquet")
            # scipy reads it with allow_pickle=False
            return (sparse.load_npz(path / "matrix.npz"), playlists["pid"].to_numpy(np.int64),
                    [str(t) for t in playlists["title"]])

        self.matrix_ = _Matrix.from_files(read_matrix, uris)
        self._fallback_file = path / "fallback.parquet"
        self._YtY = gram
        self.fitted_ = True
        return self

    # what a folded-in playlist does not need, read on first use: the standalone baseline's title answer and
    # padding (the hybrid's ALS part never reads them; at 1M playlists they were 2.4 GiB of a serving process)
    @property
    def title_pop_(self) -> _TitlePopularity:
        if self.__dict__.get("_title_pop") is None:
            self._title_pop = _TitlePopularity(self.matrix_)
        return self._title_pop

    @title_pop_.setter
    def title_pop_(self, value: _TitlePopularity) -> None:
        self._title_pop = value

    @property
    def fallback_(self) -> list[str]:
        if self.__dict__.get("_fallback") is None and self.__dict__.get("_fallback_file") is not None:
            import pandas as pd

            self._fallback = [str(u) for u in pd.read_parquet(self._fallback_file)["track_uri"]]
        return self._fallback

    @fallback_.setter
    def fallback_(self, value: list[str]) -> None:
        self._fallback = value

    def _gram(self) -> np.ndarray:
        """``Y.T @ Y`` of the item factors in float64 (``[factors, factors]``), built once and kept."""
        ytY = getattr(self, "_YtY", None)
        if ytY is None:
            # one float64 copy of the factors, not two (Y.T.astype and Y.astype: 468 MiB for a moment at 239,645
            # tracks); Y64.T is laid out as Y.T.astype(np.float64) is, so the product is the same, bit for bit.
            # A saved model keeps it (gram.npy), so only fit and folders written before it pay this.
            Y64 = np.asarray(self.model_.item_factors).astype(np.float64)
            ytY = self._YtY = Y64.T @ Y64
            del Y64
        return ytY

    def fold_in(self, seed_index: np.ndarray) -> np.ndarray:
        """Factors of a new playlist holding the given track indices, shape ``[factors]``.

        The same least-squares solve as implicit's ``recalculate_user`` (confidence ``alpha`` on each seed,
        ``YtY`` cached), written out so one playlist costs a 128 x 128 solve instead of a call into its thread
        pool (30 ms on a busy machine). Equal to implicit's answer to float32 precision (tested).
        """
        m = self.model_
        Y = self.ann_ if self.ann_ is not None else np.asarray(m.item_factors)  # its rows: Y[idx]
        ytY = self._gram()
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

    def add_index(self, min_rows: int | None = 0, **build) -> ALSRecommender:
        """Build ``ann_`` over the item factors when there are ``min_rows`` tracks or more (``None``: never;
        ``build``: ``nlist``, ``nprobe``, ``seed`` of ``modules.ann.ClusterIndex.build``); the index then holds the
        factors (float16, the same values) and stands for them as ``model_.item_factors``. An existing index is
        kept unless ``build`` is given (``modules.ann.ensure_index``). Returns ``self``."""
        self.ann_ = ann.ensure_index(self.model_.item_factors, self.ann_, min_rows, **build)
        if self.ann_ is not None:
            self.model_.item_factors = self.ann_
        return self

    def share_uris(self, pool: UriPool) -> None:
        """Hold ``pool``'s strings for the matrix's track URIs (``modules.uri_pool``: equal strings, so no answer
        changes; ``_Matrix.share_uris``)."""
        self.matrix_.share_uris(pool.share(self.matrix_.uris))

    def search(self, seed_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(folded-in factors, the ``n`` best tracks best first (seeds excluded), their exact scores) from the
        index ``ann_`` (``modules.ann``): the tracks of the probed clusters only."""
        u = self.fold_in(seed_index)
        rows, scores = self.ann_.search(u, n, exclude=seed_index)
        return u, rows, scores

    def _recommend(self, seeds, title, k):
        idx = self.matrix_.known(seeds)
        if len(idx) == 0:
            return self._title_answer(title, k)
        if self.ann_ is not None:
            _, top, scores = self.search(idx, k)
            return self.matrix_.uris[top].tolist(), scores
        scores = self.scan([idx])[0]
        scores[idx] = -np.inf
        top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        top = top[np.lexsort((top, -scores[top]))]
        top = top[np.isfinite(scores[top])]
        return self.matrix_.uris[top].tolist(), scores[top].astype(np.float32)
