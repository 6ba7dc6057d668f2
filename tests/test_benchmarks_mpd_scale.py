"""benchmarks/mpd_scale.py: the pure parts (goals, merging, the table, atomic writes, timelines), the child
runner's memory and timeout, and one real run on a tiny MPD-shaped world (slow)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks import mpd_scale as ms


def _point(label="x", n=10_000, train=4000, serve=1500, bundle=250.0, p50=20.0, p99=60.0, partial=False):
    return {"label": label, "playlists": n,
            "train": {"wall_seconds": 100.0, "peak_rss_mib": train, "partial": partial},
            "bundle": {"total_mib": bundle}, "serve": {"peak_rss_mib": serve, "p50_ms": p50, "p99_ms": p99},
            "als": {"fit_seconds": 10.0, "peak_rss_mib": 500, "p50_ms": 10.0, "p99_ms": 30.0}}


def test_goals_by_size():
    assert ms.goals_for(6_000)[1] == {"train_peak_mib": 4096, "serve_peak_mib": 2048, "bundle_mib": 300}
    assert ms.goals_for(1_000_000)[1] == {"train_peak_mib": 20480, "serve_peak_mib": 6144, "p50_ms": 50,
                                          "p99_ms": 150}
    assert ms.goals_for(100_000)[0].startswith("1M limits")


def test_evaluate_pass_fail_and_partial():
    assert ms.evaluate(_point())["pass"] is True
    e = ms.evaluate(_point(train=4371, bundle=628.0))
    assert e["pass"] is False
    assert e["goals"]["train_peak_mib"] == {"limit": 4096, "value": 4371, "pass": False}
    assert e["goals"]["bundle_mib"]["pass"] is False and e["goals"]["serve_peak_mib"]["pass"] is True
    # a stage killed by the timeout: under the limit so far is unknown, over it is a failure
    assert ms.evaluate(_point(partial=True))["goals"]["train_peak_mib"]["pass"] is None
    assert ms.evaluate(_point(partial=True))["pass"] is None
    assert ms.evaluate(_point(partial=True, train=5000))["pass"] is False
    big = ms.evaluate(_point(n=1_000_000, train=19000, serve=5000, p50=40, p99=151))
    assert big["goals"]["p99_ms"]["pass"] is False and big["goals"]["p50_ms"]["pass"] is True
    missing = _point()
    del missing["serve"]
    assert ms.evaluate(missing)["pass"] is None


def test_ratios_to_als():
    r = ms.ratios(_point())
    assert r == {"train_seconds": 10.0, "train_peak": 8.0, "p50": 2.0, "p99": 2.0}
    assert ms.ratios({"label": "x", "playlists": 1})["p50"] is None


def test_merge_keeps_other_points_and_replaces_the_same_key():
    doc = ms.merge_point(None, _point("a", 10_000))
    doc = ms.merge_point(doc, _point("b", 10_000))
    doc = ms.merge_point(doc, _point("a", 30_000))
    doc = ms.merge_point(doc, _point("a", 10_000, train=1234))
    assert list(doc["points"]) == ["a/10000", "a/30000", "b/10000"]
    assert doc["points"]["a/10000"]["train"]["peak_rss_mib"] == 1234
    with pytest.raises(SystemExit, match="format"):
        ms.merge_point({"format": "other/1"}, _point())


def test_write_atomic_and_save_point(tmp_path):
    out = tmp_path / "r" / "mpd-scale.json"
    ms.save_point(out, _point("a"))
    ms.save_point(out, _point("b", 30_000))
    doc = json.loads(out.read_text())
    assert set(doc["points"]) == {"a/10000", "b/30000"}
    assert [p.name for p in out.parent.iterdir()] == ["mpd-scale.json"]  # no temporary file left


def test_table_marks_goals_and_partial_stages():
    doc = ms.merge_point(None, _point("good"))
    doc = ms.merge_point(doc, _point("big", train=4371, partial=True))
    text = ms.table(doc)
    lines = text.splitlines()
    assert len(lines) == 4 and lines[1].startswith("|---|")
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    good = next(line for line in lines if line.startswith("| good"))
    big = next(line for line in lines if line.startswith("| big"))
    assert "4,000 ok" in good and good.rstrip().endswith("pass |")
    assert "≥4,371 FAIL" in big and "(partial)" in big and big.rstrip().endswith("fail |")


def test_percentile_matches_numpy():
    rng = np.random.default_rng(0)
    v = rng.exponential(size=301).tolist()
    for q in (0, 50, 99, 100):
        assert ms.percentile(v, q) == pytest.approx(np.percentile(v, q))


def test_stage_peaks_put_memory_on_the_stage_it_came_in():
    events = [{"s": 1.0, "rss_mib": 100, "logger": "modules.validation", "log": "split"},
              {"s": 5.0, "rss_mib": 900, "logger": "modules.two_tower.training", "log": "epoch"},
              {"s": 6.0, "rss_mib": 950, "logger": "tensorflow", "log": "assets"},  # stays in two_tower
              {"s": 9.0, "rss_mib": 400, "logger": "modules.rules.mining", "log": "rules"}]
    samples = [(0.5, 50), (2.0, 200), (7.0, 2000), (10.0, 700)]
    assert ms.stage_peaks(events, samples) == {"start": 50, "validation": 200, "two_tower": 2000, "rules": 700}
    assert ms.stage_name("modules.hybrid.sources") == "hybrid.sources"
    assert ms.stage_name("modules.catalog") == "catalog"


def test_bundle_sizes_sum_to_the_folder(tmp_path):
    (tmp_path / "two_tower").mkdir()
    (tmp_path / "two_tower" / "w.npy").write_bytes(b"x" * 3000)
    (tmp_path / "als").mkdir()
    (tmp_path / "als" / "f.npy").write_bytes(b"x" * 2000)
    (tmp_path / "tracks.parquet").write_bytes(b"x" * 500)
    (tmp_path / "manifest.json").write_bytes(b"{}")
    sizes = ms.bundle_sizes(tmp_path)
    assert sizes["parts_bytes"] == {"two_tower": 3000, "als": 2000, "tracks": 500, "other": 2}
    assert sizes["total_bytes"] == 5502 and "rules" not in sizes


def test_run_child_measures_peak_and_kills_on_timeout(tmp_path):
    # 200 MiB held for a moment: ru_maxrss sees it even if the 1 s sampler does not
    grow = "import time, logging; logging.basicConfig(format='%(levelname)s %(name)s: %(message)s'); " \
           "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); " \
           "logging.getLogger('modules.demo').warning('x'); logging.getLogger('modules.demo').info('y')"
    r = ms.run_child([sys.executable, "-c", grow], timeout=None, log_file=tmp_path / "a.log", echo=False)
    assert r["exit_code"] == 0 and not r["partial"]
    assert r["peak_rss_mib"] >= 200
    r = ms.run_child([sys.executable, "-c", "import time; time.sleep(60)"], timeout=1.5,
                     log_file=tmp_path / "b.log", echo=False)
    assert r["partial"] and r["exit_code"] != 0 and r["wall_seconds"] < 30 and r["peak_rss_mib"] > 0


@pytest.mark.slow
def test_a_real_point_on_a_tiny_world(tmp_path):
    out = tmp_path / "mpd-scale.json"
    assert ms.main(["--sizes", "300", "--epochs", "1", "--per-category", "3", "--label", "t", "--data",
                    str(tmp_path / "bench"), "--out", str(out)]) == 0
    p = json.loads(out.read_text())["points"]["t/300"]
    w = p["world"]
    assert w["playlists"] == 300 and w["entries"] > w["distinct_tracks"] > 0 and 0 < w["share_tracks_once"] < 1
    assert w["train_split"]["playlists"] == 300 - 30
    t = p["train"]
    assert t["exit_code"] == 0 and not t["partial"] and t["peak_rss_mib"] > 100 and t["wall_seconds"] > 0
    assert len(t["two_tower_epochs"]) == 1 and t["events"] and "two_tower" in t["stage_peaks_mib"]
    b = p["bundle"]
    assert sum(b["parts_bytes"].values()) == b["total_bytes"] == ms.folder_bytes(tmp_path / "bench" / "mpd-300-s0"
                                                                                   / "bundle-e1-pc3")
    # the rules the bundle holds (on 270 training playlists the evidence filter may rightly keep none)
    from modules.bundle import Bundle
    rules_file = Bundle(tmp_path / "bench" / "mpd-300-s0" / "bundle-e1-pc3").rules_file
    assert b["parts_bytes"]["two_tower"] > 0 and b["rules"] == pq.ParquetFile(rules_file).metadata.num_rows
    s = p["serve"]
    assert s["playlists"] == 30 and s["p99_ms"] >= s["p50_ms"] > 0
    assert s["peak_rss_mib"] >= s["rss_after_load_mib"] > 100
    a = p["als"]
    assert a["playlists"] == 30 and a["fit_seconds"] > 0 and a["p99_ms"] >= a["p50_ms"] > 0 and a["peak_rss_mib"] > 0
    assert p["evaluation"]["set"] == "6k-10k playlists" and p["ratios_to_als"]["p50"] > 0
    # --train-from store: train reads the split's store; without the world stage the world's store is not needed
    shutil.rmtree(tmp_path / "bench" / "mpd-300-s0" / "store")
    assert ms.main(["--sizes", "300", "--epochs", "1", "--per-category", "3", "--label", "u", "--data",
                    str(tmp_path / "bench"), "--out", str(out), "--stages", "train", "--train-from", "store"]) == 0
    u = json.loads(out.read_text())["points"]["u/300"]
    assert u["train"]["exit_code"] == 0 and "split-pc3/store" in u["train"]["command"]
    assert not (tmp_path / "bench" / "mpd-300-s0" / "store").exists()
    assert "entries" not in u["world"] and u["world"]["train_split"]["playlists"] == 300 - 30


def test_latency_summary_of_wall_and_cpu_times():
    s = ms._latency_summary({"ms": [10.0, 20.0, 30.0, 1000.0], "cpu_ms": [5.0, 6.0, 7.0, 8.0]})
    assert s["playlists"] == 4 and s["p50_ms"] == 25.0 and s["max_ms"] == 1000.0
    assert s["p99_ms"] == pytest.approx(np.percentile([10, 20, 30, 1000], 99), abs=0.05)
    assert s["cpu_p50_ms"] == 6.5 and s["cpu_p99_ms"] <= 8.0
    assert ms._latency_summary({"ms": []}) == {}
