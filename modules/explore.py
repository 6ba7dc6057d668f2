"""Data preparation for the demo app and anything else that shows a bundle to people.

The Streamlit pages stay thin: everything here is plain pandas/numpy over a ``Recommender`` or a bundle
folder, so the CLI or the REST service can reuse it and the tests check it without a browser.

* playlists: find a playlist by title, its seed tracks, track references pasted as URIs or Spotify links;
* results: how many seeds the model knows, the export as a challenge-format line or CSV, album art;
* the map: the bundle's tracks on a 2-D PCA map with KMeans clusters (``modules.content.feature_map``),
  their audio features for distributions;
* rules: the bundle's association rules with track names, filtered, and a small network layout;
* the model: the two-tower training curve and the quality benchmark results (``benchmarks/quality.py``).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from modules.errors import UserError

log = logging.getLogger(__name__)

_TRACK_REF = re.compile(r"(?:spotify:track:|(?:https?://)?open\.spotify\.com/(?:intl-[\w-]+/)?(?:embed/)?track/)"
                        r"([0-9A-Za-z]{22})(?:[?#].*)?")
_BARE_ID = re.compile(r"([0-9A-Za-z]{22})")
RESULT_EXPORT_COLUMNS = ("rank", "track_uri", "track_name", "artist_name", "score", "retrieval", "rules", "content",
                         "explanation")


class ExploreError(UserError, ValueError):
    """Input the app helpers cannot use (a file that is not what it should be, a bad argument)."""


# -- playlists and tracks ------------------------------------------------------------------------------------------

def parse_track_refs(text: str) -> tuple[list[str], list[str]]:
    """Track URIs from pasted text: ``spotify:track:ID``, ``https://open.spotify.com/track/ID?si=…`` links or bare
    22-character IDs, separated by spaces, commas or new lines; order kept, duplicates dropped.

    Returns the URIs and the pieces that are none of these (an album link, a typo), so the caller can say so.
    """
    uris, rejected = [], []
    for token in re.split(r"[\s,;]+", str(text or "").strip()):
        if not token:
            continue
        m = _TRACK_REF.fullmatch(token) or _BARE_ID.fullmatch(token)
        if m:
            uris.append(f"spotify:track:{m.group(1)}")
        else:
            rejected.append(token)
    return list(dict.fromkeys(uris)), rejected


def track_id(uri: str) -> str | None:
    """The 22-character Spotify ID of a track URI (``None`` for anything else, e.g. a derived stand-in)."""
    m = re.fullmatch(r"spotify:track:([0-9A-Za-z]{22})", str(uri))
    return m.group(1) if m else None


def embed_url(uri: str) -> str | None:
    """The Spotify embed player URL of a track (``None`` when the URI is not a real Spotify track URI)."""
    tid = track_id(uri)
    return f"https://open.spotify.com/embed/track/{tid}" if tid else None


def search_playlists(playlists: pd.DataFrame, query: str, limit: int = 50) -> pd.DataFrame:
    """Playlists whose title contains every word of ``query`` (case-insensitive), longest first, then by pid.

    An empty query lists the longest playlists, so a picker always has something to show.
    """
    if limit < 1:
        raise ExploreError(f"limit must be a positive integer (got {limit!r}).")
    words = [w for w in str(query or "").lower().split() if w]
    names = playlists["name"].fillna("").str.lower()
    mask = np.ones(len(playlists), bool)
    for w in words:
        mask &= names.str.contains(w, regex=False).to_numpy()
    cols = [c for c in ("pid", "name", "num_tracks", "num_artists", "num_followers") if c in playlists.columns]
    found = playlists.loc[mask, cols]
    return found.sort_values(["num_tracks", "pid"], ascending=[False, True]).head(limit).reset_index(drop=True)


def playlist_tracks(store, pid: int) -> list[str]:
    """The track URIs of playlist ``pid`` of a ``PlaylistStore``, in playlist order."""
    entries = store.playlist_tracks
    rows = entries.loc[entries["pid"] == int(pid)]
    if rows.empty and not (store.playlists["pid"] == int(pid)).any():
        raise ExploreError(f"no playlist with pid {pid} in {store.path}.")
    return rows.sort_values("pos")["track_uri"].tolist()


def seed_status(rec, seeds: Sequence[str]) -> dict:
    """How much the model knows about ``seeds``: in the training playlists (``known``), only through audio
    features and tags (``content_only``), or not at all (``unknown``). The app explains results with it."""
    trained = rec._meta.index  # a hashed pandas index: lookups without building a set of every track
    content = rec.hybrid.content_
    known, content_only, unknown = [], [], []
    for s in dict.fromkeys(seeds):
        if s in trained:
            known.append(s)
        elif content is not None and s in content.index_:
            content_only.append(s)
        else:
            unknown.append(s)
    return {"known": known, "content_only": content_only, "unknown": unknown}


def status_note(status: dict, title: str | None) -> str | None:
    """A sentence for the user when the seeds alone cannot drive the results (``None`` when all is normal)."""
    n_known, n_content, n_unknown = (len(status[k]) for k in ("known", "content_only", "unknown"))
    total = n_known + n_content + n_unknown
    if total == 0 or n_known:
        return None
    basis = []
    if n_content:
        basis.append("their audio features and tags")
    if title:
        basis.append(f"the title {title!r}")
    why = " and ".join(basis) if basis else "popularity (add a title or tracks the model knows)"
    return (f"None of the {total} tracks appears in the training playlists, so the collaborative parts (two-tower "
            f"seeds, rules) have nothing to go on: these results come from {why}.")


def challenge_line(pid: int | str, uris: Sequence[str]) -> str:
    """One line of a RecSys Challenge 2018 submission: ``pid,uri_1,…,uri_k`` (no header)."""
    uris = list(uris)
    if len(set(uris)) != len(uris):
        raise ExploreError("a submission line cannot repeat a track.")
    return ",".join([str(pid), *uris])


def results_csv(frame: pd.DataFrame) -> bytes:
    """The results table as UTF-8 CSV (the columns of ``Recommender.recommend`` that are present)."""
    cols = [c for c in RESULT_EXPORT_COLUMNS if c in frame.columns]
    buf = io.StringIO()
    frame[cols].to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


def album_art(uris: Sequence[str], store_path: str | Path | None) -> dict[str, str | None]:
    """Album-art URL per track from the feature store's cache (``features fetch``); ``None`` where unknown.

    A missing or unreadable store gives all ``None`` (the app shows placeholders), never an error.
    """
    out: dict[str, str | None] = dict.fromkeys(uris)
    if not store_path or not Path(store_path).is_file():
        return out
    from modules.features import FeatureStore, FeatureStoreError

    try:
        rows = FeatureStore(store_path).get_many(list(out), ["album_art_url"])
    except (FeatureStoreError, OSError) as err:
        log.warning("album art unavailable from %s: %s", store_path, err)
        return out
    for uri, url in zip(rows["track_uri"], rows["album_art_url"]):
        out[uri] = url if isinstance(url, str) and url.startswith("https://") else None
    return out


# -- the map ---------------------------------------------------------------------------------------------------

def track_features(rec, uris: Sequence[str] | None = None, features: Sequence[str] | None = None) -> pd.DataFrame:
    """Audio features (in their own units) of the bundle's tracks, or of ``uris``, from the content model.

    Rows without audio features are left out. The values are the content model's standardized features mapped
    back (clipped at its ``clip`` standard deviations, which only touches extreme outliers).
    """
    content = rec.hybrid.content_
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


# -- rules ---------------------------------------------------------------------------------------------------------

class RuleTable:
    """A rule set for browsing: thresholds and track search run on arrays, names are built only for the rows
    shown (a bundle can hold millions of rules; building a named table of all of them takes seconds).

    Parameters
    ----------
    rules : RuleSet or path
        ``Recommender.hybrid.rules_.rules``, or a ``rules.parquet`` file.
    names : mapping, default=None
        Track URI -> display name (e.g. "Song by Artist").
    """

    def __init__(self, rules, names: dict[str, str] | None = None):
        from modules.rules import RuleSet, read_rules

        self.rules = rules if isinstance(rules, RuleSet) else read_rules(rules)
        m = self.rules.metrics(names=["support", "confidence", "lift"])
        self.support, self.confidence, self.lift = m["support"], m["confidence"], m["lift"]
        self.count = self.rules.count
        uris = self.rules.track_uris
        self.labels = np.array([(names or {}).get(u, u) for u in uris], dtype=object)

    def __len__(self) -> int:
        return len(self.count)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Min and max of support, confidence and lift (slider bounds); zeros when there are no rules."""
        return {k: (float(v.min()), float(v.max())) if len(v) else (0.0, 0.0)
                for k, v in (("support", self.support), ("confidence", self.confidence), ("lift", self.lift))}

    SORTS = ("lift", "confidence", "support", "count")

    def filter(self, *, min_support: float = 0.0, min_confidence: float = 0.0, min_lift: float = 0.0,
               min_count: int = 0, query: str = "", sort: str = "lift", limit: int = 200) -> tuple[pd.DataFrame, int]:
        """The first ``limit`` rules (by ``sort``, descending; ties in the rule set's order: lift, confidence,
        support) at or above the thresholds that involve a track whose name contains every word of ``query``,
        and how many rules match in all.

        Returns a frame with ``if``, ``then`` (names), ``support``, ``confidence``, ``lift``, ``count``,
        ``antecedents``, ``consequents`` (URI lists).
        """
        if limit < 0:
            raise ExploreError(f"limit must be >= 0 (got {limit!r}).")
        if sort not in self.SORTS:
            raise ExploreError(f"sort must be one of {self.SORTS} (got {sort!r}).")
        mask = ((self.support >= min_support) & (self.confidence >= min_confidence) & (self.lift >= min_lift)
                & (self.count >= min_count))
        words = [w for w in str(query or "").lower().split() if w]
        if words:
            text = pd.Series(self.labels, dtype=object).str.lower()
            hit = np.ones(len(text), bool)
            for w in words:
                hit &= text.str.contains(w, regex=False).to_numpy()
            cols = np.flatnonzero(hit)
            r = self.rules
            mask &= np.isin(r.antecedents, cols).any(axis=1) | np.isin(r.consequents, cols).any(axis=1)
        rows = np.flatnonzero(mask)
        if sort != "lift":  # the rule set is stored by lift already
            rows = rows[np.argsort(-getattr(self, sort)[rows], kind="stable")]
        return self._frame(rows[:limit]), int(len(rows))

    def _frame(self, rows: np.ndarray) -> pd.DataFrame:
        r, uris, labels = self.rules, self.rules.track_uris, self.labels
        ante = [[i for i in row if i >= 0] for row in r.antecedents[rows].tolist()]
        cons = [[i for i in row if i >= 0] for row in r.consequents[rows].tolist()]
        return pd.DataFrame({
            "if": [" + ".join(labels[i] for i in a) for a in ante],
            "then": [" + ".join(labels[i] for i in c) for c in cons],
            "support": self.support[rows], "confidence": self.confidence[rows], "lift": self.lift[rows],
            "count": self.count[rows].astype(np.int64),
            "antecedents": [[uris[i] for i in a] for a in ante], "consequents": [[uris[i] for i in c] for c in cons],
        })


