"""The rule table: ``RuleSet`` (rules as count arrays), its metrics, and its Parquet file (``write``/``read_rules``).

Both engines produce a ``RuleSet``; only counts are stored and support, confidence, lift, leverage and
conviction are computed from them term for term as mlxtend 0.25 does, so both engines agree to the last bit.
The file is what ``python -m modules rules`` writes and what a bundle keeps as ``rules.parquet``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modules.bundle import PARQUET_COMPRESSION
from modules.errors import RulesError

RULES_FORMAT = "playlist-rules/1"
RULE_COLUMNS = ("antecedents", "consequents", "antecedent_count", "consequent_count", "count",
                "antecedent_support", "consequent_support", "support", "confidence", "lift", "leverage",
                "conviction")


def _as_2d(arr) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.int32)  # track columns: < 2**31 tracks
    return arr if arr.ndim == 2 else arr.reshape(len(arr), -1) if len(arr) else arr.reshape(0, 1)


def rule_metrics(antecedent_count, consequent_count, count, n_playlists: int,
                 names=None) -> dict[str, np.ndarray]:
    """Supports, confidence, lift, leverage and conviction from counts, term for term as mlxtend 0.25's
    ``association_rules`` computes them (its "disabled" counts are 0 without null values), so that both engines
    agree to the last bit. ``names`` limits the result to some of them (less memory on millions of rules)."""
    names = set(names or RULE_COLUMNS[5:])
    n = float(n_playlists)
    s_a = np.asarray(antecedent_count) / n
    s_c = np.asarray(consequent_count) / n
    s_ac = np.asarray(count) / n
    out = {"antecedent_support": s_a, "consequent_support": s_c, "support": s_ac}
    if names & {"confidence", "lift", "conviction"}:
        out["confidence"] = (s_ac * n) / (s_a * n)
    if "lift" in names:
        out["lift"] = out["confidence"] / s_c
    if "leverage" in names:
        out["leverage"] = s_ac - s_a * s_c
    if "conviction" in names:
        conviction = np.full(len(s_ac), np.inf)
        below = out["confidence"] < 1.0
        conviction[below] = (1.0 - s_c[below]) / (1.0 - out["confidence"][below])
        out["conviction"] = conviction
    return {k: v for k, v in out.items() if k in names}


@dataclass
class RuleSet:
    """Rules as arrays (the in-memory form both engines produce; ``to_frame``/``write`` give the table form).

    ``antecedents`` and ``consequents`` are int32 arrays ``[n_rules, width]`` of track columns, each row sorted
    ascending and padded with -1; ``track_uris`` maps columns to URIs (sorted, so column order is URI order).
    Only counts are stored (20 bytes per pair rule); ``support``, ``confidence``, ``lift``, ``leverage``,
    ``conviction`` and the two side supports are computed from them when asked (``rule_metrics``).
    Rows are sorted by lift, then confidence, then support (all descending), then antecedent and consequent
    URIs: the same data always gives the same order.
    """

    antecedents: np.ndarray
    consequents: np.ndarray
    antecedent_count: np.ndarray
    consequent_count: np.ndarray
    count: np.ndarray
    n_playlists: int
    track_uris: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.antecedents = _as_2d(self.antecedents)
        self.consequents = _as_2d(self.consequents)
        dtype = np.int32 if self.n_playlists < 2**31 else np.int64
        self.antecedent_count = np.asarray(self.antecedent_count, dtype)
        self.consequent_count = np.asarray(self.consequent_count, dtype)
        self.count = np.asarray(self.count, dtype)

    def metrics(self, rows=None, names=None) -> dict[str, np.ndarray]:
        """The metric columns (all, or ``names``), for all rules or only ``rows``."""
        sel = slice(None) if rows is None else rows
        return rule_metrics(self.antecedent_count[sel], self.consequent_count[sel], self.count[sel],
                            self.n_playlists, names)

    antecedent_support = property(lambda self: self.metrics(names=["antecedent_support"])["antecedent_support"])
    consequent_support = property(lambda self: self.metrics(names=["consequent_support"])["consequent_support"])
    support = property(lambda self: self.metrics(names=["support"])["support"])
    confidence = property(lambda self: self.metrics(names=["confidence"])["confidence"])
    lift = property(lambda self: self.metrics(names=["lift"])["lift"])
    leverage = property(lambda self: self.metrics(names=["leverage"])["leverage"])
    conviction = property(lambda self: self.metrics(names=["conviction"])["conviction"])

    def __len__(self) -> int:
        return len(self.count)

    def _take(self, idx) -> RuleSet:
        return RuleSet(self.antecedents[idx], self.consequents[idx], self.antecedent_count[idx],
                       self.consequent_count[idx], self.count[idx], self.n_playlists, self.track_uris, self.meta)

    def sorted(self) -> RuleSet:
        """Sorted by lift, confidence, support (descending), then antecedent, consequent URIs (ascending)."""
        keys = [self.consequents[:, j] for j in range(self.consequents.shape[1] - 1, -1, -1)]
        keys += [self.antecedents[:, j] for j in range(self.antecedents.shape[1] - 1, -1, -1)]
        m = self.metrics(names=["support", "confidence", "lift"])
        keys += [-m["support"], -m["confidence"], -m["lift"]]
        return self._take(np.lexsort(keys)) if len(self) else self

    def filter_confidence(self, min_confidence: float) -> RuleSet:
        return self._take(np.flatnonzero(self.confidence >= min_confidence))  # mlxtend: score >= min_threshold

    def uri_lists(self, which: str = "antecedents") -> list[list[str]]:
        arr = getattr(self, which)
        uris = self.track_uris
        return [[uris[i] for i in row if i >= 0] for row in arr.tolist()]

    def to_arrow(self) -> pa.Table:
        cols = {}
        for name in ("antecedents", "consequents"):
            arr = getattr(self, name)
            valid = arr >= 0
            offsets = np.r_[0, np.cumsum(valid.sum(axis=1))].astype(np.int32)
            flat = arr[valid]
            values = pa.array(self.track_uris[flat] if len(flat) else np.array([], dtype=object), type=pa.string())
            cols[name] = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)
        m = self.metrics()
        for name in RULE_COLUMNS[2:]:
            cols[name] = pa.array(m[name] if name in m else getattr(self, name))
        meta = dict(self.meta, format=RULES_FORMAT, n_playlists=self.n_playlists)
        return pa.table(cols).replace_schema_metadata({"rules": orjson.dumps(meta)})

    def to_frame(self):
        """A pandas frame with the columns of ``RULE_COLUMNS`` (antecedents/consequents as lists of URIs)."""
        import pandas as pd

        data = {"antecedents": self.uri_lists("antecedents"), "consequents": self.uri_lists("consequents")}
        m = self.metrics()
        data.update({name: m[name] if name in m else getattr(self, name) for name in RULE_COLUMNS[2:]})
        return pd.DataFrame(data, columns=list(RULE_COLUMNS))

    def write(self, path: str | Path) -> Path:
        """Write the rules as Parquet (readable by pandas, DuckDB, … and ``read_rules``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(self.to_arrow(), tmp, compression=PARQUET_COMPRESSION)
        tmp.replace(path)
        return path


def read_rules(path: str | Path) -> RuleSet:
    """Rules written by ``RuleSet.write`` (``python -m modules rules``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; mine rules first: python -m modules rules --mpd DIR "
                                f"--out {path}")
    names = pq.read_schema(path).names
    missing = [c for c in RULE_COLUMNS if c not in names]
    if missing:
        raise RulesError(f"{path} is not a rules file (missing columns {', '.join(missing)}); write one with "
                         "python -m modules rules.")
    # the metrics are recomputed from the counts: read only what is needed, URIs dictionary-encoded
    table = pq.read_table(path, columns=["antecedents", "consequents", "antecedent_count", "consequent_count",
                                         "count"],
                          read_dictionary=["antecedents.list.element", "consequents.list.element"])
    meta = orjson.loads((table.schema.metadata or {}).get(b"rules", b"{}"))
    n = meta.get("n_playlists")
    if not n:
        raise RulesError(f"{path} has no n_playlists in its metadata; re-mine it with python -m modules rules.")
    chunks = {name: table.column(name).chunks for name in ("antecedents", "consequents")}
    # URIs sorted (UTF-8 byte order = code point order, as Python sorts); each chunk's dictionary mapped once
    dictionaries = [c.flatten().dictionary for name in chunks for c in chunks[name]]
    uniq = pc.unique(pa.chunked_array(dictionaries, type=pa.string())) if dictionaries else pa.array([], pa.string())
    uniq = uniq.take(pc.sort_indices(uniq))
    uris = uniq.to_numpy(zero_copy_only=False).astype(object)
    arrays = {}
    for name, parts in chunks.items():
        flats, lengths = [], []
        for lst in parts:
            flat = lst.flatten()
            mapping = pc.index_in(flat.dictionary, value_set=uniq).to_numpy(zero_copy_only=False).astype(np.int32)
            flats.append(mapping[flat.indices.to_numpy(zero_copy_only=False)])
            lengths.append(np.diff(lst.offsets.to_numpy()))
        flat = np.concatenate(flats) if flats else np.zeros(0, np.int32)
        length = np.concatenate(lengths).astype(np.int64) if lengths else np.zeros(0, np.int64)
        width = int(length.max()) if len(length) else 1
        arr = np.full((len(length), width), -1, np.int32)
        pos = np.arange(len(flat)) - np.repeat(np.cumsum(length) - length, length)  # place in its list
        arr[np.repeat(np.arange(len(length)), length), pos] = flat  # lists are written URI-sorted
        arrays[name] = arr
    counts = {c: table.column(c).to_numpy() for c in ("antecedent_count", "consequent_count", "count")}
    return RuleSet(arrays["antecedents"], arrays["consequents"], counts["antecedent_count"],
                   counts["consequent_count"], counts["count"], int(n), uris, meta)


def _compact(rs: RuleSet, track_uris: np.ndarray) -> RuleSet:
    """Renumber items to the tracks that occur in the rules (small files, small models); drop empty columns."""
    used = np.unique(np.concatenate([rs.antecedents.ravel(), rs.consequents.ravel()]))
    used = used[used >= 0]
    remap = np.full(len(track_uris) + 1, -1, np.int64)
    remap[used] = np.arange(len(used))

    def squeeze(arr):
        arr = np.where(arr >= 0, remap[arr], -1)
        width = max(1, int((arr >= 0).sum(axis=1).max())) if len(arr) else 1
        return arr[:, :width]

    return RuleSet(squeeze(rs.antecedents), squeeze(rs.consequents), rs.antecedent_count, rs.consequent_count,
                   rs.count, rs.n_playlists, np.asarray(track_uris[used], dtype=object), rs.meta)


def _empty_ruleset(n: int) -> RuleSet:
    empty = np.zeros((0, 1), np.int64)
    z = np.zeros(0, np.int64)
    return RuleSet(empty, empty, z, z, z, n, np.zeros(0, object))
