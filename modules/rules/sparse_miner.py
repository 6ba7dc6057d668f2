"""The sparse engine: exact counts of frequent tracks, pairs and triples with ``scipy.sparse``, and their rules.

Pairs come from ``X^T X`` in column blocks, or, when the pair table could be large, from chunks of playlists
counted apart, spilled to disk and merged (``pair_chunks.py``; the same counts, memory bounded by the chunk);
triples are counted for each track inside its own playlists, restricted to its frequent-pair partners. Rules
with at most three items (``max_len`` 2 or 3): 1→1, 2→1 and 1→2. It reproduces mlxtend 0.25's definitions
exactly, threshold quirks included (see ``_itemset_ok``), and scales to a million playlists;
``tests/test_rules.py`` checks it against ``mlxtend_engine`` rule for rule. The mlxtend engine's memory guard
reuses these counts.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from tqdm import tqdm

from modules.errors import MemoryBudgetError, RulesError
from modules.rules.pair_chunks import choose_chunk, chunked_pair_counts
from modules.rules.ruleset import RuleSet, _compact, _empty_ruleset, rule_metrics
from modules.rules.transactions import Transactions

log = logging.getLogger(__name__)

# How the sparse engine cuts the playlists of a track when counting triples: "auto" takes the cheaper of
# "rows" (copy those playlists) and "columns" (walk the partners' columns); tests force each way.
_TRIPLE_WAY = "auto"


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


def _chunked_pairs(xf_csr: sparse.csr_matrix, n: int, min_support: float, minsup: int, chunk_pairs: int,
                   spill_dir=None, show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``_pair_counts``'s answer from chunks of playlists (``pair_chunks.chunked_pair_counts``), in the same
    order: the merge yields pairs by ``(a, b)``."""
    parts = []
    for a, b, v in chunked_pair_counts(xf_csr, minsup, chunk_pairs, spill_dir=spill_dir,
                                       show_progress=show_progress):
        keep = _itemset_ok(v, n, min_support, minsup)
        parts.append((a[keep], b[keep], v[keep]))
    if not parts:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
    a, b, v = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return np.column_stack([a, b]), v


def _rule_degrees(a: np.ndarray, b: np.ndarray, v: np.ndarray, local_counts: np.ndarray, n: int,
                  min_counts: np.ndarray, min_confidence: float, out: np.ndarray | None = None) -> np.ndarray:
    """``[n1, len(min_counts)]``: the pair rules ``x -> y`` of these pairs (both directions) that reach
    ``min_confidence``, counted per ``x`` at each minimum count (sorted), added into ``out`` when given.

    Each rung's pairs are a subset of the rung below's, so the pairs are filtered rung by rung: a long ladder of
    high minimum counts costs little, since few pairs reach them."""
    deg = np.zeros((len(local_counts), len(min_counts)), np.int64) if out is None else out
    for x, y in ((a, b), (b, a)):  # both directions: x -> y
        ok = rule_metrics(local_counts[x], local_counts[y], v, n, ["confidence"])["confidence"] >= min_confidence
        xs, vs = x[ok], v[ok]
        for t, mc in enumerate(min_counts):
            keep = vs >= mc
            if not keep.all():
                xs, vs = xs[keep], vs[keep]
            if not len(xs):
                break
            deg[:, t] += np.bincount(xs, minlength=len(local_counts))
    return deg


