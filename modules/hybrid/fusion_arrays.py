"""The fitted fusion models as plain arrays and JSON: what a bundle stores instead of a pickle.

A pickle runs code when it is loaded; a bundle is a file people share, so its fusion is written as numbers. Two
kinds of fitted scikit-learn pipelines become small predictors that give the pipeline's numbers bit for bit:

* ``LinearFusion``: the logistic fusion (NaN imputed as 0, ``StandardScaler``, ``LogisticRegression``), as its
  coefficients, intercept and the scaler's mean and scale;
* ``TreeFusion``: the gradient-boosted trees (``EmptyColumnsToZero`` then ``HistGradientBoostingClassifier``), as
  the columns that training found empty, the baseline log-odds and every tree's nodes (feature, threshold, where
  NaN goes, children, leaf value).

``to_arrays`` gives ``(spec, arrays)`` (``spec`` is JSON, ``arrays`` numeric ndarrays for ``np.savez``, names
prefixed so several models share one file); ``from_arrays`` builds the predictor back. The hybrid scores its
in-memory pipelines through the same predictors (``as_predictor``), so a loaded bundle answers exactly as the
model that was fitted.
"""

from __future__ import annotations

import logging
import weakref

import numpy as np

from modules.errors import FusionFormatError

log = logging.getLogger(__name__)

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _arr(arrays, name: str, dtype, ndim: int) -> np.ndarray:
    if name not in arrays:
        raise FusionFormatError(f"the fusion arrays have no {name!r}; the bundle is incomplete or of another "
                                "version: retrain it with python -m modules train.")
    a = np.asarray(arrays[name])
    kinds = {"f": "f", "i": "iu", "b": "b"}[np.dtype(dtype).kind]
    if a.dtype.kind not in kinds or a.ndim != ndim:
        raise FusionFormatError(f"fusion array {name!r} has dtype {a.dtype} and {a.ndim} dimensions; expected "
                                f"{np.dtype(dtype)} with {ndim}.")
    return a.astype(dtype, copy=False)


