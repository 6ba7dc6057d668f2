"""Challenge splits in the RecSys Challenge 2018 protocol: seeds in, held-out tracks kept for scoring.

``split_mpd`` cuts MPD slices into ``train/`` slices, ``challenge_set.json`` (official format) and
``truth.json``; ``split_store`` does the same cut in memory on a store, which is how later stages carve a
validation split out of their training data without touching the test split.

A playlist is eligible for a category when it has the category's seeds plus a fair number of held-out tracks
(``Category.min_tracks``: at least 10, and at least half as many as the seeds). Categories are filled from
the most demanding down, so long playlists are not used up by the easy categories.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from modules.atomic import FolderKind, atomic_directory, check_output_folder
from modules.errors import MPDFormatError, SplitError
from modules.mpd import find_slices, load_json, read_slice, read_slices, write_challenge, write_slice
from modules.parallel import ordered_map

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Category:
    """One of the ten official challenge categories."""

    name: str
    seeds: int
    title: bool
    random: bool = False

    @property
    def min_tracks(self) -> int:
        return self.seeds + max(10, math.ceil(self.seeds / 2))


CATEGORIES = (
    Category("title_only", 0, True),
    Category("title_first_1", 1, True),
    Category("title_first_5", 5, True),
    Category("first_5_no_title", 5, False),
    Category("title_first_10", 10, True),
    Category("first_10_no_title", 10, False),
    Category("title_first_25", 25, True),
    Category("title_random_25", 25, True, random=True),
    Category("title_first_100", 100, True),
    Category("title_random_100", 100, True, random=True),
)
CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}


SPLIT_FORMAT = "challenge-split/1"
MANIFEST = "split.json"


def _older_split(folder: Path) -> bool:  # written before split.json existed
    return (folder / "challenge_set.json").is_file() and (folder / "truth.json").is_file() and \
        (folder / "train").is_dir()


SPLIT_KIND = FolderKind("challenge split", MANIFEST, "challenge-split/", also=_older_split)


def assign_categories(pids, num_tracks, has_title, per_category: int, seed: int = 0,
                      categories=CATEGORIES) -> dict[int, Category]:
    """Choose ``per_category`` test playlists for each category; returns ``{pid: category}``.

    Deterministic for the same inputs and ``seed``.
    """
    if per_category < 1:
        raise SplitError(f"--per-category must be at least 1 (got {per_category}).")
    pids = np.asarray(pids, dtype=np.int64)
    if len(pids) == 0:
        raise SplitError("there are no playlists to split; pass slices or a store that hold playlists.")
    order = np.argsort(pids, kind="stable")
    pids, num_tracks = pids[order], np.asarray(num_tracks, dtype=np.int64)[order]
    has_title = np.asarray(has_title, dtype=bool)[order]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2018]))
    taken = np.zeros(len(pids), dtype=bool)
    chosen: dict[int, Category] = {}
    for cat in sorted(categories, key=lambda c: (-c.min_tracks, c.name)):
        ok = (num_tracks >= cat.min_tracks) & ~taken
        if cat.title:
            ok &= has_title
        eligible = np.flatnonzero(ok)
        if len(eligible) < per_category:
            raise SplitError(
                f"category {cat.name} needs {per_category} playlists with at least {cat.min_tracks} tracks"
                f"{' and a title' if cat.title else ''}; only {len(eligible)} are left. "
                "Lower --per-category or use more playlists (e.g. a larger world).")
        pick = np.sort(rng.choice(eligible, size=per_category, replace=False))
        taken[pick] = True
        for i in pick:
            chosen[int(pids[i])] = cat
    return chosen


def cut_playlist(n_tracks: int, cat: Category, pid: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the seed tracks and of the held-out tracks of one playlist."""
    positions = np.arange(n_tracks)
    if cat.random:
        rng = np.random.default_rng(np.random.SeedSequence([seed, pid, 25]))
        seeds = np.sort(rng.choice(n_tracks, size=cat.seeds, replace=False))
    else:
        seeds = positions[: cat.seeds]
    held = np.setdiff1d(positions, seeds, assume_unique=True)
    return seeds, held


