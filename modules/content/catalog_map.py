"""The catalog map of the app's Explore page: a 2-D PCA projection and KMeans clusters of the audio features.

``feature_map`` computes it (standardized continuous features, seeded, so the same input gives the same
map), labels each cluster by its centre's most distinctive features in words (``LISTENER_WORDS``);
``write_feature_map`` stores it as Parquet with its info in the metadata and ``read_feature_map`` is what the
app loads. It shares only the vocabulary and the catalog reader with the content model.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from modules.content.explain import LISTENER_WORDS
from modules.content.preparation import _catalog_frame
from modules.errors import ContentError

# Continuous features used for the 2-D map (key, mode, time_signature are categories, not distances).
MAP_FEATURES = ("danceability", "energy", "loudness", "speechiness", "acousticness", "instrumentalness",
                "liveness", "valence", "tempo", "duration_ms")


def feature_map(frame: pd.DataFrame, *, n_clusters: int = 12, seed: int = 0,
                features: Sequence[str] = MAP_FEATURES) -> tuple[pd.DataFrame, dict]:
    """A 2-D PCA projection and KMeans clusters of the tracks' standardized audio features.

    Parameters
    ----------
    frame : DataFrame
        Tracks with ``track_uri`` and the ``features`` columns (e.g. ``read_catalog()``); rows missing a
        feature are left out.
    n_clusters : int, default=12
    seed : int, default=0
        Seeds KMeans and PCA, so the same input gives the same map.
    features : sequence of str, default=MAP_FEATURES
        The continuous audio features.

    Returns
    -------
    map : DataFrame
        ``track_uri``, ``track_name``, ``artist_name``, ``genre`` (first), ``popularity``, ``x``, ``y``,
        ``cluster`` (int) and ``cluster_label`` (the cluster centre's most distinctive features in words,
        e.g. "acoustic, calm").
    info : dict
        ``explained_variance`` (of the 2 components), ``components`` (loadings per feature), ``clusters``
        (label and size per cluster), ``features``, ``seed``.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    if n_clusters < 2:
        raise ContentError(f"n_clusters must be at least 2 (got {n_clusters}).")
    feats = list(features)
    missing = [f for f in feats if f not in frame.columns]
    if missing:
        raise ContentError(f"the tracks lack the features {missing}; the map needs {feats}.")
    data = frame.loc[frame[feats].notna().all(axis=1)].reset_index(drop=True)
    if len(data) < n_clusters:
        raise ContentError(f"{len(data)} tracks with audio features is too few for {n_clusters} clusters.")
    x = data[feats].to_numpy(dtype=np.float64)
    z = np.clip((x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0), -5, 5)
    km = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit(z)
    pca = PCA(n_components=2, random_state=seed).fit(z)
    xy = pca.transform(z)
    labels = _cluster_labels(km.cluster_centers_, feats)
    cluster = km.labels_.astype(np.int32)
    genres = data["genres"] if "genres" in data.columns else pd.Series([[]] * len(data))
    out = pd.DataFrame({
        "track_uri": data["track_uri"].astype(str).to_numpy(),
        "track_name": data.get("track_name", pd.Series([""] * len(data))).astype(str).to_numpy(),
        "artist_name": data.get("artist_name", pd.Series([""] * len(data))).astype(str).to_numpy(),
        "genre": [g[0] if g is not None and len(g) else "" for g in genres],
        "popularity": data.get("popularity", pd.Series([0] * len(data))).fillna(0).astype(np.int32).to_numpy(),
        "x": xy[:, 0].astype(np.float32), "y": xy[:, 1].astype(np.float32), "cluster": cluster,
        "cluster_label": np.array(labels, dtype=object)[cluster],
    })
    sizes = np.bincount(cluster, minlength=n_clusters)
    info = {"explained_variance": [round(float(v), 4) for v in pca.explained_variance_ratio_],
            "components": {f: [round(float(pca.components_[0, i]), 4), round(float(pca.components_[1, i]), 4)]
                           for i, f in enumerate(feats)},
            "clusters": [{"cluster": i, "label": labels[i], "size": int(sizes[i])} for i in range(n_clusters)],
            "features": feats, "seed": seed, "tracks": len(out)}
    return out, info


def _cluster_labels(centres: np.ndarray, feats: list[str]) -> list[str]:
    """Each cluster centre's two most distinctive features in words ("acoustic, calm"); clusters that would
    share a label get their third feature too, and a number if that is still not enough."""
    words = []
    for c in centres:
        top = [i for i in np.argsort(-np.abs(c)) if feats[i] in LISTENER_WORDS and abs(c[i]) >= 0.3][:3]
        words.append([LISTENER_WORDS[feats[i]][2 if c[i] > 0 else 3] for i in top])
    labels = [", ".join(w[:2]) or "middle of the road" for w in words]
    counts = Counter(labels)
    labels = [", ".join(w) if counts[lab] > 1 and len(w) > 2 else lab for lab, w in zip(labels, words, strict=True)]
    counts, seen = Counter(labels), Counter()
    out = []
    for lab in labels:
        seen[lab] += 1
        out.append(f"{lab} ({seen[lab]})" if counts[lab] > 1 else lab)
    return out


def write_feature_map(out: str | os.PathLike, *, store=None, catalog=None, n_clusters: int = 12,
                      seed: int = 0) -> dict:
    """Compute ``feature_map`` over a feature store (``store``) or a catalog file and write it as Parquet
    (the info dict is kept in the file's metadata under ``feature_map``). Returns a summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    if store is not None:
        from modules.features import FeatureStore

        frame = FeatureStore(store).read_all()
    else:
        frame = _catalog_frame(catalog)
    data, info = feature_map(frame, n_clusters=n_clusters, seed=seed)
    table = pa.Table.from_pandas(data, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"feature_map": orjson.dumps(info)})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(out)
    return {"tracks": len(data), "clusters": n_clusters, "explained_variance": sum(info["explained_variance"]),
            "seconds": time.perf_counter() - t0}


def read_feature_map(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """The map and its info, as written by ``write_feature_map`` (what the app loads)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    info = orjson.loads((table.schema.metadata or {}).get(b"feature_map", b"{}"))
    return table.to_pandas(), info
