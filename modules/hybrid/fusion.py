"""The fusion models: a scikit-learn classifier gives every candidate the probability of being a held-out track.

Three kinds (``FUSION_KINDS``), compared on the validation playlists by ``modules.hybrid.selection``:
gradient-boosted trees (``HistGradientBoostingClassifier`` behind ``EmptyColumnsToZero``), a standardized logistic
regression, and ``logistic_by_length``: one logistic regression per playlist-length bucket (``FusionByLength``).
Fitted models score through their array form (``modules.hybrid.fusion_arrays``), the form a bundle stores, so a
loaded bundle answers exactly as the model that was fitted.
"""

from __future__ import annotations

import numpy as np

from modules.errors import HybridError
from modules.hybrid import fusion_arrays as arrays_form
from modules.hybrid.blend import length_bucket, n_seeds

HGB_DEFAULTS = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 40,
                "l2_regularization": 1.0}
FUSION_KINDS = ("hgb", "logistic", "logistic_by_length")
# fusion kinds that are a dot product per candidate; the trees cost about 100 tree walks per candidate
LINEAR_FUSIONS = ("logistic", "logistic_by_length")

# playlist lengths (seeds) where the fusion's weights change: title only | seeded (finer buckets, e.g. (1, 10),
# validated no better on the 20k world: benchmarks/results/fusion-kinds/world-20000.json)
LENGTH_BUCKETS = (1,)


def make_fusion(kind: str, seed: int, params: dict | None = None, n_seeds_col: int | None = None):
    if kind == "logistic_by_length":
        if n_seeds_col is None:
            raise HybridError("the 'logistic_by_length' fusion needs the n_seeds_log column")
        params = dict(params or {})
        buckets = tuple(params.pop("buckets", LENGTH_BUCKETS))
        return FusionByLength("logistic", seed, n_seeds_col, buckets, params)
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "hgb":
        return make_pipeline(EmptyColumnsToZero(), HistGradientBoostingClassifier(
            **{**HGB_DEFAULTS, **(params or {})}, early_stopping=False, random_state=seed))
    if kind == "logistic":
        return make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True),
                             StandardScaler(), LogisticRegression(**{"C": 1.0, "max_iter": 2000, **(params or {})}))
    raise HybridError(f"unknown fusion {kind!r}")


class FusionByLength:
    """One fusion model per playlist-length bucket (``LENGTH_BUCKETS``), plus a pooled one for buckets with too
    few positives. A single linear model must weigh ALS the same for a title-only playlist and a 100-seed one;
    per bucket it need not (ALS is strong with many seeds, the title tower with none)."""

    def __init__(self, kind: str, seed: int, n_seeds_col: int, buckets=LENGTH_BUCKETS, params: dict | None = None,
                 min_positives: int = 50):
        self.kind, self.seed, self.n_seeds_col, self.buckets = kind, seed, n_seeds_col, tuple(buckets)
        self.params, self.min_positives = params, min_positives

    def _bucket(self, X: np.ndarray) -> np.ndarray:
        return length_bucket(n_seeds(X, self.n_seeds_col), self.buckets)

    def fit(self, X, y):
        y = np.asarray(y, bool)
        self.pooled_ = make_fusion(self.kind, self.seed, self.params).fit(X, y)
        bucket = self._bucket(X)
        self.models_ = {}
        for b in np.unique(bucket).tolist():
            sel = bucket == b
            if y[sel].sum() >= self.min_positives and (~y[sel]).any():
                self.models_[b] = make_fusion(self.kind, self.seed, self.params).fit(X[sel], y[sel])
        return self

    def positive_proba(self, X) -> np.ndarray:
        """Each row's probability of the positive class, from its bucket's model (the pooled one otherwise)."""
        if not self.models_:
            return fusion_score(self.pooled_, X)
        bucket = self._bucket(X)
        out = np.empty(len(X))
        pooled = ~np.isin(bucket, list(self.models_))
        if pooled.any():
            out[pooled] = fusion_score(self.pooled_, X[pooled])
        for b, model in self.models_.items():
            sel = bucket == b
            if sel.any():
                out[sel] = fusion_score(model, X[sel])
        return out

    def predict_proba(self, X):
        p = self.positive_proba(X)
        return np.column_stack([1.0 - p, p])

    def to_arrays(self, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
        """``(spec, arrays)``: the bucketing as JSON, the pooled model and each bucket's as arrays."""
        spec, arrays = fusion_to_arrays(self.pooled_, f"{prefix}pooled_")
        out = {"type": "by_length", "kind": self.kind, "seed": int(self.seed), "n_seeds_col": int(self.n_seeds_col),
               "buckets": [int(b) for b in self.buckets], "params": self.params,
               "min_positives": int(self.min_positives), "pooled": spec, "models": {}}
        for b, model in self.models_.items():
            out["models"][str(int(b))], more = fusion_to_arrays(model, f"{prefix}bucket{int(b)}_")
            arrays.update(more)
        return out, arrays

    @classmethod
    def from_arrays(cls, spec: dict, arrays, prefix: str = "") -> FusionByLength:
        self = cls(spec["kind"], int(spec["seed"]), int(spec["n_seeds_col"]), tuple(spec["buckets"]), spec["params"],
                   int(spec["min_positives"]))
        self.pooled_ = fusion_from_arrays(spec["pooled"], arrays, f"{prefix}pooled_")
        self.models_ = {int(b): fusion_from_arrays(sub, arrays, f"{prefix}bucket{int(b)}_")
                        for b, sub in spec["models"].items()}
        return self


class EmptyColumnsToZero:
    """Columns that were all missing in training (e.g. no audio features anywhere in a reduced MPD subset) become
    zeros, which gradient-boosted trees can bin; other missing values stay NaN (trees learn what NaN means)."""

    def fit(self, X, y=None):
        self.empty_ = np.isnan(X).all(axis=0)
        return self

    def transform(self, X):
        if self.empty_.any():
            X = X.copy()
            X[:, self.empty_] = 0.0
        return X

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self


def fusion_score(model, X: np.ndarray) -> np.ndarray:
    """The fusion's probability that each candidate row is a held-out track.

    The fitted pipelines score through their array form (``modules.hybrid.fusion_arrays``: the pipeline's
    numbers, bit for bit), the form a bundle stores, so a loaded bundle answers exactly as the model that was
    fitted; the logistic form is also one matrix-vector product where the pipeline re-validated its input at every
    step."""
    if len(X) == 0:
        return np.zeros(0)
    if isinstance(model, FusionByLength):
        return model.positive_proba(X)
    predictor = arrays_form.as_predictor(model)
    if predictor is not None:
        return predictor.positive_proba(X)
    return model.predict_proba(X)[:, 1]


def fusion_to_arrays(model, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
    """``(spec, arrays)`` of a fitted fusion (``modules.hybrid.fusion_arrays``), the per-length kind included."""
    if isinstance(model, FusionByLength):
        return model.to_arrays(prefix)
    return arrays_form.to_arrays(model, prefix)


def fusion_from_arrays(spec: dict, arrays, prefix: str = ""):
    if isinstance(spec, dict) and spec.get("type") == "by_length":
        return FusionByLength.from_arrays(spec, arrays, prefix)
    return arrays_form.from_arrays(spec, arrays, prefix)


def n_features(spec) -> int | None:
    """Features a fusion spec reads (``None`` for no fusion)."""
    if not isinstance(spec, dict):
        return None
    if spec.get("type") == "by_length":
        return n_features(spec.get("pooled"))
    return spec.get("n_features")