def pair_rule_degrees(tx: Transactions, min_counts, min_confidence: float, n_jobs: int = 1,
                      block_entries: int = 1 << 25, chunk_pairs: int | None = None, spill_dir=None,
                      show_progress: bool = False) -> np.ndarray:
    """How many pair rules ``a -> c`` each track ``a`` starts, at each of ``min_counts`` (``[n_tracks,
    len(min_counts)]``, int32: a track has fewer partners than that, and a long ladder of min counts stays small):
    pairs in at least that many playlists whose confidence reaches ``min_confidence``, as ``mine_sparse`` with
    ``max_len`` 2 would give them, counted block by block without keeping any pair (memory: the block and this
    table), or, when the pairs are many (``chunk_pairs``, as in ``count_itemsets``), from chunks of playlists
    merged on disk. The evidence tuning reads rule counts per setting from it (``tuning.py``): the number of rules
    is the column's sum, with a cap of ``N`` consequents the sum of ``min(N, degree)``."""
    min_counts = np.asarray(sorted(int(c) for c in min_counts), np.int64)
    n = tx.n_playlists
    counts, items = _frequent_items(tx, (min_counts[0] - 0.5) / n)
    out = np.zeros((len(counts), len(min_counts)), np.int32)
    n1 = len(items)
    if n1 < 2:
        return out
    local_counts = counts[items]
    xf_csr = tx.matrix[:, items]
    chunk = choose_chunk(np.diff(xf_csr.indptr), int(min_counts[0]), chunk_pairs)
    if chunk:
        deg = np.zeros((n1, len(min_counts)), out.dtype)  # added to block by block, in place
        for a, b, v in chunked_pair_counts(xf_csr, int(min_counts[0]), chunk, spill_dir=spill_dir,
                                           show_progress=show_progress):
            _rule_degrees(a, b, v, local_counts, n, min_counts, min_confidence, out=deg)
        out[items] = deg
        return out
    xf_csc = xf_csr.tocsc()
    del xf_csr
    xt = xf_csc.T.tocsr()
    block = max(1, min(n1, block_entries // max(n1, 1)))
    lock = threading.Lock()

    def one_block(s: int):
        e = min(n1, s + block)
        c = xt[:e] @ xf_csc[:, s:e]
        hit = np.flatnonzero(c.data >= min_counts[0])
        a = np.searchsorted(c.indptr, hit, side="right").astype(np.int64) - 1
        b = c.indices[hit].astype(np.int64) + s
        v = c.data[hit].astype(np.int64)
        keep = a < b
        deg = _rule_degrees(a[keep], b[keep], v[keep], local_counts, n, min_counts, min_confidence)
        with lock:
            out[items] += deg

    starts = range(0, n1, block)
    if n_jobs > 1 and len(starts) > 1:
        with ThreadPoolExecutor(n_jobs) as ex:
            list(ex.map(one_block, starts))
    else:
        for s in starts:
            one_block(s)
    return out


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
                   n_jobs: int = 1, show_progress: bool = False, chunk_pairs: int | None = None,
                   spill_dir=None) -> _Counts:
    """Exact counts of every frequent itemset of up to ``max_len`` (2 or 3) tracks, as mlxtend defines them.

    ``chunk_pairs``: how pairs are counted (``pair_chunks.choose_chunk``): None (auto) in memory while the
    frequent pairs are bounded by ``pair_chunks.IN_MEMORY_PAIRS``, else in chunks of playlists spilled to a
    temporary folder in ``spill_dir`` (default: the system's); 0 always in memory; a positive number: chunks of
    that many pair occurrences. The counts are the same either way."""
    n = tx.n_playlists
    if n == 0:
        raise RulesError("there are no playlists to mine; check the --mpd path (slices or a store).")
    counts, items = _frequent_items(tx, min_support)
    minsup = _min_count(min_support, n)
    t0 = time.perf_counter()
    xf_csr = tx.matrix[:, items] if len(items) else sparse.csr_matrix((n, 0), dtype=np.int32)
    chunk = choose_chunk(np.diff(xf_csr.indptr), minsup, chunk_pairs)
    xf_csc = None
    if chunk:
        pairs_local, pair_counts = _chunked_pairs(xf_csr, n, min_support, minsup, chunk, spill_dir, show_progress)
    else:
        xf_csc = xf_csr.tocsc()
        del xf_csr  # as before chunking existed: one copy of the frequent columns while pairs are counted
        pairs_local, pair_counts = _pair_counts(xf_csc, n, min_support, minsup, n_jobs=n_jobs)
    res = _Counts(n, counts, items, items[pairs_local] if len(pairs_local) else pairs_local, pair_counts,
                  max_len=min(int(max_len), 3))
    log.info("%d playlists: %d frequent tracks, %d frequent pairs (min count %d; %s) in %.1f s", n, len(items),
             len(pair_counts), minsup, f"chunks of {chunk} pair occurrences" if chunk else "in memory",
             time.perf_counter() - t0)
    if max_len >= 3 and len(pair_counts):
        t0 = time.perf_counter()
        if xf_csc is None:
            xf_csc = xf_csr.tocsc()
        xf_csr = xf_csc.tocsr()
        trip, tcounts, cands = _triple_counts(xf_csr, xf_csc, pairs_local, counts[items], n, min_support, minsup,
                                              max_candidate_triples, show_progress, n_jobs=n_jobs)
        res.triples = items[trip] if len(trip) else trip
        res.triple_counts = tcounts
        res.candidate_triples = cands
        log.info("%d frequent triples (%d candidates) in %.1f s", len(tcounts), cands, time.perf_counter() - t0)
    return res


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


def mine_sparse(tx: Transactions, min_support: float, min_confidence: float, max_len: int = 3, *,
                max_candidate_triples: float = 2e9, n_jobs: int = 1, show_progress: bool = False,
                chunk_pairs: int | None = None, spill_dir=None) -> RuleSet:
    """Exact rules of up to three tracks from sparse co-occurrence counts (the scalable engine); ``chunk_pairs``
    and ``spill_dir`` as in ``count_itemsets``."""
    counts = count_itemsets(tx, min_support, max_len, max_candidate_triples=max_candidate_triples, n_jobs=n_jobs,
                            show_progress=show_progress, chunk_pairs=chunk_pairs, spill_dir=spill_dir)
    t0 = time.perf_counter()
    rs = _compact(_rules_from_counts(counts, min_confidence), tx.track_uris).sorted()
    log.info("%d rules in %.1f s", len(rs), time.perf_counter() - t0)
    return rs
