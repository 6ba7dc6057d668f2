"""The catalog map for the app: the bundle's tracks on a 2-D PCA map with KMeans clusters
(``modules.content.feature_map``), their audio features for distributions, and where a playlist sits on it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from modules.errors import ExploreError


def track_features(rec, uris: Sequence[str] | None = None, features: Sequence[str] | None = None) -> pd.DataFrame:
    """Audio features (in their own units) of the bundle's tracks, or of ``uris``, from the content model.

    Rows without audio features are left out. The values are the content model's standardized features mapped
    back (clipped at its ``clip`` standard deviations, which only touches extreme outliers).
    """
    content = rec.content_model
    if content is None:
        raise ExploreError("this bundle has no content model, so it holds no audio features.")
    feats = [f for f in (features or content.features) if f in content.features]
    cols = [list(content.features).index(f) for f in feats]
    uris = rec.tracks["track_uri"].tolist() if uris is None else list(dict.fromkeys(uris))
    rows = np.fromiter((content.index_.get(u, -1) for u in uris), np.int64, len(uris))
    ok = rows >= 0
    ok[ok] = content.has_num_[rows[ok]]
    raw = content.numeric_[rows[ok]][:, cols].astype(np.float64) * content.scaler_scale_[cols] \
        + content.scaler_mean_[cols]
    frame = pd.DataFrame(raw, columns=feats)
    frame.insert(0, "track_uri", np.asarray(uris, dtype=object)[ok])
    return frame


def bundle_map(rec, *, n_clusters: int = 8, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """The bundle's tracks on a 2-D PCA map with KMeans clusters (``modules.content.feature_map``).

    Returns the map (``track_uri``, names, ``x``, ``y``, ``cluster``, ``cluster_label``, ``count``) and its info.
    """
    from modules.content import MAP_FEATURES, feature_map

    feats = track_features(rec, features=MAP_FEATURES)
    meta = rec.tracks.set_index("track_uri")
    feats["track_name"] = meta["track_name"].reindex(feats["track_uri"]).fillna("").to_numpy()
    feats["artist_name"] = meta["artist_name"].reindex(feats["track_uri"]).fillna("").to_numpy()
    n_clusters = max(2, min(n_clusters, len(feats) // 5))
    points, info = feature_map(feats, n_clusters=n_clusters, seed=seed,
                               features=[f for f in MAP_FEATURES if f in feats.columns])
    points["count"] = meta["count"].reindex(points["track_uri"]).fillna(0).astype(int).to_numpy()
    return points.drop(columns=["genre", "popularity"]), info


def sample_map(points: pd.DataFrame, max_points: int, seed: int = 0, keep: Sequence[str] = ()) -> pd.DataFrame:
    """At most ``max_points`` rows of a map (a seeded sample; the ``keep`` URIs are always in it), so a
    browser draws a 90,000-track catalog without stalling."""
    if len(points) <= max_points:
        return points
    keep_mask = points["track_uri"].isin(set(keep)).to_numpy()
    rest = np.flatnonzero(~keep_mask)
    rng = np.random.default_rng(seed)
    take = rng.choice(rest, size=max(0, max_points - int(keep_mask.sum())), replace=False)
    return points.iloc[np.sort(np.r_[np.flatnonzero(keep_mask), take])].reset_index(drop=True)


def map_positions(points: pd.DataFrame, groups: dict[str, Sequence[str]]) -> pd.DataFrame:
    """Where named groups of tracks (e.g. ``{"playlist": seeds, "recommended": uris}``) sit on the map:
    one row per track found on it, with its ``group``; tracks in two groups count for the first."""
    frames, seen = [], set()
    for name, uris in groups.items():
        sel = [u for u in dict.fromkeys(uris) if u not in seen]
        seen.update(sel)
        part = points.loc[points["track_uri"].isin(set(sel))].copy()
        part["group"] = name
        frames.append(part)
    if not frames:
        return points.iloc[0:0].assign(group=pd.Series(dtype=object))
    return pd.concat(frames, ignore_index=True)
