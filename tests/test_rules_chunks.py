"""Chunked pair counting (``modules/rules/pair_chunks.py``): the same rules as in memory, whatever the chunk."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from modules.rules import RulesError, Transactions, load_transactions, mine_rules, pair_chunks
from modules.rules.pair_chunks import choose_chunk, chunk_bounds, chunked_pair_counts, pair_occurrences
from modules.rules.sparse_miner import count_itemsets, pair_rule_degrees
from tests.test_rules import FIVE, A, B, C, assert_same_rules, rule_keys, run_cli


def random_transactions(seed: int, n: int = 500, tracks: int = 250) -> Transactions:
    rng = np.random.default_rng(seed)
    lists = [[f"spotify:track:{int(t):04d}" for t in rng.zipf(1.4, int(rng.integers(0, 35))) % tracks]
             for _ in range(n)]
    return Transactions.from_lists(lists)


# chunk sizes (pair occurrences; the playlists list ≈ 27,000): about 14 chunks, 3 chunks, one chunk. One
# playlist per chunk is tested on FIVE below.
CHUNKS = (2_000, 9_000, 10**9)


@pytest.mark.parametrize("min_count,max_len", [(1, 2), (2, 2), (3, 3), (6, 3)])
def test_chunked_rules_equal_in_memory_rules(min_count, max_len):
    tx = random_transactions(min_count)
    support = (min_count - 0.5) / tx.n_playlists
    ref = mine_rules(tx, min_support=support, min_confidence=0.05, max_len=max_len, chunk_pairs=0)
    assert len(ref) > 100
    occurrences = pair_occurrences(np.diff(tx.matrix.indptr))
    for chunk in CHUNKS:
        n_chunks = len(chunk_bounds(np.diff(tx.matrix.indptr), chunk)) - 1
        assert n_chunks >= occurrences // chunk
        got = mine_rules(tx, min_support=support, min_confidence=0.05, max_len=max_len, chunk_pairs=chunk)
        assert_same_rules(ref, got)  # same rules, same order, every metric to 1e-9
        assert got.to_frame().equals(ref.to_frame())  # in fact bit for bit


def test_a_pair_split_across_chunks_is_summed_before_the_minimum_count():
    # A and B share playlists 0, 1 and 4 (count 3): with one playlist per chunk no chunk sees it more than once
    tx = Transactions.from_lists(FIVE)
    assert len(chunk_bounds(np.diff(tx.matrix.indptr), 1)) - 1 == 5
    ref = mine_rules(tx, min_support=0.6, min_confidence=0.5, max_len=2, chunk_pairs=0)
    got = mine_rules(tx, min_support=0.6, min_confidence=0.5, max_len=2, chunk_pairs=1)
    assert rule_keys(got.to_frame()) == rule_keys(ref.to_frame())
    assert set(rule_keys(got.to_frame())) == {((x,), (y,)) for x in (A, B, C) for y in (A, B, C) if x != y}
    assert_same_rules(ref, got)
    f = got.to_frame()
    assert (f["count"] == 3).all() and (f["support"] == 0.6).all()


def test_merged_counts_equal_the_product_and_come_in_key_order(tmp_path):
    tx = random_transactions(4, n=300)
    x = tx.matrix
    full = (x.T @ x).tocoo()
    upper = full.row < full.col
    order = np.lexsort((full.col[upper], full.row[upper]))
    want = np.column_stack([full.row[upper][order], full.col[upper][order], full.data[upper][order]])
    for minsup in (1, 3):
        blocks = list(chunked_pair_counts(x, minsup, 50, merge_entries=40, spill_dir=tmp_path))
        assert len(blocks) > 3
        got = np.column_stack([np.concatenate([b[i] for b in blocks]) for i in range(3)])
        np.testing.assert_array_equal(got, want[want[:, 2] >= minsup])
    assert list(tmp_path.iterdir()) == []  # the spill folder is deleted


def test_pair_rule_degrees_do_not_depend_on_chunks():
    tx = random_transactions(5)
    ref = pair_rule_degrees(tx, [1, 2, 3, 5, 10], 0.02, chunk_pairs=0)
    assert ref[:, 0].sum() > ref[:, -1].sum() > 0
    for chunk in CHUNKS:
        np.testing.assert_array_equal(pair_rule_degrees(tx, [1, 2, 3, 5, 10], 0.02, chunk_pairs=chunk), ref)


def test_chunked_equals_mlxtend_on_the_world(store):
    tx = load_transactions(store)
    m = mine_rules(tx, engine="mlxtend", min_support=0.0075, min_confidence=0.1, max_len=3)
    s = mine_rules(tx, engine="sparse", min_support=0.0075, min_confidence=0.1, max_len=3, chunk_pairs=5_000)
    assert len(s) > 0
    assert_same_rules(s, m)


def test_chunk_bounds_cover_every_playlist_and_respect_the_size():
    lens = np.array([0, 3, 10, 2, 100, 1, 4, 4, 0])
    bounds = chunk_bounds(lens, 50)
    assert bounds[0] == 0 and bounds[-1] == len(lens) and np.all(np.diff(bounds) >= 1)
    pairs = lens * (lens - 1) // 2
    for r0, r1 in zip(bounds[:-1], bounds[1:], strict=True):
        assert pairs[r0:r1].sum() <= 50 or r1 - r0 == 1  # a playlist over the size is a chunk of its own
    assert pair_occurrences(lens) == pairs.sum()


def test_auto_chunks_only_when_the_pair_table_could_be_large(monkeypatch, tmp_path, caplog):
    lens = np.full(10, 11)  # 550 pair occurrences
    assert choose_chunk(lens, 1, None) == 0
    assert choose_chunk(lens, 1, 7) == 7 and choose_chunk(lens, 1, 0) == 0
    monkeypatch.setattr(pair_chunks, "IN_MEMORY_PAIRS", 100)
    assert choose_chunk(lens, 1, None) == pair_chunks.DEFAULT_CHUNK_PAIRS
    assert choose_chunk(lens, 6, None) == 0  # at most 550 / 6 frequent pairs
    tx = random_transactions(6)
    with caplog.at_level(logging.INFO, logger="modules.rules"):
        counts = count_itemsets(tx, 0.5 / tx.n_playlists, max_len=2, spill_dir=tmp_path)
    assert "chunks of" in caplog.text and "spilled" in caplog.text
    ref = count_itemsets(tx, 0.5 / tx.n_playlists, max_len=2, chunk_pairs=0)
    np.testing.assert_array_equal(counts.pairs, ref.pairs)
    np.testing.assert_array_equal(counts.pair_counts, ref.pair_counts)


def test_bad_chunk_pairs_say_what_to_do(store, tmp_path):
    with pytest.raises(RulesError, match=r"chunk_pairs \(--chunk-pairs\) must be an integer >= 0"):
        mine_rules(Transactions.from_lists(FIVE), min_support=0.4, chunk_pairs=-1)
    res = run_cli("rules", "--mpd", str(store.path), "--out", str(tmp_path / "r.parquet"), "--chunk-pairs", "-5")
    assert res.returncode == 2 and "error: chunk_pairs (--chunk-pairs)" in res.stderr
    res = run_cli("rules", "--mpd", str(store.path), "--out", str(tmp_path / "r.parquet"), "--spill-dir",
                  str(tmp_path / "missing"))
    assert res.returncode == 2 and "--spill-dir" in res.stderr and "Traceback" not in res.stderr


def test_cli_chunked_writes_the_same_file(store, tmp_path):
    outs = []
    for chunk in ("0", "2000"):
        out = tmp_path / f"r{chunk}.parquet"
        res = run_cli("rules", "--mpd", str(store.path), "--out", str(out), "--min-support", "0.0075",
                      "--chunk-pairs", chunk, "--spill-dir", str(tmp_path))
        assert res.returncode == 0, res.stderr
        outs.append(out)
    import pandas as pd

    a, b = (pd.read_parquet(o) for o in outs)
    assert len(a) > 0 and a.equals(b)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full (every write: ENOSPC)")
def test_a_full_disk_names_the_spill_folder_and_the_way_out(tmp_path, monkeypatch):
    # the third chunk's file goes to /dev/full, whose writes fail as a full disk does
    real_open, opened = open, []

    def open_third_on_full_disk(path, mode="r", *args, **kwargs):
        opened.append(path)
        return real_open("/dev/full" if len(opened) == 3 else path, mode, *args, **kwargs)

    monkeypatch.setattr(pair_chunks, "open", open_third_on_full_disk, raising=False)
    tx = random_transactions(5)
    with pytest.raises(RulesError, match=r"filled its disk after 2 chunks.*--spill-dir DIR.*TMPDIR") as e:
        list(chunked_pair_counts(tx.matrix, 1, 2_000, spill_dir=tmp_path))
    assert str(tmp_path) in str(e.value)
    assert list(tmp_path.iterdir()) == []  # the spill folder is gone with its two finished chunks
