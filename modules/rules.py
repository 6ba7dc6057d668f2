"""Association rules over playlists: playlists are transactions, tracks are items.

A rule ``{A, B} -> C`` says "playlists that hold A and B also hold C" with

* ``support`` = share of playlists holding A, B and C,
* ``confidence`` = support(A, B, C) / support(A, B), and
* ``lift`` = confidence / support(C) (how much more likely C is than in a random playlist).

It is a ranking signal and an explanation a person understands at once ("people who put A and B in a
playlist also added C: confidence 0.42, lift 31").

Two miners give the same rules, number for number:

* ``engine="mlxtend"``: ``fpgrowth`` + ``association_rules`` of mlxtend on a *sparse* one-hot frame. The
  reference implementation, any ``max_len``, but pure Python: it fits a few tens of thousands of playlists.
  Before it runs, ``check_mlxtend_budget`` predicts its memory (first from item counts alone, then from exact
  counts of frequent pairs and triples) and refuses (``MemoryBudgetError``) instead of being OOM-killed.
* ``engine="sparse"``: exact item, pair and triple counts with ``scipy.sparse`` (``X^T X`` in column blocks,
  then for each item the co-occurrences inside its playlists, restricted to its frequent-pair partners).
  Rules with at most three items (``max_len`` 2 or 3): 1→1, 2→1 and 1→2. It reproduces mlxtend 0.25's
  definitions exactly, threshold quirks included (see ``_itemset_ok``), and scales to a million playlists.

``RuleModel`` holds the rules in memory indexed by antecedent and scores a playlist's candidates from its
seeds; ``RuleRecommender`` ranks by those scores and fills up with popularity.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy import sparse
from tqdm import tqdm

from modules.base import PlaylistRecommender, popularity_order
from modules.errors import UserError

log = logging.getLogger(__name__)

ENGINES = ("mlxtend", "sparse")
RULES_FORMAT = "playlist-rules/1"
RULE_COLUMNS = ("antecedents", "consequents", "antecedent_count", "consequent_count", "count",
                "antecedent_support", "consequent_support", "support", "confidence", "lift", "leverage",
                "conviction")
AGGREGATIONS = ("max_confidence", "sum_confidence", "max_lift", "sum_lift", "noisy_or")

# Calibrated bytes per object of mlxtend's pure-Python structures (see docs/rules.md, "memory guard"):
# an FP-tree node (FPNode + its children dict + list slot), a frequent itemset (frozenset + float + row)
# and a rule (two frozensets + a row of eight floats + the result frame).
_FP_NODE_BYTES = 420
_ITEMSET_BYTES = 420
_RULE_BYTES = 900
# How the sparse engine cuts the playlists of a track when counting triples: "auto" takes the cheaper of
# "rows" (copy those playlists) and "columns" (walk the partners' columns); tests force each way.
_TRIPLE_WAY = "auto"


class RulesError(UserError, ValueError):
    """Bad parameters or data for rule mining (shown by the CLI as one ``error:`` line)."""


class MemoryBudgetError(RulesError):
    """The mlxtend engine would need more memory than the budget allows; nothing was run."""


# --------------------------------------------------------------------------------------------- transactions


@dataclass
class Transactions:
    """Playlists as a sparse 0/1 matrix: the input of both miners.

    ``matrix`` is CSR int32 of shape ``[n_playlists, n_tracks]`` (row ``i`` is ``pids[i]``, column ``j`` is
    ``track_uris[j]``, URIs sorted); a track listed twice in a playlist counts once. Playlists without tracks
    are kept as empty rows: they are transactions too and lower every support.
    """

    matrix: sparse.csr_matrix
    pids: np.ndarray
    track_uris: np.ndarray

    @property
    def n_playlists(self) -> int:
        return int(self.matrix.shape[0])

    @classmethod
    def from_lists(cls, playlists: list[list[str]], pids=None) -> Transactions:
        """Transactions from lists of track URIs (tests, notebooks, small examples)."""
        uris = np.array(sorted({u for pl in playlists for u in pl}), dtype=object)
        index = {u: i for i, u in enumerate(uris.tolist())}
        rows = np.repeat(np.arange(len(playlists)), [len(pl) for pl in playlists])
        cols = np.array([index[u] for pl in playlists for u in pl], dtype=np.int64)
        pids = np.arange(len(playlists)) if pids is None else np.asarray(pids)
        return cls(_binary_csr(rows, cols, (len(playlists), len(uris))), pids, uris)


def _binary_csr(rows, cols, shape) -> sparse.csr_matrix:
    m = sparse.coo_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=shape).tocsr()
    m.sum_duplicates()
    m.data[:] = 1
    return m


def load_transactions(store, pids=None) -> Transactions:
    """The playlists of a ``PlaylistStore`` (all, or those in ``pids``) as ``Transactions``.

    Reads ``playlist_tracks.parquet`` one row group at a time with Arrow dictionary encoding, so a million
    playlists (64 M entries) load in about 15 s and 1.5 GB, without one Python string per entry
    (``PlaylistStore.interactions`` makes a pandas string column of all entries: fine for small stores).
    """
    all_pids = np.sort(store.playlists["pid"].to_numpy().astype(np.int64))
    row_pids = all_pids if pids is None else np.intersect1d(all_pids, np.asarray(pids, dtype=np.int64))
    uris = store.tracks["track_uri"].to_numpy().astype(object)
    uri_array = pa.array(uris, pa.string())
    pf = pq.ParquetFile(store.path / "playlist_tracks.parquet", read_dictionary=["track_uri"])
    run_pids, run_lengths, col_parts = [], [], []
    batch = 64  # row groups (slices) read together; their dictionaries are unified and mapped once
    for g in range(0, pf.num_row_groups, batch):
        part = pf.read_row_groups(range(g, min(g + batch, pf.num_row_groups)), columns=["pid", "track_uri"])
        part = part.unify_dictionaries()
        pid_arr = part.column("pid").to_numpy()
        # the entries of one playlist are contiguous (ingest writes them so): one run per playlist
        starts = np.flatnonzero(np.r_[True, pid_arr[1:] != pid_arr[:-1]]) if len(pid_arr) else np.zeros(0, int)
        run_pids.append(pid_arr[starts])
        run_lengths.append(np.diff(np.r_[starts, len(pid_arr)]))
        mapping = None
        for chunk in part.column("track_uri").chunks:
            if mapping is None:
                mapping = pc.index_in(chunk.dictionary, value_set=uri_array).to_numpy().astype(np.int32)
            col_parts.append(mapping[chunk.indices.to_numpy()])
        del part
    run_pid = np.concatenate(run_pids) if run_pids else np.zeros(0, np.int64)
    length = np.concatenate(run_lengths).astype(np.int64) if run_lengths else np.zeros(0, np.int64)
    cols = np.concatenate(col_parts) if col_parts else np.zeros(0, np.int32)
    del col_parts
    pos = np.searchsorted(row_pids, run_pid)
    ok = (pos < len(row_pids)) & (row_pids[np.minimum(pos, max(len(row_pids) - 1, 0))] == run_pid) \
        if len(row_pids) else np.zeros(len(run_pid), bool)
    if not ok.all():
        cols = cols[np.repeat(ok, length)]
        pos, length = pos[ok], length[ok]
    shape = (len(row_pids), len(uris))
    if len(np.unique(pos)) != len(pos):  # a playlist in several runs: not written by ingest; take the slow path
        return Transactions(_binary_csr(np.repeat(pos, length), cols, shape), row_pids, uris)
    if np.any(np.diff(pos) < 0):  # runs out of pid order: move them into row order
        order = np.argsort(pos, kind="stable")
        run_start = np.r_[0, np.cumsum(length)[:-1]]
        new_start = np.r_[0, np.cumsum(length[order])[:-1]]
        cols = cols[np.repeat(run_start[order] - new_start, length[order]) + np.arange(len(cols))]
        pos, length = pos[order], length[order]
    per_row = np.zeros(len(row_pids), np.int64)
    per_row[pos] = length
    indptr = np.r_[0, np.cumsum(per_row)]
    m = sparse.csr_matrix((np.ones(len(cols), np.int32), cols, indptr), shape=shape)
    m.sum_duplicates()  # sorts each row; a track listed twice in a playlist counts once
    m.data[:] = 1
    return Transactions(m, row_pids, uris)


def _as_transactions(data, pids=None) -> Transactions:
    if isinstance(data, Transactions):
        return data
    if isinstance(data, (str, Path)):
        from modules.store import open_store

        data = open_store(data)
    return load_transactions(data, pids)


# ------------------------------------------------------------------------------------------------ validation


def check_params(min_support, min_confidence, max_len, engine: str = "sparse") -> None:
    """Validate thresholds once, at the boundary, with messages that say what to do."""
    if engine not in ENGINES:
        raise RulesError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r}).")
    checks = (("min_support (--min-support)", min_support,
               "e.g. 0.001 keeps itemsets found in at least 0.1% of the playlists"),
              ("min_confidence (--min-confidence)", min_confidence,
               "e.g. 0.1 keeps rules that hold at least 10% of the time"))
    for name, value, hint in checks:
        if isinstance(value, bool) or not isinstance(value, Real) or not (0.0 < float(value) <= 1.0):
            raise RulesError(f"{name} must be a number in (0, 1] (got {value!r}); {hint}.")
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, Integral) or max_len < 2):
        raise RulesError(f"max_len (--max-len) must be an integer of at least 2 (got {max_len!r}): a rule needs "
                         "one item on each side. Use 2 for A -> C rules, 3 to add {A, B} -> C.")
    if engine == "sparse" and (max_len is None or max_len > 3):
        raise RulesError(f"the sparse engine mines itemsets of at most 3 tracks (max_len 2 or 3, got {max_len!r}); "
                         "use --engine mlxtend for longer rules (on small data), or --max-len 3.")


# --------------------------------------------------------------------------------------------- exact counting


def _min_count(min_support: float, n: int) -> int:
    # fpgrowth prunes conditional trees with this count (fpgrowth.py: math.ceil(min_support * len(df.index)))
    return math.ceil(min_support * n)


def _itemset_ok(counts: np.ndarray, n: int, min_support: float, minsup: int) -> np.ndarray:
    """mlxtend's test for an itemset of two or more items.

    fpgrowth only grows itemsets whose count reaches ``ceil(min_support * n)`` and then keeps those with
    ``count / n >= min_support``; both are needed because ``min_support * n`` is rounded in floating point
    (0.07 * 100 = 7.000000000000001, so a pair in exactly 7 of 100 playlists is *not* frequent in mlxtend
    while a single track in 7 is).
    """
    return (counts >= minsup) & ((counts / float(n)) >= min_support)


@dataclass
class _Counts:
    """Exact counts of frequent itemsets, items numbered as columns of the transactions."""

    n: int
    item_counts: np.ndarray  # over all tracks
    items: np.ndarray  # frequent tracks (sorted column numbers)
    pairs: np.ndarray  # [n_pairs, 2] columns, a < b
    pair_counts: np.ndarray
    triples: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))  # a < b < c
    triple_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    candidate_triples: int = 0
    max_len: int = 2


def _frequent_items(tx: Transactions, min_support: float) -> tuple[np.ndarray, np.ndarray]:
    counts = np.asarray(tx.matrix.sum(axis=0)).ravel().astype(np.int64)
    # fpcommon.setup_fptree: item_support = np.sum(df.values, axis=0) / float(num_itemsets) >= min_support
    items = np.flatnonzero((counts / float(tx.n_playlists)) >= min_support)
    return counts, items


def _pair_counts(xf_csc: sparse.csc_matrix, n: int, min_support: float, minsup: int, n_jobs: int = 1,
                 block_entries: int = 1 << 25) -> tuple[np.ndarray, np.ndarray]:
    """Frequent pairs (local column numbers, a < b) from ``X^T X``, computed in column blocks.

    Only the upper triangle is formed (rows ``< end`` of each block), and each block is filtered before the
    next, so peak memory is bounded by ``block_entries`` per worker rather than by the number of co-occurring
    pairs. scipy's sparse product releases the GIL, so ``n_jobs`` threads run blocks side by side.
    """
    n1 = xf_csc.shape[1]
    xt = xf_csc.T.tocsr()  # [n1, n]
    block = max(1, min(n1, block_entries // max(n1, 1)))

    def one_block(s: int):
        e = min(n1, s + block)
        c = xt[:e] @ xf_csc[:, s:e]  # CSR [e, e - s]
        hit = np.flatnonzero(c.data >= minsup)
        a = np.searchsorted(c.indptr, hit, side="right").astype(np.int64) - 1
        b = c.indices[hit].astype(np.int64) + s
        v = c.data[hit].astype(np.int64)
        keep = (a < b) & _itemset_ok(v, n, min_support, minsup)
        return a[keep], b[keep], v[keep]

    starts = range(0, n1, block)
    if n_jobs > 1 and len(starts) > 1:
        with ThreadPoolExecutor(n_jobs) as ex:
            parts = list(ex.map(one_block, starts))
    else:
        parts = [one_block(s) for s in starts]
    if not parts:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
    a, b, v = (np.concatenate([p[i] for p in parts]) for i in range(3))
    order = np.lexsort((b, a))
    return np.column_stack([a[order], b[order]]), v[order]


def _forward_neighbours(pairs: np.ndarray, item_counts_local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequent-pair graph oriented from the rarer item to the more common one (ties by column).

    Every triple is then found once, from its rarest item, among that item's (few) playlists: the work per
    item is small for rare items with many partners and for common items with few.
    Returns CSR-like ``indptr`` over local items and ``neighbours`` (sorted per item).
    """
    n1 = len(item_counts_local)
    rank = np.empty(n1, np.int64)
    rank[np.lexsort((np.arange(n1), item_counts_local))] = np.arange(n1)
    a, b = pairs[:, 0], pairs[:, 1]
    forward = rank[a] < rank[b]
    src = np.where(forward, a, b)
    dst = np.where(forward, b, a)
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    indptr = np.zeros(n1 + 1, np.int64)
    np.add.at(indptr, src + 1, 1)
    return np.cumsum(indptr), dst


