"""Association rules for browsing: ``RuleTable`` (thresholds and track search over a rule set of any size, names
built only for the rows shown) and ``rule_graph`` (a small network layout of the first rules)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modules.errors import ExploreError


class RuleTable:
    """A rule set for browsing: thresholds and track search run on arrays, names are built only for the rows
    shown (a bundle can hold millions of rules; building a named table of all of them takes seconds).

    Parameters
    ----------
    rules : RuleSet or path
        ``Recommender.rule_model.rules``, or a ``rules.parquet`` file.
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

    SORTS = ("count", "confidence", "support", "lift")  # the first is the default: rules with support first

    def filter(self, *, min_support: float = 0.0, min_confidence: float = 0.0, min_lift: float = 0.0,
               min_count: int = 0, query: str = "", sort: str = "count", limit: int = 200) -> tuple[pd.DataFrame, int]:
        """The first ``limit`` rules (by ``sort``, descending; ties by count, then confidence, then the rule set's
        order: lift, confidence, support) at or above the thresholds that involve a track whose name contains every
        word of ``query``, and how many rules match in all. The default, ``"count"``, opens on the rules seen in
        the most playlists: a rule from one playlist has confidence 1 and a huge lift, and says nothing.

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
        keys = [-self.confidence[rows], -self.count[rows]]  # lexsort: last key first; stable for the rest
        if sort not in ("count", "confidence"):
            keys.append(-getattr(self, sort)[rows])
        elif sort == "confidence":
            keys = [-self.count[rows], -self.confidence[rows]]
        rows = rows[np.lexsort(keys)]
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
