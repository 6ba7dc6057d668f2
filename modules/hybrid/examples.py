"""What the fusion learns from: the validation playlists, each cut several ways, as labelled candidate sets.

Every validation playlist gives its official cut (the one ``split_store`` made, reported as validation metrics)
and up to ``fusion_cuts - 1`` more in other challenge categories it is long enough for, so the fusion sees every
kind of playlist (title only, 1 seed, 100 random seeds, …) without taking more playlists from the two-tower. A
candidate is labelled positive when it is among the cut's held-out tracks; the playlists are split in two folds
for cross-fitting (``modules.hybrid.selection``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm

Example = tuple[int, bool, list[str], str | None, set[str]]  # playlist index, official cut?, seeds, title, held out
# the fusion's training matrix (every validation cut's candidates): float32 halves the largest array of training;
# the fits read it as they read float64 (the trees and the logistic regression convert their fold's rows)
FEATURES_DTYPE = np.float32


def fusion_examples(split, store, fusion_cuts: int, seed: int) -> list[Example]:
    """(playlist index, official cut?, seeds, title, held-out set) for every cut of every validation playlist of
    ``split`` (``modules.challenge.split_store``)."""
    from modules.challenge import CATEGORIES, cut_playlist

    pls = split.challenge["playlists"]
    entries = store.playlist_tracks
    entries = entries.loc[entries["pid"].isin([p["pid"] for p in pls])].sort_values(["pid", "pos"], kind="stable")
    tracks_of = {int(pid): g["track_uri"].tolist() for pid, g in entries.groupby("pid", sort=False)}
    names = dict(zip(store.playlists["pid"].tolist(), store.playlists["name"].tolist()))
    out = []
    for g, p in enumerate(pls):
        seeds = list(dict.fromkeys(t["track_uri"] for t in p["tracks"]))
        out.append((g, True, seeds, p.get("name"), set(split.truth[str(p["pid"])]["tracks"])))
        full = tracks_of[int(p["pid"])]
        official = split.truth[str(p["pid"])]["category"]
        title = names.get(p["pid"])
        eligible = [c for c in CATEGORIES if c.name != official and len(full) >= c.min_tracks
                    and (not c.title or (isinstance(title, str) and title.strip()))]
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(p["pid"]), 7]))
        for i in rng.permutation(len(eligible))[: max(fusion_cuts - 1, 0)]:
            cat = eligible[int(i)]
            s_pos, h_pos = cut_playlist(len(full), cat, int(p["pid"]) + 1, int(seed))
            out.append((g, False, list(dict.fromkeys(full[j] for j in s_pos)), title if cat.title else None,
                        {full[j] for j in h_pos}))
    return out


def fusion_data(examples: list[Example], candidate_set: Callable, store, show_progress: bool = False) -> dict:
    """Candidate sets (``candidate_set(seeds, title)``), labels and cross-fitting folds of every cut in
    ``examples``: the fusion's training data.

    Keys: ``examples``; ``sets`` (one ``CandidateSet`` per cut, its ``X`` a view of ``X``); ``labels`` (per cut);
    ``X`` (every cut's rows stacked, ``FEATURES_DTYPE``) and ``y``; ``fold`` (0 or 1 per row, by playlist); ``first``
    (playlist index → its official cut); ``artist_of`` (track URI → artist name, for the metrics)."""
    sets, groups, labels = [], [], []
    for g, _official, seeds, title, held in tqdm(examples, desc="fusion features", unit="cut",
                                                 disable=not show_progress):
        cs = candidate_set(seeds, title)
        cs.X = cs.X.astype(FEATURES_DTYPE)  # held as float32 from the start, not only once stacked
        sets.append(cs)
        labels.append(np.fromiter((u in held for u in cs.uris), bool, len(cs.uris)))
        groups.append(np.full(len(cs.uris), g))
    # every cut's rows stacked; each set's rows become a view of the stack: one copy of the features, not two
    X = np.empty((sum(len(cs.X) for cs in sets), sets[0].X.shape[1] if sets else 0), FEATURES_DTYPE)
    start = 0
    for cs in sets:
        X[start:start + len(cs.X)] = cs.X
        cs.X = X[start:start + len(cs.X)]
        start += len(cs.X)
    return {"examples": examples, "sets": sets, "labels": labels, "X": X,
            "y": np.concatenate(labels), "fold": np.concatenate(groups) % 2,
            "first": {g: i for i, (g, is_official, *_) in enumerate(examples) if is_official},
            "artist_of": dict(zip(store.tracks["track_uri"], store.tracks["artist_name"]))}