def _triple_counts(xf_csr: sparse.csr_matrix, xf_csc: sparse.csc_matrix, pairs: np.ndarray,
                   item_counts_local: np.ndarray, n: int, min_support: float, minsup: int,
                   max_candidate_triples: float, show_progress: bool,
                   n_jobs: int = 1) -> tuple[np.ndarray, np.ndarray, int]:
    """Frequent triples (local columns, sorted) counted inside the playlists of their rarest item.

    For item ``a`` with forward partners ``N(a)``: ``S = X[rows(a)][:, N(a)]``, and ``S^T S`` counts
    ``{a, b, c}`` for every pair of partners. A triple can only be frequent if its three pairs are
    (apriori), so nothing else is counted. The number of candidate triples (pairs of partners, summed over
    items) is checked first against ``max_candidate_triples``.
    """
    indptr, nbrs = _forward_neighbours(pairs, item_counts_local)
    degree = np.diff(indptr)
    candidates = int((degree * (degree - 1) // 2).sum())
    if candidates > max_candidate_triples:
        raise MemoryBudgetError(
            f"the sparse engine would examine {candidates:,} candidate triples (pairs of frequent partners of "
            f"one track), more than the bound of {int(max_candidate_triples):,}; raise --min-support, or use "
            "--max-len 2 (pair rules only).")
    row_len = np.diff(xf_csr.indptr)
    col_len = np.diff(xf_csc.indptr)
    work_items = np.flatnonzero(degree >= 2)
    local = threading.local()

    def one_item(a: int):
        nb = nbrs[indptr[a]:indptr[a + 1]]
        rows = xf_csc.indices[xf_csc.indptr[a]:xf_csc.indptr[a + 1]]
        by_rows = row_len[rows].sum() <= col_len[nb].sum() if _TRIPLE_WAY == "auto" else _TRIPLE_WAY == "rows"
        if by_rows:
            # few or short playlists: cut the playlists of a, keep the partner columns
            sub = xf_csr[rows][:, nb]
        else:
            # many playlists, few partners: walk the partners' columns, keep the playlists of a
            if not hasattr(local, "pos"):
                local.pos = np.full(n, -1, np.int64)
            pos = local.pos
            pos[rows] = np.arange(len(rows))
            lens = col_len[nb]
            starts = xf_csc.indptr[nb]
            idx = np.repeat(starts - np.r_[0, np.cumsum(lens)[:-1]], lens) + np.arange(int(lens.sum()))
            r = pos[xf_csc.indices[idx]]
            keep = r >= 0
            cols = np.repeat(np.arange(len(nb)), lens)[keep]
            sub = sparse.csr_matrix((np.ones(int(keep.sum()), np.int32), (r[keep], cols)),
                                    shape=(len(rows), len(nb)))
            pos[rows] = -1
        t = sparse.triu(sub.T @ sub, k=1).tocoo()
        v = t.data.astype(np.int64)
        keep = _itemset_ok(v, n, min_support, minsup)
        if not keep.any():
            return None
        trip = np.column_stack([np.full(int(keep.sum()), a), nb[t.row[keep]], nb[t.col[keep]]])
        return np.sort(trip, axis=1), v[keep]

    bar = tqdm(total=len(work_items), desc="triples", unit="track", disable=not show_progress, mininterval=1.0)
    out = []
    if n_jobs > 1:
        with ThreadPoolExecutor(n_jobs) as ex:
            for res in ex.map(one_item, work_items.tolist(), chunksize=1):
                bar.update()
                if res is not None:
                    out.append(res)
    else:
        for a in work_items.tolist():
            res = one_item(a)
            bar.update()
            if res is not None:
                out.append(res)
    bar.close()
    if not out:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int64), candidates
    trip = np.concatenate([t for t, _ in out])
    cnt = np.concatenate([c for _, c in out])
    order = np.lexsort((trip[:, 2], trip[:, 1], trip[:, 0]))
    return trip[order], cnt[order], candidates


def count_itemsets(tx: Transactions, min_support: float, max_len: int = 3, *, max_candidate_triples: float = 2e9,
                   n_jobs: int = 1, show_progress: bool = False) -> _Counts:
    """Exact counts of every frequent itemset of up to ``max_len`` (2 or 3) tracks, as mlxtend defines them."""
    n = tx.n_playlists
    if n == 0:
        raise RulesError("there are no playlists to mine; check the --mpd path (slices or a store).")
    counts, items = _frequent_items(tx, min_support)
    minsup = _min_count(min_support, n)
    t0 = time.perf_counter()
    xf_csc = tx.matrix[:, items].tocsc() if len(items) else sparse.csc_matrix((n, 0), dtype=np.int32)
    pairs_local, pair_counts = _pair_counts(xf_csc, n, min_support, minsup, n_jobs=n_jobs)
    res = _Counts(n, counts, items, items[pairs_local] if len(pairs_local) else pairs_local, pair_counts,
                  max_len=min(int(max_len), 3))
    log.info("%d playlists: %d frequent tracks, %d frequent pairs (min count %d) in %.1f s", n, len(items),
             len(pair_counts), minsup, time.perf_counter() - t0)
    if max_len >= 3 and len(pair_counts):
        t0 = time.perf_counter()
        xf_csr = xf_csc.tocsr()
        trip, tcounts, cands = _triple_counts(xf_csr, xf_csc, pairs_local, counts[items], n, min_support, minsup,
                                              max_candidate_triples, show_progress, n_jobs=n_jobs)
        res.triples = items[trip] if len(trip) else trip
        res.triple_counts = tcounts
        res.candidate_triples = cands
        log.info("%d frequent triples (%d candidates) in %.1f s", len(tcounts), cands, time.perf_counter() - t0)
    return res


# --------------------------------------------------------------------------------------------------- rule sets


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
        pq.write_table(self.to_arrow(), tmp)
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
        pos = np.arange(len(flat)) - np.repeat(np.r_[0, np.cumsum(length)[:-1]], length)
        arr[np.repeat(np.arange(len(length)), length), pos] = flat  # lists are written URI-sorted
        arrays[name] = arr
    counts = {c: table.column(c).to_numpy() for c in ("antecedent_count", "consequent_count", "count")}
    return RuleSet(arrays["antecedents"], arrays["consequents"], counts["antecedent_count"],
                   counts["consequent_count"], counts["count"], int(n), uris, meta)


def _rules_from_counts(c: _Counts, min_confidence: float) -> RuleSet:
    """Every rule mlxtend's ``association_rules`` derives from itemsets of up to three items."""
    n = c.n
    ante, cons, ca, cc, cac = [], [], [], [], []
    none = np.full(len(c.pair_counts), -1)
    if len(c.pair_counts):
        a, b = c.pairs[:, 0], c.pairs[:, 1]
        ante += [np.column_stack([a, none]), np.column_stack([b, none])]
        cons += [np.column_stack([b, none]), np.column_stack([a, none])]
        ca += [c.item_counts[a], c.item_counts[b]]
        cc += [c.item_counts[b], c.item_counts[a]]
        cac += [c.pair_counts, c.pair_counts]
    if len(c.triple_counts):
        keys = c.pairs[:, 0] * len(c.item_counts) + c.pairs[:, 1]

        def pair_count(x, y):
            return c.pair_counts[np.searchsorted(keys, x * len(c.item_counts) + y)]

        t, tc = c.triples, c.triple_counts
        one = np.full(len(tc), -1)
        for i, j, k in ((0, 1, 2), (0, 2, 1), (1, 2, 0)):  # {t_i, t_j} -> t_k and t_k -> {t_i, t_j}
            pc = pair_count(t[:, i], t[:, j])
            ante += [np.column_stack([t[:, i], t[:, j]]), np.column_stack([t[:, k], one])]
            cons += [np.column_stack([t[:, k], one]), np.column_stack([t[:, i], t[:, j]])]
            ca += [pc, c.item_counts[t[:, k]]]
            cc += [c.item_counts[t[:, k]], pc]
            cac += [tc, tc]
    if not cac:
        return _empty_ruleset(n)
    width = 2
    rs = RuleSet(np.concatenate(ante).reshape(-1, width), np.concatenate(cons).reshape(-1, width),
                 np.concatenate(ca), np.concatenate(cc), np.concatenate(cac), n, np.zeros(0, object))
    return rs.filter_confidence(min_confidence)


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


# ----------------------------------------------------------------------------------------------------- engines


def mine_sparse(tx: Transactions, min_support: float, min_confidence: float, max_len: int = 3, *,
                max_candidate_triples: float = 2e9, n_jobs: int = 1, show_progress: bool = False) -> RuleSet:
    """Exact rules of up to three tracks from sparse co-occurrence counts (the scalable engine)."""
    counts = count_itemsets(tx, min_support, max_len, max_candidate_triples=max_candidate_triples, n_jobs=n_jobs,
                            show_progress=show_progress)
    t0 = time.perf_counter()
    rs = _compact(_rules_from_counts(counts, min_confidence), tx.track_uris).sorted()
    log.info("%d rules in %.1f s", len(rs), time.perf_counter() - t0)
    return rs


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def _mlxtend_parts(n: int, n_items: int, entries: int, itemsets: float, rules: float) -> dict:
    """Bytes of mlxtend's structures: ``df.values`` (dense bool), the sparse frame and its CSR copy, the
    FP-tree (at most one node per entry), the frequent itemsets and the rules."""
    return {"dense_values": float(n) * n_items, "sparse_frame": entries * 24.0 + n_items * 2000.0,
            "fp_tree": entries * float(_FP_NODE_BYTES), "itemsets": itemsets * _ITEMSET_BYTES,
            "rules": rules * _RULE_BYTES}


def estimate_mlxtend(tx: Transactions, min_support: float, max_len: int | None = 3,
                     counts: _Counts | None = None, min_confidence: float | None = None) -> dict:
    """Predict the memory mlxtend's ``fpgrowth`` + ``association_rules`` need on these transactions.

    Exact parts: frequent tracks ``n1`` and frequent pairs (sparse counts, fast), and the dense
    ``n_playlists x n1`` boolean array fpgrowth makes internally (``df.values``). Bounded parts: FP-tree nodes
    (at most one per playlist entry of a frequent track) and itemsets of 3+ tracks (for ``max_len`` 3, the
    exact number of frequent triples when ``counts`` includes them; otherwise the number of sets whose pairs
    are all frequent, an upper bound). Rules: exact when the itemsets are (``max_len`` <= 3 with
    ``min_confidence`` given), else every split of every itemset.
    """
    n = tx.n_playlists
    if counts is None:
        counts = count_itemsets(tx, min_support, max_len=2)
    n1, n2 = len(counts.items), len(counts.pair_counts)
    nnz = int(counts.item_counts[counts.items].sum())
    if max_len is not None and max_len <= 2:
        bigger, bigger_rules, exact = 0.0, 0.0, True
    elif max_len == 3 and counts.max_len >= 3:
        bigger, bigger_rules, exact = float(len(counts.triple_counts)), 6.0 * len(counts.triple_counts), True
    else:
        from scipy.special import comb

        pos = np.searchsorted(counts.items, counts.pairs) if n2 else np.zeros((0, 2), np.int64)
        indptr, _ = _forward_neighbours(pos, counts.item_counts[counts.items]) if n2 else (np.zeros(n1 + 1), None)
        degree = np.diff(indptr).astype(np.float64)
        top = int(degree.max()) + 1 if len(degree) and max_len is None else (max_len or 2)
        bigger = bigger_rules = 0.0
        with np.errstate(over="ignore"):
            for k in range(3, top + 1):  # a k-itemset is its rarest track plus k-1 of that track's partners
                nk = float(comb(degree, k - 1).sum())
                bigger += nk
                bigger_rules += nk * (2.0 ** k - 2)
        exact = False
    itemsets = n1 + n2 + bigger
    rules = 2.0 * n2 + bigger_rules
    if exact and min_confidence is not None:
        rules = float(len(_rules_from_counts(counts, min_confidence)))
    parts = _mlxtend_parts(n, n1, nnz, itemsets, rules)
    return {"playlists": n, "frequent_tracks": n1, "frequent_pairs": n2, "entries": nnz,
            "larger_itemsets": bigger, "larger_itemsets_exact": exact, "itemsets": itemsets, "rules": rules,
            "bytes": float(sum(parts.values())), "parts": parts}


def check_mlxtend_budget(tx: Transactions, min_support: float, min_confidence: float, max_len: int | None,
                         memory_budget: float | None = None) -> tuple[dict, _Counts]:
    """Refuse (``MemoryBudgetError``) when the mlxtend engine would not fit; else its estimate and the counts.

    First a floor from item counts alone (the dense array inside fpgrowth and the FP-tree), so data far too
    large is refused in seconds; then the full estimate from exact pair (and, for ``max_len`` 3, triple) counts.
    ``memory_budget`` defaults to 80% of the memory available now.
    """
    n = tx.n_playlists
    if n == 0:
        raise RulesError("there are no playlists to mine; check the --mpd path (slices or a store).")
    budget = float(memory_budget) if memory_budget is not None else 0.8 * _available_memory()
    # cheap floor first (item counts only): the dense array inside fpgrowth and the FP-tree
    item_counts, items = _frequent_items(tx, min_support)
    entries = int(item_counts[items].sum())
    floor = _mlxtend_parts(n, len(items), entries, 0, 0)
    if sum(floor.values()) > budget:
        raise MemoryBudgetError(
            f"the mlxtend engine would need at least {sum(floor.values()) / 1e9:.1f} GB for {n:,} playlists at "
            f"min_support {min_support:g} (a dense {n:,} x {len(items):,} array of the frequent tracks inside "
            f"fpgrowth, and an FP-tree of up to {entries:,} nodes), before any itemset; the budget is "
            f"{budget / 1e9:.1f} GB. Use --engine sparse (exact, same rules for max_len <= 3), or raise "
            "--min-support.")
    try:  # exact triples are cheap to count and make the estimate exact for max_len <= 3
        base = count_itemsets(tx, min_support, max_len=3 if max_len == 3 else 2, max_candidate_triples=5e7)
    except MemoryBudgetError:
        base = count_itemsets(tx, min_support, max_len=2)
    est = estimate_mlxtend(tx, min_support, max_len, counts=base, min_confidence=min_confidence)
    log.info("mlxtend estimate: %.2f GB for %d frequent tracks, %d pairs, %.3g larger itemsets (budget %.2f GB)",
             est["bytes"] / 1e9, est["frequent_tracks"], est["frequent_pairs"], est["larger_itemsets"], budget / 1e9)
    if est["bytes"] > budget:
        raise MemoryBudgetError(
            f"the mlxtend engine would need about {est['bytes'] / 1e9:.1f} GB for {n:,} playlists at min_support "
            f"{min_support:g} ({est['frequent_tracks']:,} frequent tracks, {est['entries']:,} of their playlist "
            f"entries, {est['frequent_pairs']:,} frequent pairs, "
            f"{'' if est['larger_itemsets_exact'] else 'up to '}{est['larger_itemsets']:.3g} larger itemsets); "
            f"the budget is {budget / 1e9:.1f} GB. Use --engine sparse (exact, same rules for max_len <= 3), "
            f"or raise --min-support, or lower --max-len.")
    return est, base


def mine_mlxtend(tx: Transactions, min_support: float, min_confidence: float, max_len: int | None = 3, *,
                 memory_budget: float | None = None, show_progress: bool = False) -> RuleSet:
    """Rules from mlxtend's ``fpgrowth`` + ``association_rules`` on a sparse one-hot frame.

    Only the columns of frequent tracks go into the frame (a track below ``min_support`` is in no frequent
    itemset, and the row count, hence every support, is unchanged): fpgrowth densifies its input
    (``df.values``), so this keeps that array at ``n_playlists x n_frequent`` booleans.

    ``show_progress`` is accepted for symmetry with the sparse engine; mlxtend has no progress bar (its
    ``verbose`` prints one line per conditional tree).

    Raises
    ------
    MemoryBudgetError
        When ``check_mlxtend_budget`` predicts more than ``memory_budget`` bytes (default: 80% of the memory
        available now); nothing is run.
    """
    import pandas as pd
    from mlxtend.frequent_patterns import association_rules, fpgrowth

    n = tx.n_playlists
    est, base = check_mlxtend_budget(tx, min_support, min_confidence, max_len, memory_budget)
    items = base.items
    if len(items) == 0:
        return _empty_ruleset(n)
    xf = tx.matrix[:, items].astype(bool).tocsc()
    frame = pd.DataFrame.sparse.from_spmatrix(xf, columns=[str(u) for u in tx.track_uris[items]])
    t0 = time.perf_counter()
    itemsets = fpgrowth(frame, min_support=min_support, use_colnames=True, max_len=max_len)
    log.info("fpgrowth: %d itemsets in %.1f s", len(itemsets), time.perf_counter() - t0)
    if itemsets.empty:
        return _empty_ruleset(n)
    rules = association_rules(itemsets, num_itemsets=n, metric="confidence", min_threshold=min_confidence)
    if rules.empty:
        return _empty_ruleset(n)
    index = {u: i for i, u in enumerate(tx.track_uris.tolist())}

    def encode(sets) -> np.ndarray:
        rows = [sorted(index[u] for u in s) for s in sets]
        width = max(len(r) for r in rows)
        return np.array([r + [-1] * (width - len(r)) for r in rows], dtype=np.int64)

    def to_count(s) -> np.ndarray:
        return np.rint(np.asarray(s, dtype=np.float64) * n).astype(np.int64)

    rs = RuleSet(encode(rules["antecedents"]), encode(rules["consequents"]), to_count(rules["antecedent support"]),
                 to_count(rules["consequent support"]), to_count(rules["support"]), n, np.zeros(0, object))
    return _compact(rs, tx.track_uris).sorted()


def _empty_ruleset(n: int) -> RuleSet:
    empty = np.zeros((0, 1), np.int64)
    z = np.zeros(0, np.int64)
    return RuleSet(empty, empty, z, z, z, n, np.zeros(0, object))


def mine_rules(data, *, engine: str = "sparse", min_support: float = 0.005, min_confidence: float = 0.1,
               max_len: int | None = 3, pids=None, memory_budget: float | None = None,
               max_candidate_triples: float = 2e9, n_jobs: int = 1, show_progress: bool = False) -> RuleSet:
    """Association rules of playlists, from either engine.

    Parameters
    ----------
    data : PlaylistStore, Transactions, or path (store directory or MPD slices)
        The playlists (transactions); tracks are the items.
    engine : {"sparse", "mlxtend"}, default="sparse"
        ``"sparse"`` scales to a million playlists (max_len 2 or 3); ``"mlxtend"`` is the reference.
    min_support : float in (0, 1], default=0.005
        Keep itemsets found in at least this share of the playlists.
    min_confidence : float in (0, 1], default=0.1
        Keep rules whose confidence reaches this.
    max_len : int >= 2, default=3
        Largest itemset (antecedent plus consequent).
    pids : array-like, default=None
        Mine only these playlists (e.g. training pids).
    memory_budget : float, default=None
        Bytes the mlxtend engine may use (default 80% of the available memory).
    max_candidate_triples : float, default=2e9
        The sparse engine's bound on the triples it examines (its time and memory).
    n_jobs : int, default=1
        Threads for the sparse engine's products (scipy releases the GIL there).

    Returns
    -------
    RuleSet
        Sorted by lift (ties by confidence, support, then URIs); ``meta`` records the parameters.
    """
    check_params(min_support, min_confidence, max_len, engine)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral) or n_jobs < 1:
        raise RulesError(f"n_jobs (--jobs) must be a positive integer (got {n_jobs!r}).")
    t0 = time.perf_counter()
    tx = _as_transactions(data, pids)
    load_s = time.perf_counter() - t0
    log.info("loaded %d playlists, %d entries in %.1f s", tx.n_playlists, tx.matrix.nnz, load_s)
    if engine == "sparse":
        rs = mine_sparse(tx, float(min_support), float(min_confidence), int(max_len),
                         max_candidate_triples=max_candidate_triples, n_jobs=n_jobs, show_progress=show_progress)
    else:
        rs = mine_mlxtend(tx, float(min_support), float(min_confidence), max_len, memory_budget=memory_budget,
                          show_progress=show_progress)
    rs.meta = {"engine": engine, "min_support": float(min_support), "min_confidence": float(min_confidence),
               "max_len": max_len, "n_playlists": tx.n_playlists, "rules": len(rs),
               "load_seconds": round(load_s, 3), "seconds": round(time.perf_counter() - t0, 3)}
    return rs


