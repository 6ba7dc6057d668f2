"""The one place that words a rule for people: "in 23 of 41 playlists with Harlequin Dream by Boy & Bear".

A rule ``A -> C`` explains a recommended ``C`` by its evidence, in counts a person checks at a glance: of the
playlists holding ``A`` (the antecedent count), how many also hold ``C`` (the rule's count). A rule seen in fewer
than ``MIN_EXPLAIN_COUNT`` playlists explains nothing (one playlist that happens to hold both is not a reason), so
it gives no sentence at all rather than a bad one. Confidence and lift stay in the rule table and the Rules page;
they are not repeated here (a lift of 6,070 from a single playlist reads as strong evidence and is none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MIN_EXPLAIN_COUNT = 2
PREFIX = "in "  # every rule sentence starts "in N of M playlists with …" (the app recognises it by this)


def rule_reason(antecedents: Sequence[str], count: int, antecedent_count: int,
                names: Mapping[str, str] | None = None) -> str:
    """"in {count} of {antecedent_count} playlists with {A}" (``A`` the antecedent tracks' names joined by
    "and"), or ``""`` when ``count`` is below ``MIN_EXPLAIN_COUNT``."""
    if count < MIN_EXPLAIN_COUNT or not antecedents:
        return ""
    label = (lambda u: names.get(u, u)) if names else (lambda u: u)
    ante = " and ".join(label(u) for u in antecedents)
    return f"in {count:,} of {antecedent_count:,} playlists with {ante}"
