"""``benchmarks.rule_counts``: the pair rules it counts without mining are the rules the baseline mines."""

import json

from benchmarks import rule_counts


def test_counted_pair_rules_equal_the_mined_table(store, capsys):
    assert rule_counts.main([str(store.path), "--fit"]) == 0
    out = json.loads(capsys.readouterr().out)
    counts = out["pair_rules"]
    assert out["playlists"] > 0 and counts["1"] > 0
    # the defaults mine pair rules at min count 1 with no evidence filter: the count is the table, exactly
    assert out["fit"]["rules"] == counts["1"]
    assert [counts[str(c)] for c in rule_counts.MIN_COUNTS] == sorted(counts.values(), reverse=True)
