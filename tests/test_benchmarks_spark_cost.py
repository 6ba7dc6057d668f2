"""``benchmarks.spark_cost``'s pure parts: the line through the measured sizes and the table of measured and
projected costs (the stages themselves need Spark and minutes: they are run by hand, docs/scale.md)."""

from __future__ import annotations

import pytest

from benchmarks.spark_cost import line, shown_command, table


def test_the_line_through_the_points():
    a, b = line([(10_000, 100.0), (30_000, 140.0), (100_000, 280.0)])
    assert b == pytest.approx(0.002) and a == pytest.approx(80.0)
    assert line([(10_000, 50.0)]) == (0.0, 0.005)  # one point: through the origin


def run(stage, size, wall, cpu, key="k", exit_code=0):
    return {"stage_name": stage, "settings_key": key, "size": size, "wall_seconds": wall, "cpu_seconds": cpu,
            "peak_tree_rss_mib": 1000, "exit_code": exit_code, "stage": {"playlists": size},
            "load_average": {"before": [15.0], "after": [16.0]}}


def test_the_table_says_what_is_measured_and_what_projected():
    runs = [run("rules", 10_000, 300, 110), run("rules", 30_000, 999, 999, exit_code=1),
            run("rules", 30_000, 340, 130), run("ingest", 10_000, 100, 50)]
    rows = table(runs).splitlines()
    rules = [r for r in rows if r.startswith("| rules")]
    assert [r.split(" | ")[2] for r in rules] == ["measured", "measured", "projected", "projected"]
    # the failed run is left out
    assert "| 30,000 | measured | 340 | 130 | 1,000 | 11,333 | 4,333 | 15.0-16.0 |" in rules[1]
    # the line 280 + 0.002 N s of wall, 100 + 0.001 N s of CPU, at 1M playlists
    assert "| 1,000,000 | projected | 2,280 | 1,100 | | 2,280 | 1,100 | |" in rules[2]
    assert [r.split(" | ")[2] for r in rows if r.startswith("| ingest")] == ["measured"]  # one size: no line


def test_the_recorded_command_is_the_python_one_without_nice():
    child = ["/venv/bin/python", "-m", "benchmarks.spark_cost", "_stage", "als", "--master", "local[2]"]
    assert shown_command(child) == "python -m benchmarks.spark_cost _stage als --master 'local[2]'"
    assert shown_command(["nice", "-n", "10", *child]) == shown_command(child)