class LinearFusion:
    """The logistic fusion: ``p = 1 / (1 + exp(-(x @ w + b)))`` with NaN read as 0, where ``w = coef / scale``
    and ``b = intercept - sum(coef * mean / scale)`` fold the scaler into the regression.

    Parameters
    ----------
    coef : ndarray of shape (n_features,)
    intercept : float
    mean, scale : ndarray of shape (n_features,)
        The ``StandardScaler``'s ``mean_`` and ``scale_`` (0 and 1 when it did not centre or scale).
    """

    kind = "logistic"

    def __init__(self, coef, intercept: float, mean, scale):
        self.coef_ = np.asarray(coef, np.float64)
        self.intercept_ = float(intercept)
        self.mean_ = np.asarray(mean, np.float64)
        self.scale_ = np.asarray(scale, np.float64)
        if not self.coef_.shape == self.mean_.shape == self.scale_.shape or self.coef_.ndim != 1:
            raise FusionFormatError(f"logistic fusion: coef, mean and scale must have one shape (n_features,); got "
                                    f"{self.coef_.shape}, {self.mean_.shape}, {self.scale_.shape}.")
        # one matrix-vector product per query; the pipeline re-validated its input at every step (1.6 ms per query
        # under cProfile, demo bundle)
        self.w_ = self.coef_ / self.scale_
        self.b_ = float(self.intercept_ - np.sum(self.coef_ * self.mean_ / self.scale_))

    @classmethod
    def from_pipeline(cls, model) -> LinearFusion | None:
        """The predictor of a fitted ``make_pipeline(SimpleImputer(constant 0), StandardScaler(),
        LogisticRegression())`` with two classes; ``None`` for anything else."""
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        steps = [s for _, s in model.steps] if isinstance(model, Pipeline) else []
        if not (len(steps) == 3 and isinstance(steps[0], SimpleImputer) and steps[0].strategy == "constant"
                and steps[0].fill_value == 0.0 and isinstance(steps[1], StandardScaler)
                and isinstance(steps[2], LogisticRegression) and steps[2].coef_.shape[0] == 1):
            return None
        imp, scaler, lr = steps
        if not (isinstance(imp.missing_values, float) and np.isnan(imp.missing_values)):
            return None
        n = lr.coef_.shape[1]
        mean = scaler.mean_ if scaler.with_mean else np.zeros(n)
        scale = scaler.scale_ if scaler.with_std else np.ones(n)
        return cls(lr.coef_[0], lr.intercept_[0], mean, scale)

    def positive_proba(self, X: np.ndarray) -> np.ndarray:
        """Each row's probability of the positive class, shape ``[n_rows]``."""
        return 1.0 / (1.0 + np.exp(-(np.where(np.isnan(X), 0.0, X) @ self.w_ + self.b_)))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self.positive_proba(X)
        return np.column_stack([1.0 - p, p])

    def to_arrays(self, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
        spec = {"type": "logistic", "n_features": int(len(self.coef_)), "missing": "NaN read as 0"}
        return spec, {f"{prefix}coef": self.coef_, f"{prefix}intercept": np.array([self.intercept_]),
                      f"{prefix}mean": self.mean_, f"{prefix}scale": self.scale_}

    @classmethod
    def from_arrays(cls, spec: dict, arrays, prefix: str = "") -> LinearFusion:
        intercept = _arr(arrays, f"{prefix}intercept", np.float64, 1)
        if len(intercept) != 1:
            raise FusionFormatError(f"fusion array {prefix}intercept must hold one number (got {len(intercept)}).")
        return cls(_arr(arrays, f"{prefix}coef", np.float64, 1), float(intercept[0]),
                   _arr(arrays, f"{prefix}mean", np.float64, 1), _arr(arrays, f"{prefix}scale", np.float64, 1))


# the nodes of every tree, one array per field, concatenated tree after tree (children index within their tree)
TREE_FIELDS = {"feature": np.int64, "threshold": np.float64, "missing_left": np.bool_, "left": np.int64,
               "right": np.int64, "is_leaf": np.bool_, "value": np.float64}


class TreeFusion:
    """Gradient-boosted trees for a binary label: ``p = expit(baseline + sum of the trees' leaf values)``.

    A tree's walk from its root: at a split on feature ``f`` with threshold ``t``, a NaN goes where
    ``missing_left`` says, any other value left when ``x[f] <= t``, right otherwise (scikit-learn's
    ``HistGradientBoostingClassifier`` rule); training columns that were all NaN are set to 0 first.

    Parameters
    ----------
    empty_columns : bool ndarray of shape (n_features,)
    baseline : float
        The log-odds every tree's value is added to.
    tree_starts : int ndarray of shape (n_trees,)
        Where each tree's nodes start in the node arrays (its root).
    nodes : dict of ndarray
        ``TREE_FIELDS``, each of shape ``(n_nodes,)``; ``left``/``right`` count from the tree's root.
    """

    kind = "hgb"

    def __init__(self, empty_columns, baseline: float, tree_starts, nodes: dict):
        self.empty_columns_ = np.asarray(empty_columns, bool)
        self.baseline_ = float(baseline)
        self.tree_starts_ = np.asarray(tree_starts, np.int64)
        self.nodes_ = {k: np.asarray(nodes[k], dt) for k, dt in TREE_FIELDS.items()}
        n = len(self.nodes_["value"])
        if any(len(v) != n for v in self.nodes_.values()) or not len(self.tree_starts_):
            raise FusionFormatError("tree fusion: every node array must have one length, and there must be trees.")
        ends = np.r_[self.tree_starts_[1:], n]
        sizes = ends - self.tree_starts_
        if self.tree_starts_[0] != 0 or (sizes < 1).any():
            raise FusionFormatError("tree fusion: tree_starts must begin at 0 and increase, each tree non-empty.")
        tree_of = np.repeat(np.arange(len(sizes)), sizes)
        inner = ~self.nodes_["is_leaf"]
        own = (np.arange(n) - self.tree_starts_[tree_of])[inner]
        for side in ("left", "right"):
            child = self.nodes_[side][inner]
            # children come after their parent (scikit-learn's node order): every walk ends at a leaf
            if (child <= own).any() or (child >= sizes[tree_of[inner]]).any():
                raise FusionFormatError(f"tree fusion: a {side} child points outside its tree or back up it.")
        if inner.any() and ((self.nodes_["feature"][inner] < 0).any()
                            or (self.nodes_["feature"][inner] >= len(self.empty_columns_)).any()):
            raise FusionFormatError("tree fusion: a split reads a feature the model does not have.")
        self._compiled = None  # scikit-learn's compiled tree walk, when it takes these nodes (``_walkers``)

    @classmethod
    def from_pipeline(cls, model) -> TreeFusion | None:
        """The predictor of a fitted ``make_pipeline(EmptyColumnsToZero(), HistGradientBoostingClassifier())``
        for a binary label without categorical features; ``None`` for anything else."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.pipeline import Pipeline

        steps = [s for _, s in model.steps] if isinstance(model, Pipeline) else []
        if not (len(steps) == 2 and hasattr(steps[0], "empty_")
                and isinstance(steps[1], HistGradientBoostingClassifier)):
            return None
        hgb = steps[1]
        if (hgb.n_trees_per_iteration_ != 1 or len(hgb.classes_) != 2
                or getattr(hgb, "is_categorical_", None) is not None and np.any(hgb.is_categorical_)):
            return None
        nodes = [p[0].nodes for p in hgb._predictors]
        if any(n["is_categorical"].any() for n in nodes):
            return None
        flat = np.concatenate(nodes)
        fields = {"feature": "feature_idx", "threshold": "num_threshold", "missing_left": "missing_go_to_left",
                  "left": "left", "right": "right", "is_leaf": "is_leaf", "value": "value"}
        starts = np.r_[0, np.cumsum([len(n) for n in nodes])[:-1]]
        return cls(steps[0].empty_, float(np.ravel(hgb._baseline_prediction)[0]), starts,
                   {k: flat[v] for k, v in fields.items()})

    # -- scoring --------------------------------------------------------------------------------------------
    def positive_proba(self, X: np.ndarray) -> np.ndarray:
        """Each row's probability of the positive class, shape ``[n_rows]``: the trees' values summed in tree
        order onto the baseline, then the logistic function (scikit-learn's arithmetic, so its numbers)."""
        from scipy.special import expit

        X = np.asarray(X, np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.empty_columns_):
            raise ValueError(f"tree fusion: X must have shape [n_rows, {len(self.empty_columns_)}] (got {X.shape}).")
        if self.empty_columns_.any():
            X = X.copy()
            X[:, self.empty_columns_] = 0.0
        X = np.ascontiguousarray(X)
        raw = np.zeros(len(X)) + self.baseline_
        for values in self._tree_values(X):
            raw += values
        return expit(raw)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self.positive_proba(X)
        return np.column_stack([1.0 - p, p])

    def _tree_values(self, X: np.ndarray):
        """Each tree's leaf value per row, tree after tree."""
        compiled = self._compiled_walk()
        if compiled:
            for predictor in compiled:
                yield predictor(X)
        else:
            yield from self._walk(X)

    def _walk(self, X: np.ndarray) -> np.ndarray:
        """The trees walked in numpy, all trees and rows at once: ``[n_trees, n_rows]`` leaf values."""
        nd = self.nodes_
        k, n_trees = len(X), len(self.tree_starts_)
        sizes = np.r_[self.tree_starts_[1:], len(nd["value"])] - self.tree_starts_
        offset = np.repeat(self.tree_starts_, sizes)
        left, right = nd["left"] + offset, nd["right"] + offset
        flat = X.T.ravel()  # feature-major: feature f of row r at f * k + r
        node = np.repeat(self.tree_starts_, k)
        row = np.tile(np.arange(k), n_trees)
        at = np.arange(n_trees * k)
        leaf_of = node.copy()
        active = ~nd["is_leaf"][node]
        node, row, at = node[active], row[active], at[active]
        while len(node):
            x = flat[nd["feature"][node] * k + row]
            go_left = np.where(np.isnan(x), nd["missing_left"][node], x <= nd["threshold"][node])
            node = np.where(go_left, left[node], right[node])
            done = nd["is_leaf"][node]
            leaf_of[at[done]] = node[done]
            node, row, at = node[~done], row[~done], at[~done]
        return nd["value"][leaf_of].reshape(n_trees, k)

    def _compiled_walk(self) -> list | None:
        """scikit-learn's compiled tree walk (``TreePredictor``) over these nodes: the same rule, several times
        faster than the numpy walk. Built once; ``None`` when this scikit-learn does not take the nodes (a private
        class) or disagrees with the numpy walk on probe rows, so the numpy walk answers."""
        if self._compiled is not None:
            return self._compiled or None
        predictors: list = []
        try:
            from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
            from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

            nd = self.nodes_
            no_bitsets = np.zeros((0, 8), np.uint32)
            no_map = np.zeros(0, np.uint32)
            ends = np.r_[self.tree_starts_[1:], len(nd["value"])]
            for a, b in zip(self.tree_starts_.tolist(), ends.tolist(), strict=True):
                rec = np.zeros(b - a, PREDICTOR_RECORD_DTYPE)
                for field, name in (("value", "value"), ("feature_idx", "feature"), ("num_threshold", "threshold"),
                                    ("missing_go_to_left", "missing_left"), ("left", "left"), ("right", "right"),
                                    ("is_leaf", "is_leaf")):
                    rec[field] = nd[name][a:b]
                tree = TreePredictor(rec, no_bitsets, no_bitsets)
                predictors.append(lambda X, t=tree: t.predict(X, known_cat_bitsets=no_bitsets, f_idx_map=no_map,
                                                               n_threads=1))
            probe = self._probe_rows()
            if not np.array_equal(np.stack([p(probe) for p in predictors]), self._walk(probe)):
                raise ValueError("scikit-learn's tree walk disagrees with the numpy walk on probe rows")
        except Exception as err:  # any change in scikit-learn's private predictor: the numpy walk is exact
            log.info("fusion trees: scored by the numpy tree walk (%s)", err)
            predictors = []
        self._compiled = predictors
        return predictors or None

    def _probe_rows(self) -> np.ndarray:
        """Rows that reach both sides of every split: each split's threshold, the next number above it, NaN."""
        nd = self.nodes_
        inner = np.flatnonzero(~nd["is_leaf"])
        n_features = len(self.empty_columns_)
        rows = np.zeros((3, n_features))
        rows[2] = np.nan
        rng = np.random.default_rng(0)
        out = [rows]
        for _ in range(8):
            r = np.full((1, n_features), np.nan)
            pick = rng.permutation(inner)
            r[0, nd["feature"][pick]] = np.where(rng.random(len(pick)) < 0.5, nd["threshold"][pick],
                                                 np.nextafter(nd["threshold"][pick], np.inf))
            r[0, rng.random(n_features) < 0.2] = np.nan
            out.append(r)
        return np.ascontiguousarray(np.vstack(out))

    # -- arrays ---------------------------------------------------------------------------------------------
    def to_arrays(self, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
        spec = {"type": "trees", "n_features": int(len(self.empty_columns_)), "n_trees": int(len(self.tree_starts_)),
                "rule": "NaN goes to missing_left; else left when x <= threshold"}
        arrays = {f"{prefix}empty_columns": self.empty_columns_, f"{prefix}baseline": np.array([self.baseline_]),
                  f"{prefix}tree_starts": self.tree_starts_}
        arrays.update({f"{prefix}node_{k}": v for k, v in self.nodes_.items()})
        return spec, arrays

    @classmethod
    def from_arrays(cls, spec: dict, arrays, prefix: str = "") -> TreeFusion:
        nodes = {k: _arr(arrays, f"{prefix}node_{k}", dt, 1) for k, dt in TREE_FIELDS.items()}
        baseline = _arr(arrays, f"{prefix}baseline", np.float64, 1)
        if len(baseline) != 1:
            raise FusionFormatError(f"fusion array {prefix}baseline must hold one number (got {len(baseline)}).")
        return cls(_arr(arrays, f"{prefix}empty_columns", np.bool_, 1), float(baseline[0]),
                   _arr(arrays, f"{prefix}tree_starts", np.int64, 1), nodes)


PREDICTORS = {"logistic": LinearFusion, "trees": TreeFusion}


def as_predictor(model):
    """``model`` as a ``LinearFusion`` or ``TreeFusion`` (built once per fitted pipeline), or ``None`` when it is
    neither kind of fusion pipeline."""
    if isinstance(model, (LinearFusion, TreeFusion)):
        return model
    try:
        return _CACHE[model]
    except (KeyError, TypeError):
        pass
    out = LinearFusion.from_pipeline(model) or TreeFusion.from_pipeline(model)
    try:
        _CACHE[model] = out
    except TypeError:
        pass
    return out


def to_arrays(model, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
    """``(spec, arrays)`` of a fitted fusion pipeline or predictor; raises ``FusionFormatError`` for others."""
    predictor = as_predictor(model)
    if predictor is None:
        raise FusionFormatError(f"a {type(model).__name__} fusion cannot be written as arrays (only the logistic "
                                "and the gradient-boosted-trees pipelines of modules.hybrid can).")
    return predictor.to_arrays(prefix)


def from_arrays(spec: dict, arrays, prefix: str = ""):
    """The predictor ``to_arrays`` described."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in PREDICTORS:
        raise FusionFormatError(f"unknown fusion model type {kind!r}; this version reads {sorted(PREDICTORS)}.")
    return PREDICTORS[kind].from_arrays(spec, arrays, prefix)