# ------------------------------------------------------------------------------------------------- rule model


@dataclass
class RuleScores:
    """Candidates for one playlist, best first.

    ``uris`` and ``scores`` are arrays of shape ``[n_candidates]``; ``best_rule[i]`` is the row (in
    ``RuleModel.rules``) of the rule that best explains ``uris[i]`` (highest confidence, then lift);
    ``firing`` holds every rule row whose antecedent is contained in the seeds; ``ids`` are the candidates'
    positions in ``RuleSet.track_uris``.
    """

    uris: np.ndarray
    scores: np.ndarray
    best_rule: np.ndarray
    firing: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.uris)


class RuleModel:
    """Rules held in memory, indexed by antecedent, to score a playlist's candidates from its seeds.

    Only rules with one consequent and one or two antecedent tracks are indexed (1→1 and 2→1; longer
    antecedents would need every subset of the seeds to be looked up). The index is a sorted array of
    antecedent keys with the span of their rules (strongest first): a playlist of 100 seeds costs one
    vectorised lookup of its seeds and one of the pairs of seeds that both start some 2→1 rule.

    Parameters
    ----------
    rules : RuleSet
    aggregation : {"max_confidence", "sum_confidence", "max_lift", "sum_lift", "noisy_or"}, default="sum_confidence"
        How the rules that fire for one candidate combine into its score (see ``score``).

    Examples
    --------
    >>> model = RuleModel.load("rules.parquet")                      # doctest: +SKIP
    >>> res = model.score(["spotify:track:a", "spotify:track:b"])     # doctest: +SKIP
    >>> model.explain(res.best_rule[0])                              # doctest: +SKIP
    'people who put … in a playlist also added …: confidence 0.42, lift 31'
    """

    def __init__(self, rules: RuleSet, aggregation: str = "sum_confidence"):
        if aggregation not in AGGREGATIONS:
            raise RulesError(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {aggregation!r}).")
        self.rules = rules
        self.aggregation = aggregation
        self._build()

    @classmethod
    def load(cls, path: str | Path, aggregation: str = "sum_confidence") -> RuleModel:
        """A model from a rules Parquet file (the output of ``python -m modules rules``)."""
        return cls(read_rules(path), aggregation)

    def save(self, path: str | Path) -> Path:
        return self.rules.write(path)

    def _build(self) -> None:
        r = self.rules
        ante, cons = r.antecedents, r.consequents
        n_ante = (ante >= 0).sum(axis=1)
        n_cons = (cons >= 0).sum(axis=1)
        usable = np.flatnonzero((n_cons == 1) & (n_ante >= 1) & (n_ante <= 2))
        if len(usable) < len(r):
            log.debug("RuleModel indexes %d of %d rules (one consequent, 1-2 antecedent tracks)", len(usable), len(r))
        a0 = ante[usable, 0].astype(np.int64)
        a1 = ante[usable, 1].astype(np.int64) if ante.shape[1] > 1 else np.full(len(usable), -1, np.int64)
        m = r.metrics(usable, names=["confidence", "lift"])
        conf, lift = m["confidence"], m["lift"]
        del m
        # group by antecedent; inside a group, strongest rule first (lexsort is stable: then by rule row)
        order = np.lexsort((-lift, -conf, a0 * (len(r.track_uris) + 1) + (a1 + 1)))
        self.rule_ids_ = usable[order]
        self.consequent_ = cons[self.rule_ids_, 0].astype(np.int64)
        self.confidence_ = conf[order]
        self.lift_ = lift[order]
        del conf, lift
        a0, a1 = a0[order], a1[order]
        if len(a0):
            starts = np.flatnonzero(np.r_[True, (a0[1:] != a0[:-1]) | (a1[1:] != a1[:-1])])
            ends = np.r_[starts[1:], len(a0)]
        else:
            starts = ends = np.zeros(0, np.int64)
        n_items = len(r.track_uris)
        single = a1[starts] < 0
        # sorted keys of the antecedents (one item: the item; two: a0 * n_items + a1) and their row spans
        self.single_keys_ = a0[starts[single]]
        self.single_spans_ = np.column_stack([starts[single], ends[single]])
        self.pair_keys_ = a0[starts[~single]] * n_items + a1[starts[~single]]
        self.pair_spans_ = np.column_stack([starts[~single], ends[~single]])
        self.pair_item_ = np.zeros(n_items, bool)
        self.pair_item_[a0[starts[~single]]] = True
        self.pair_item_[a1[starts[~single]]] = True
        self.index_ = {u: i for i, u in enumerate(r.track_uris.tolist())}

    @property
    def n_rules(self) -> int:
        return len(self.rule_ids_)

    @staticmethod
    def _lookup(keys: np.ndarray, spans: np.ndarray, query: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(keys, query)
        pos = pos[pos < len(keys)]
        hit = pos[keys[pos] == query[: len(pos)]] if len(pos) else pos
        return spans[hit]

    def fire(self, seed_track_uris) -> tuple[np.ndarray, np.ndarray]:
        """Rows (in the index arrays) of the rules whose antecedent is inside the seeds; and the seed ids.

        Vectorised lookups in sorted key arrays: the seeds' own rules, then every pair of seeds that both
        start some 2→1 rule (4,950 pairs for 100 such seeds, one ``searchsorted``).
        """
        get = self.index_.get
        ids = np.unique(np.fromiter((i for i in (get(u) for u in seed_track_uris) if i is not None), np.int64))
        spans = [self._lookup(self.single_keys_, self.single_spans_, ids)]
        p = ids[self.pair_item_[ids]]
        if len(p) > 1:
            i, j = np.triu_indices(len(p), 1)
            spans.append(self._lookup(self.pair_keys_, self.pair_spans_, p[i] * len(self.pair_item_) + p[j]))
        sp = np.concatenate(spans)
        if len(sp) == 0:
            return np.zeros(0, np.int64), ids
        lengths = sp[:, 1] - sp[:, 0]
        offsets = np.repeat(sp[:, 0] - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
        return offsets + np.arange(int(lengths.sum())), ids

    def score(self, seed_track_uris, k: int | None = None, aggregation: str | None = None) -> RuleScores:
        """Score every candidate a rule points to from these seeds (seeds themselves excluded).

        Aggregations of the rules ``r`` that fire for a candidate:
        ``max_confidence`` = max conf(r); ``sum_confidence`` = Σ conf(r); ``max_lift`` = max lift(r);
        ``sum_lift`` = Σ lift(r); ``noisy_or`` = 1 − Π (1 − conf(r)). Ties are broken by the best rule's
        confidence, then its lift, then URI order, so results are deterministic. Cost: linear in the number
        of firing rules (dense per-track accumulators, no sort of the rules), plus a sort of the candidates.

        Parameters
        ----------
        seed_track_uris : iterable of str
        k : int, default=None
            Keep the best ``k`` candidates (all if None).
        aggregation : str, default=None
            Override the model's aggregation for this call.
        """
        agg = aggregation or self.aggregation
        if agg not in AGGREGATIONS:
            raise RulesError(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {agg!r}).")
        if isinstance(seed_track_uris, str):
            raise TypeError("seed_track_uris must be a list of track URIs, not one string; wrap it in a list.")
        rows, seeds = self.fire(seed_track_uris)
        cons = self.consequent_[rows]
        if len(seeds) and len(cons):
            is_seed = np.zeros(len(self.pair_item_), bool)
            is_seed[seeds] = True
            keep = ~is_seed[cons]
            rows, cons = rows[keep], cons[keep]
        if len(rows) == 0:
            z = np.zeros(0, np.int64)
            return RuleScores(np.zeros(0, object), np.zeros(0, np.float64), z, self.rule_ids_[rows], z)
        n_items = len(self.pair_item_)
        conf, lift = self.confidence_[rows], self.lift_[rows]
        # best rule per candidate: highest confidence, then highest lift, then first row
        best_conf = np.full(n_items, -np.inf)
        np.maximum.at(best_conf, cons, conf)
        m = conf == best_conf[cons]
        best_lift = np.full(n_items, -np.inf)
        np.maximum.at(best_lift, cons[m], lift[m])
        m &= lift == best_lift[cons]
        best_row = np.full(n_items, np.iinfo(np.int64).max)
        np.minimum.at(best_row, cons[m], rows[m])
        cand = np.flatnonzero(best_conf > -np.inf)
        best = best_row[cand]
        if agg == "max_confidence":
            score = best_conf[cand]
        elif agg == "max_lift":
            top = np.full(n_items, -np.inf)
            np.maximum.at(top, cons, lift)
            score = top[cand]
        elif agg == "sum_confidence":
            score = np.bincount(cons, weights=conf, minlength=n_items)[cand]
        elif agg == "sum_lift":
            score = np.bincount(cons, weights=lift, minlength=n_items)[cand]
        else:  # noisy_or
            with np.errstate(divide="ignore"):
                score = -np.expm1(np.bincount(cons, weights=np.log1p(-conf), minlength=n_items)[cand])
        if k is not None and k < len(cand) and np.isfinite(score).all():
            # only what can reach the top k (score at least the k-th best, ties included) goes through the
            # four-key sort: a 100-seed playlist fires rules for thousands of candidates
            kth = np.partition(score, len(score) - k)[len(score) - k]
            sel = np.flatnonzero(score >= kth)
            cand, best, score = cand[sel], best[sel], score[sel]
        rank = np.lexsort((cand, -self.lift_[best], -self.confidence_[best], -score))
        if k is not None:
            rank = rank[:k]
        return RuleScores(self.rules.track_uris[cand[rank]], score[rank], self.rule_ids_[best[rank]],
                          self.rule_ids_[rows], cand[rank])

    def rule(self, row: int) -> dict:
        """One rule as a plain dict (antecedents, consequents, counts, support, confidence, lift, …)."""
        r = self.rules
        out = {"antecedents": [r.track_uris[i] for i in r.antecedents[row] if i >= 0],
               "consequents": [r.track_uris[i] for i in r.consequents[row] if i >= 0]}
        m = r.metrics([row])
        for name in RULE_COLUMNS[2:]:
            v = m[name][0] if name in m else getattr(r, name)[row]
            out[name] = int(v) if name.endswith("count") else float(v)
        return out

    def explain(self, row: int, names: dict | None = None) -> str:
        """A sentence for a rule row, e.g. from ``RuleScores.best_rule``; ``names`` maps URI -> display name."""
        rule = self.rule(int(row))
        label = (lambda u: names.get(u, u)) if names else (lambda u: u)
        ante = " and ".join(label(u) for u in rule["antecedents"])
        cons = " and ".join(label(u) for u in rule["consequents"])
        return (f"people who put {ante} in a playlist also added {cons}: confidence {rule['confidence']:.2f}, "
                f"lift {rule['lift']:.3g}")


# --------------------------------------------------------------------------------------------- recommender


class RuleRecommender(PlaylistRecommender):
    """Rules first, then popularity to fill up to ``k``.

    The rules are mined from the training playlists with the sparse engine; a candidate's score is the
    aggregation of the rules its playlist's seeds fire. Title-only playlists get popularity (rules need seeds).
    The defaults were chosen on a validation split carved from the training playlists of the 3,000-playlist
    benchmark world (``benchmarks/rules_bench.py tune``; docs/rules.md): summed confidence won for every
    threshold tried, and the lowest support won. ``min_count`` is a count of playlists, so it does not carry
    over to much larger data: there, pass ``min_support`` (e.g. 0.0005 for a million playlists).

    Parameters
    ----------
    min_count : int, default=1
        Keep itemsets found in at least this many training playlists (converted to a support so that exactly
        ``count >= min_count`` passes); ignored when ``min_support`` is given.
    min_support : float, default=None
    min_confidence : float, default=0.02
    max_len : int, default=2
        2 for pair rules only (A -> C), 3 to add {A, B} -> C.
    aggregation : str, default="sum_confidence"
        See ``RuleModel.score``.
    engine : {"sparse", "mlxtend"}, default="sparse"
    n_jobs : int, default=1
        Threads for the sparse engine.
    seed : int, default=0
        Unused (rule mining is exact); accepted so every method takes ``seed``.
    show_progress : bool, default=False
    """

    def __init__(self, *, min_count: int = 1, min_support: float | None = None, min_confidence: float = 0.02,
                 max_len: int = 2, aggregation: str = "sum_confidence", engine: str = "sparse", n_jobs: int = 1,
                 seed: int = 0, show_progress: bool = False):
        self.min_count = min_count
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.max_len = max_len
        self.aggregation = aggregation
        self.engine = engine
        self.n_jobs = n_jobs
        self.seed = seed
        self.show_progress = show_progress

    def _support(self, n: int) -> float:
        if self.min_support is not None:
            return float(self.min_support)
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, Integral) or self.min_count < 1:
            raise RulesError(f"min_count must be a positive integer (got {self.min_count!r}).")
        # half a playlist below min_count: count/n >= s and ceil(s*n) both mean count >= min_count exactly
        return min(1.0, (self.min_count - 0.5) / n)

    def fit(self, store, pids=None) -> RuleRecommender:
        if self.aggregation not in AGGREGATIONS:
            raise RulesError(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {self.aggregation!r}).")
        tx = load_transactions(store, pids)
        if tx.n_playlists == 0:
            raise RulesError("no training playlists to mine rules from.")
        rules = mine_rules(tx, engine=self.engine, min_support=self._support(tx.n_playlists),
                           min_confidence=self.min_confidence, max_len=self.max_len, n_jobs=self.n_jobs,
                           show_progress=self.show_progress)
        self.model_ = RuleModel(rules, self.aggregation)
        self.fallback_ = popularity_order(store, pids)
        self.fitted_ = True
        log.info("rules: %d rules (%d indexed) from %d playlists", len(rules), self.model_.n_rules, tx.n_playlists)
        return self

    def _recommend(self, seeds, title, k):
        res = self.model_.score(seeds, k=k)
        return res.uris.tolist(), res.scores