def _challenge_entry(pl: dict, cat: Category, seed: int) -> tuple[dict, dict]:
    tracks = pl["tracks"]
    seeds, held = cut_playlist(len(tracks), cat, pl["pid"], seed)
    entry = {"pid": pl["pid"]}
    if cat.title and pl.get("name"):
        entry["name"] = pl["name"]
    entry.update({"num_tracks": len(tracks), "num_samples": len(seeds), "num_holdouts": len(held),
                  "tracks": [dict(tracks[i], pos=int(i)) for i in seeds]})
    truth = {"category": cat.name, "tracks": [tracks[i]["track_uri"] for i in held],
             "artists": [str(tracks[i].get("artist_name") or "") for i in held]}
    return entry, truth


def _order(entries: list[dict], truth: dict) -> list[dict]:
    rank = {c.name: i for i, c in enumerate(CATEGORIES)}
    return sorted(entries, key=lambda e: (rank.get(truth[str(e["pid"])]["category"], 99), e["pid"]))


def split_mpd(mpd_path: str | Path, out: str | Path, *, per_category: int = 100, seed: int = 0,
              categories=CATEGORIES, jobs: int = 1) -> dict:
    """Split MPD slices into ``out/train/``, ``out/challenge_set.json``, ``out/truth.json``,
    ``out/track_artists.json`` (track URI → artist name, for the artist-credit R-precision) and ``out/split.json``
    (what the folder is, with the counts).

    Two passes over the slices, each slice read and validated (``read_slice``; ``read_slices``' checks across
    slices in the first pass), ``jobs`` slices at a time in worker processes: the same bytes for any ``jobs``.
    The output directory is replaced only when all is written, and only when it is a split already (or new or
    empty) and does not overlap ``mpd_path``. Returns a summary with the number of test playlists per category.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SplitError(f"jobs (--jobs) must be a positive integer (got {jobs!r}).")
    files = find_slices(mpd_path)
    out = check_output_folder(out, SPLIT_KIND, inputs=[mpd_path])
    counts = _counts(files, jobs)
    if counts is None:  # a problem: read again one slice after the other, which names it as every reader does
        for _ in read_slices(mpd_path):
            pass
        raise SplitError(f"the slices in {mpd_path} changed while they were read; run the command again.")
    pids, lengths, titled, newest = counts
    chosen = assign_categories(pids, lengths, titled, per_category, seed, categories)

    with atomic_directory(out) as tmp:
        (tmp / "train").mkdir()
        entries, truth, artists = [], {}, {}
        n_train = 0
        shared = artists if jobs == 1 else None  # one process fills the one dict; workers fill one per slice
        tasks = [(f, tmp / "train" / f.name, chosen, seed, shared) for f in files]
        for kept, slice_entries, slice_truth, slice_artists in ordered_map(_cut_slice, tasks, jobs):
            n_train += kept
            entries += slice_entries
            truth.update(slice_truth)
            if slice_artists is not artists:  # the first slice naming a track gives its artist
                for uri in slice_artists.keys() - artists.keys():
                    artists[uri] = slice_artists[uri]
        doc = {"date": _date(newest), "version": f"split-v1 seed={seed} per_category={per_category}",
               "playlists": _order(entries, truth)}
        write_challenge(tmp / "challenge_set.json", doc)
        (tmp / "truth.json").write_bytes(orjson.dumps(truth))
        (tmp / "track_artists.json").write_bytes(orjson.dumps(artists, option=orjson.OPT_SORT_KEYS))
        per_cat = {c.name: sum(1 for v in truth.values() if v["category"] == c.name) for c in categories}
        summary = {"train_playlists": n_train, "test_playlists": len(truth), "per_category": per_cat}
        (tmp / MANIFEST).write_bytes(orjson.dumps(
            {"format": SPLIT_FORMAT, "source": str(mpd_path), "seed": seed, "per_category_asked": per_category,
             **summary}, option=orjson.OPT_INDENT_2))
    return summary


def _counts(files: list[Path], jobs: int) -> tuple[list[int], list[int], list[bool], int] | None:
    """Every playlist's pid, length and whether it has a title, and the newest ``modified_at``; ``None`` when a
    slice is invalid, a pid appears twice or there is no playlist (``read_slices`` says which)."""
    pids, lengths, titled = [], [], []
    newest = 0
    try:
        for p, n, t, last in ordered_map(_slice_counts, [(f,) for f in files], jobs):
            pids += p
            lengths += n
            titled += t
            newest = max(newest, last)
    except MPDFormatError:
        return None
    return (pids, lengths, titled, newest) if pids and len(set(pids)) == len(pids) else None


def _slice_counts(file: Path) -> tuple[list[int], list[int], list[bool], int]:
    """One slice's pids, playlist lengths, whether each has a title, and its newest ``modified_at``."""
    _, playlists = read_slice(file)
    return ([pl["pid"] for pl in playlists], [len(pl["tracks"]) for pl in playlists],
            [bool((pl.get("name") or "").strip()) for pl in playlists],
            max((int(pl.get("modified_at") or 0) for pl in playlists), default=0))


