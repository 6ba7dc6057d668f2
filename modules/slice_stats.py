"""Statistics of MPD slices, streamed: the numbers of the MPD's ``stats.txt`` in bounded memory.

``python -m modules stats MPD_DIR`` reads the slices one at a time and keeps only counters: a count per distinct
track (2.26 M for the full MPD, a few hundred MB), the sets of distinct albums and artists, and the titles.
Nothing grows with the number of entries (66 M in the MPD). The keys are those of ``PlaylistStore.stats``, so
a store and the slices it came from give the same table.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modules.mpd import find_slices, read_slices

_PUNCT = re.compile(r"[^\w\s]")


def normalize_title(name: str | None) -> str:
    """A title as the MPD's ``stats.txt`` counts normalized titles: lower case, punctuation dropped, single spaces."""
    return " ".join(_PUNCT.sub("", (name or "").lower()).split())


def top_share(counts: np.ndarray, frac: float) -> float:
    """Share of all entries held by the ``frac`` most common tracks."""
    if len(counts) == 0:
        return 0.0
    k = max(1, int(len(counts) * frac))
    return float(np.sort(counts)[::-1][:k].sum() / counts.sum())


def slice_stats(path: str | Path, *, show_progress: bool = False) -> dict:
    """Statistics of every slice under ``path`` (a directory or one slice file), one slice in memory at a time.

    Returns the keys of ``PlaylistStore.stats``: counts (playlists, entries, unique tracks, albums, artists,
    titles, normalized titles, descriptions), length statistics, ``share_tracks_seen_once`` (distinct tracks in
    one entry only), ``share_entries_top_1pct_tracks``, ``top_track_share`` (entries of the most common track
    per playlist: the share of playlists holding it, tracks being unique in a playlist) and ``top_titles``.

    Raises
    ------
    MPDFormatError
        For a malformed slice, a pid in two places or no playlists at all, naming the file, playlist and field.
    """
    counts: dict[str, int] = {}
    albums: set[str] = set()
    artists: set[str] = set()
    titles: set[str] = set()
    normalized: Counter = Counter()
    lengths: Counter = Counter()
    n_playlists = n_descriptions = sum_artists = sum_albums = 0
    files = find_slices(path)
    slices = read_slices(path)  # the one validation path: a pid twice across slices is refused here too
    for _, _, playlists in tqdm(slices, total=len(files), unit="slice", desc="stats",
                                disable=not show_progress or len(files) < 2):
        for pl in playlists:
            tracks = pl["tracks"]
            n_playlists += 1
            lengths[len(tracks)] += 1
            name = pl.get("name") or ""
            titles.add(name)
            normalized[normalize_title(name)] += 1
            if pl.get("description") is not None:
                n_descriptions += 1
            pl_artists = {t["artist_uri"] for t in tracks}
            pl_albums = {t["album_uri"] for t in tracks}
            sum_artists += _int(pl.get("num_artists"), len(pl_artists))
            sum_albums += _int(pl.get("num_albums"), len(pl_albums))
            artists |= pl_artists
            albums |= pl_albums
            for t in tracks:
                uri = t["track_uri"]
                counts[uri] = counts.get(uri, 0) + 1
    c = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    del counts
    n_entries = int(c.sum())
    lens = np.array(sorted(lengths))
    cum = np.cumsum([lengths[v] for v in lens]) if len(lens) else np.zeros(0)
    return {
        "playlists": n_playlists,
        "tracks": n_entries,
        "unique_tracks": int(len(c)),
        "unique_albums": len(albums),
        "unique_artists": len(artists),
        "unique_titles": len(titles),
        "unique_normalized_titles": len(normalized),
        "playlists_with_descriptions": n_descriptions,
        "avg_playlist_length": n_entries / n_playlists if n_playlists else 0.0,
        "median_playlist_length": _median(lens, cum, n_playlists),
        "avg_artists_per_playlist": sum_artists / n_playlists if n_playlists else 0.0,
        "avg_albums_per_playlist": sum_albums / n_playlists if n_playlists else 0.0,
        "share_tracks_seen_once": float((c == 1).mean()) if len(c) else 0.0,
        "share_entries_top_1pct_tracks": top_share(c, 0.01),
        "top_track_share": float(c.max() / n_playlists) if len(c) else 0.0,
        "top_titles": dict(sorted(normalized.items(), key=lambda kv: (-kv[1], kv[0]))[:20]),
    }


def _median(values: np.ndarray, cum: np.ndarray, n: int) -> float:
    """The median of ``n`` numbers given as sorted distinct ``values`` and cumulative counts ``cum``."""
    if n == 0:
        return 0.0
    lo = values[np.searchsorted(cum, (n - 1) // 2, side="right")]
    hi = values[np.searchsorted(cum, n // 2, side="right")]
    return float((lo + hi) / 2)


def _int(v, default: int) -> int:
    try:
        return int(v) if v is not None else default
    except (TypeError, ValueError):
        return default