def rule_graph(rules: pd.DataFrame, names: dict[str, str] | None = None, *, max_rules: int = 40,
               seed: int = 0, iterations: int = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes and edges of the first ``max_rules`` rules, laid out by a small seeded force layout.

    Returns ``nodes`` (``track_uri``, ``name``, ``x``, ``y``, ``degree``) and ``edges`` (``source``, ``target``
    URIs, their coordinates ``x0, y0, x1, y1``, ``confidence``, ``lift``); a 2→1 rule gives one edge per
    antecedent.
    """
    top = rules.head(max_rules)
    pairs = [(a, c, conf, lift) for ants, cons, conf, lift in zip(top["antecedents"], top["consequents"],
                                                                    top["confidence"], top["lift"])
             for a in ants for c in cons]
    uris = list(dict.fromkeys(u for a, c, _, _ in pairs for u in (a, c)))
    if not uris:
        empty_nodes = pd.DataFrame(columns=["track_uri", "name", "x", "y", "degree"])
        return empty_nodes, pd.DataFrame(columns=["source", "target", "x0", "y0", "x1", "y1", "confidence", "lift"])
    index = {u: i for i, u in enumerate(uris)}
    edges = np.array([(index[a], index[c]) for a, c, _, _ in pairs], dtype=np.int64).reshape(-1, 2)
    pos = _force_layout(len(uris), edges, seed=seed, iterations=iterations)
    degree = np.bincount(edges.ravel(), minlength=len(uris))
    label = (lambda u: names.get(u, u)) if names else str
    nodes = pd.DataFrame({"track_uri": uris, "name": [label(u) for u in uris], "x": pos[:, 0], "y": pos[:, 1],
                          "degree": degree})
    e = pd.DataFrame({"source": [p[0] for p in pairs], "target": [p[1] for p in pairs],
                      "x0": pos[edges[:, 0], 0], "y0": pos[edges[:, 0], 1], "x1": pos[edges[:, 1], 0],
                      "y1": pos[edges[:, 1], 1], "confidence": [p[2] for p in pairs], "lift": [p[3] for p in pairs]})
    return nodes, e


def _force_layout(n: int, edges: np.ndarray, *, seed: int, iterations: int) -> np.ndarray:
    """Fruchterman–Reingold in numpy (n is a few dozen): connected tracks pull together, all push apart."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-1, 1, size=(n, 2))
    if n == 1:
        return np.zeros((1, 2))
    k = 1.0 / np.sqrt(n)
    temp = 0.1
    for _ in range(iterations):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.maximum(np.linalg.norm(delta, axis=2), 1e-3)
        disp = (delta / dist[..., None] * (k * k / dist)[..., None]).sum(axis=1)
        if len(edges):
            d = pos[edges[:, 0]] - pos[edges[:, 1]]
            dl = np.maximum(np.linalg.norm(d, axis=1), 1e-3)
            f = d / dl[:, None] * (dl * dl / k)[:, None]
            np.add.at(disp, edges[:, 0], -f)
            np.add.at(disp, edges[:, 1], f)
        length = np.maximum(np.linalg.norm(disp, axis=1), 1e-9)
        pos += disp / length[:, None] * np.minimum(length, temp)[:, None]
        pos -= pos.mean(axis=0)
        temp *= 0.98
    scale = np.abs(pos).max()
    return pos / scale if scale > 0 else pos


# -- the model ---------------------------------------------------------------------------------------------------

def training_curve(bundle: str | Path) -> pd.DataFrame:
    """The two-tower's per-epoch record (``two_tower/training_curve.json``): one row per epoch, numeric columns
    only (loss, seconds, examples/s, validation metrics). Empty when the bundle recorded none."""
    path = Path(bundle) / "two_tower" / "training_curve.json"
    if not path.is_file():
        return pd.DataFrame()
    try:
        epochs = json.loads(path.read_text()).get("epochs") or []
    except (json.JSONDecodeError, AttributeError) as err:
        raise ExploreError(f"{path} is not a training-curve file ({err}).") from None
    rows = []
    for i, e in enumerate(epochs, start=1):
        row = {"epoch": e.get("epoch", i)}
        for key, v in e.items():
            if isinstance(v, dict):  # nested validation metrics, e.g. {"val": {"recall@100": …}}
                row.update({f"{key}.{k}": x for k, x in v.items() if isinstance(x, (int, float))})
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                row[key] = v
        rows.append(row)
    return pd.DataFrame(rows)


def benchmark_results(root: str | Path) -> pd.DataFrame:
    """Quality results under ``root`` (``benchmarks/results/**/*.json`` written by ``benchmarks/quality.py``) as
    a long table: ``run`` (the results folder), ``method``, ``category``, ``metric``, ``value``, ``count``.

    Files that are not per-category quality results (speed benchmarks, rule mining) are skipped.
    """
    root = Path(root)
    rows = []
    for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            log.warning("skipping %s: not JSON", path)
            continue
        metrics = doc.get("metrics") if isinstance(doc, dict) else None
        if not isinstance(metrics, dict) or not isinstance(metrics.get("ALL"), dict):
            continue
        run = str(path.parent.relative_to(root)) if path.parent != root else "."
        method = str(doc.get("label") or doc.get("method") or path.stem)
        for category, values in metrics.items():
            if not isinstance(values, dict):
                continue
            for metric, v in values.items():
                if metric != "count" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    rows.append((run, method, category, metric, float(v), values.get("count")))
    return pd.DataFrame(rows, columns=["run", "method", "category", "metric", "value", "count"])


def benchmark_table(results: pd.DataFrame, run: str, category: str = "ALL") -> pd.DataFrame:
    """One run's methods as rows and metrics as columns (one category), best NDCG first."""
    sel = results.loc[(results["run"] == run) & (results["category"] == category)]
    table = sel.pivot_table(index="method", columns="metric", values="value", aggfunc="first")
    order = [c for c in ("r_precision", "r_precision_artist", "ndcg", "clicks", "recall") if c in table.columns]
    table = table[order + [c for c in table.columns if c not in order]]
    if "ndcg" in table.columns:
        table = table.sort_values("ndcg", ascending=False)
    return table.reset_index()


def search_tracks(rec, query: str, limit: int = 10, store_path: str | Path | None = None) -> pd.DataFrame:
    """Tracks matching every word of ``query`` by name or artist: the bundle's own tracks first (the model knows
    them from playlists), then catalog tracks from the song feature store at ``store_path`` when there is one.

    Returns ``track_uri``, ``track_name``, ``artist_name`` and ``in_model`` (bool).
    """
    cols = ["track_uri", "track_name", "artist_name"]
    hits = rec.search(query, limit=limit)[cols].assign(in_model=True)
    if len(hits) < limit and store_path and Path(store_path).is_file():
        from modules.features import FeatureStore, FeatureStoreError

        try:
            more = FeatureStore(store_path).search(query, limit=limit)
        except (FeatureStoreError, OSError) as err:
            log.warning("catalog search unavailable from %s: %s", store_path, err)
        else:
            more = more.loc[~more["track_uri"].isin(set(hits["track_uri"])), cols].assign(in_model=False)
            hits = pd.concat([hits, more], ignore_index=True)
    return hits.head(limit).reset_index(drop=True)