def _cut_slice(file: Path, train_file: Path, chosen: dict[int, Category], seed: int, artists: dict | None = None):
    """Write one slice's training playlists to ``train_file``; returns how many, the challenge entries and truth
    of its test playlists (``chosen``), and ``artists`` (a new dict by default) with its tracks' artists added
    (the first one named per track)."""
    info, playlists = read_slice(file)
    keep, entries, truth = [], [], {}
    artists = {} if artists is None else artists
    for pl in playlists:
        for t in pl["tracks"]:
            artists.setdefault(t["track_uri"], str(t.get("artist_name") or ""))
        cat = chosen.get(pl["pid"])
        if cat is None:
            keep.append(pl)
            continue
        entry, t = _challenge_entry(pl, cat, seed)
        entries.append(entry)
        truth[str(pl["pid"])] = t
    write_slice(train_file, dict(info, split=f"train (seed {seed})"), keep)
    return len(keep), entries, truth, artists


def _date(timestamp: int) -> str:
    """The challenge set's ``date`` (UTC) for the newest ``modified_at``; empty when it is no valid date."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return ""


def validate_truth(truth: Mapping, source: str | Path = "truth") -> Mapping:
    """Check the shape of a truth mapping (``{"<pid>": {"category", "tracks": [uri, …], "artists"?}}``, the
    format of ``truth.json``) and return it; ``source`` (the file) is named in every error.

    Raises
    ------
    MPDFormatError
        Naming the file, the pid and the field: not an object, no playlists, a key that is not a pid, a missing
        or empty ``tracks`` list, a ``category`` or ``artists`` of the wrong type.
    """
    if not isinstance(truth, Mapping):
        raise MPDFormatError(source, f"must be a JSON object {{pid: {{category, tracks, artists}}}}, got "
                             f"{type(truth).__name__}; pass the truth.json written by `python -m modules challenge`")
    if not truth:
        raise MPDFormatError(source, "holds no playlists: nothing to score against. Pass the truth.json written "
                             "by `python -m modules challenge`")
    for key, t in truth.items():
        try:
            pid = int(key)
        except (TypeError, ValueError):
            raise MPDFormatError(source, f"key {key!r} is not a playlist id") from None
        if not isinstance(t, Mapping):
            raise MPDFormatError(source, f"must be an object with category and tracks, got {_json(t)}", pid=pid)
        tracks = t.get("tracks")
        if not isinstance(tracks, list) or not tracks or not all(isinstance(u, str) for u in tracks):
            what = "missing" if "tracks" not in t else f"got {_json(tracks)}"
            raise MPDFormatError(source, f"must be a non-empty list of held-out track URIs ({what})", pid=pid,
                                 field="tracks")
        if not isinstance(t.get("category"), str):
            what = "missing" if "category" not in t else f"got {_json(t['category'])}"
            raise MPDFormatError(source, f"must be the category name, a string ({what})", pid=pid,
                                 field="category")
        artists = t.get("artists", [])
        if not isinstance(artists, list) or not all(isinstance(a, str) for a in artists):
            raise MPDFormatError(source, f"must be a list of artist names, got {_json(artists)}", pid=pid,
                                 field="artists")
    return truth


def _json(value, limit: int = 60) -> str:
    """``value`` as JSON text (what the user wrote: ``null``, not ``None``), cut to ``limit`` characters."""
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_truth(path: str | Path) -> dict:
    """Read and check a ``truth.json`` (see ``validate_truth``)."""
    return validate_truth(load_json(path, "truth file"), path)


def read_track_artists(path: str | Path) -> dict[str, str]:
    """Read and check a ``track_artists.json`` (``{track URI: artist name}``)."""
    doc = load_json(path, "track artists file")
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise MPDFormatError(path, "must be a JSON object {track URI: artist name}, as written by "
                             "`python -m modules challenge`")
    return doc


@dataclass
class Split:
    """An in-memory split of a store: training pids, a challenge set and its truth."""

    train_pids: np.ndarray
    challenge: dict
    truth: dict


VALIDATION_SHARE = 0.015  # of the training playlists, held out for early stopping and the fusion
VALIDATION_PER_CATEGORY_RANGE = (10, 50)


def validation_per_category(n_playlists: int) -> int:
    """Validation playlists per challenge category for ``n_playlists`` training playlists: 1.5 % of them
    spread over the ten categories, at least 10 and at most 50 per category (100 to 500 playlists).

    The fusion and its blend are chosen on these playlists, so a fixed handful would leave a million-playlist
    training set with as noisy a choice as a 3,000-playlist one; the cap bounds the fusion's feature matrix
    (about 2,000 cuts of ~1,900 candidates)."""
    lo, hi = VALIDATION_PER_CATEGORY_RANGE
    return int(min(hi, max(lo, round(VALIDATION_SHARE * int(n_playlists) / len(CATEGORIES)))))


def split_store(store, *, per_category: int, seed: int = 0, categories=CATEGORIES,
                pids=None) -> Split:
    """The same cut as ``split_mpd`` over a ``PlaylistStore`` (optionally restricted to ``pids``).

    Later stages use it to carve validation playlists from their training data.
    """
    pl = store.playlists
    if pids is not None:
        pl = pl.loc[pl["pid"].isin(np.asarray(pids))]
    names = pl["name"].fillna("").astype(str).str.strip()
    chosen = assign_categories(pl["pid"].to_numpy(), pl["num_tracks"].to_numpy(), (names != "").to_numpy(),
                               per_category, seed, categories)
    test_pids = np.array(sorted(chosen), dtype=np.int64)
    entries_df = store.playlist_tracks
    entries_df = entries_df.loc[entries_df["pid"].isin(test_pids)].sort_values(["pid", "pos"], kind="stable")
    meta = store.tracks.set_index("track_uri")
    name_of = dict(zip(pl["pid"].tolist(), pl["name"].tolist()))
    entries, truth = [], {}
    for pid, group in entries_df.groupby("pid", sort=True):
        uris = group["track_uri"].tolist()
        tr = [{"track_uri": u, "artist_name": a, "artist_uri": au, "album_uri": alb, "track_name": tn}
              for u, a, au, alb, tn in zip(uris, meta.loc[uris, "artist_name"], meta.loc[uris, "artist_uri"],
                                           meta.loc[uris, "album_uri"], meta.loc[uris, "track_name"])]
        entry, t = _challenge_entry({"pid": int(pid), "name": name_of.get(pid), "tracks": tr}, chosen[int(pid)], seed)
        entries.append(entry)
        truth[str(int(pid))] = t
    train = np.setdiff1d(pl["pid"].to_numpy(), test_pids)
    doc = {"date": "", "version": f"split-v1 seed={seed} per_category={per_category}",
           "playlists": _order(entries, truth)}
    return Split(train, doc, truth)
