"""The MPD-shaped playlist world (``--shape mpd``): the catalog world plus a synthetic long tail and themes.

Real playlists reach far beyond any open catalog: in a 6,071-playlist MPD subset 67 % of the 175,125 distinct
tracks appear in one playlist only, and the full MPD holds 2.26 M distinct tracks. This world keeps the
catalog world's tastes (genres tilted by moods, runs of an artist or album, titles that speak) and adds:

* a synthetic long tail (``modules.world.universe``): a share of each cluster's draws are tracks of the
  cluster's pool that exist in no catalog, with names and URIs but no audio features, drawn from a Lomax law
  fitted so that distinct tracks, one-off tracks, albums and artists grow with the number of playlists as
  the MPD's do (docs/world.md);
* a chart of hits: some draws come from the catalog's most popular tracks whatever the playlist's taste,
  which makes the head as steep as the MPD's (its top track is in 4.7 % of playlists);
* themes (``modules.world.themes``): holidays, decades and events with titles that say them and tracks that
  fit them.

The universe is a function of integers, so generating a million playlists keeps no state beyond the catalog
and a bounded cache of serialized tracks. Same seed, same catalog ⇒ byte-identical files, slice by slice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from modules.errors import InputError
from modules.world import universe as U
from modules.world.catalog_shape import (
    GENERIC_TITLES,
    MAX_TRACKS,
    MIN_ALBUMS,
    MIN_ARTISTS,
    MIN_TRACKS,
    MOODS,
    PlaylistWorld,
    _casing,
    _Cluster,
    _genre_words,
)
from modules.world.themes import KEYWORD_BOOST, THEMES

log = logging.getLogger(__name__)

MPD_WORLD_VERSION = "world-mpd-v1"
MOOD_CANDIDATES = 4  # synthetic draws of a mood cluster: the first of 4 candidates whose artist has the mood


@dataclass
class _PoolCluster:
    catalog: _Cluster  # the cluster's catalog tracks and cumulative weights
    pool: int  # the synthetic pool of its long tail
    mood: int  # -1: none


class MPDWorld(PlaylistWorld):
    """The catalog world's tastes over a track universe shaped like the MPD's.

    Parameters
    ----------
    catalog : DataFrame
        One row per track, as returned by ``modules.catalog.read_catalog``.
    seed : int, default=0
        As in ``PlaylistWorld``; the synthetic universe itself does not depend on it (only which of its
        tracks the playlists draw).
    catalog_share : float, default=0.65
        Share of a cluster's draws taken from the catalog; the rest come from the synthetic long tail.
    hits_share : float, default=0.08
        Share of draws taken from the chart of the catalog's ``n_hits`` most popular tracks, whatever the taste.
    tail_shape, tail_scale : float
        The Lomax law of synthetic ranks inside a pool (``P(rank >= x) = (1 + x / tail_scale) ** -tail_shape``).
    theme_share : float, default=0.22
        Share of playlists that follow a theme (holiday, decade, event) rather than genres and a mood.
    length_mu : float, default=3.92
        Log-mean of the playlist length (log-sd 0.77, clipped to 5..250): mean 66 as in the MPD.
    cache_size : int
        Synthetic tracks kept serialized (``modules.world.universe.Universe``); memory does not grow past it.
    """

    def __init__(self, catalog, *, seed: int = 0, popularity_power: float = 2.5, catalog_share: float = 0.65,
                 hits_share: float = 0.08, n_hits: int = 250, tail_shape: float = 2.6, tail_scale: float = 5400.0,
                 theme_share: float = 0.22, length_mu: float = 3.92, cache_size: int = U.FRAGMENT_CACHE):
        super().__init__(catalog, seed=seed, popularity_power=popularity_power)
        for name, v in (("catalog_share", catalog_share), ("hits_share", hits_share), ("theme_share", theme_share)):
            if not 0.0 <= v <= 1.0:
                raise InputError(f"The {name!r} parameter of MPDWorld must be in [0, 1]. Got {v!r} instead.")
        self.catalog_share, self.hits_share, self.theme_share = catalog_share, hits_share, theme_share
        self.tail_shape, self.tail_scale, self.length_mu = tail_shape, tail_scale, length_mu
        cat = catalog.reset_index(drop=True)

        # the chart: the most popular catalog tracks, drawn by weight whatever the playlist's taste
        order = np.argsort(-self.weight, kind="stable")[:n_hits]
        self._hits = _Cluster(order, np.cumsum(self.weight[order]))

        # themes: catalog tracks that say the theme (boosted), tracks of its genres, an optional mood tilt
        gindex = {g: i for i, g in enumerate(self.genres)}
        text = (cat["track_name"].astype(str) + " \x1f " + cat["album_name"].astype(str)).tolist()
        self.themes = list(THEMES)
        self.theme_genres: list[list[int]] = []
        self._theme_catalog: list[tuple[np.ndarray, np.ndarray]] = []
        genre_rows = {g: set(self.genre_tracks[i].tolist()) for g, i in gindex.items()}
        for th in self.themes:
            gs = [gindex[g] for g in th.genres if g in gindex]
            self.theme_genres.append(gs)
            pat = th.keyword_pattern()
            said = np.array([bool(pat.search(t)) for t in text]) if pat else np.zeros(self.n_tracks, bool)
            fit = np.zeros(self.n_tracks, bool)
            for g in th.genres:
                fit[list(genre_rows.get(g, ()))] = True
            rows = np.flatnonzero(said | fit)
            if len(rows) == 0:
                rows = np.arange(self.n_tracks)  # a catalog without the theme's genres: the theme's tail carries it
            w = self.weight[rows] * np.where(said[rows], KEYWORD_BOOST, 1.0)
            if th.mood is not None:
                w = w * np.exp(4.0 * self.mood_affinity[rows, self.moods.index(th.mood)])
            self._theme_catalog.append((rows, w))
        prior = np.array([th.weight for th in self.themes])
        self.theme_prior = prior / prior.sum()
        self.universe = U.Universe([f"genre:{g}" for g in self.genres] + [f"theme:{t.name}" for t in self.themes],
                                   [()] * len(self.genres) + [t.words for t in self.themes], cache_size=cache_size)
        self._pool_clusters: dict[tuple[str, int, int], _PoolCluster] = {}

    # -- clusters -----------------------------------------------------------------------------------------
    def _pool_cluster(self, kind: str, index: int, mood: int) -> _PoolCluster:
        key = (kind, index, mood)
        c = self._pool_clusters.get(key)
        if c is None:
            if kind == "genre":
                c = _PoolCluster(self._cluster(index, mood), index, mood)
            else:
                rows, w = self._theme_catalog[index]
                if mood >= 0:
                    w = w * np.exp(4.0 * self.mood_affinity[rows, mood])
                c = _PoolCluster(_Cluster(rows, np.cumsum(w)), len(self.genres) + index, mood)
            self._pool_clusters[key] = c
        return c

    # -- sampling -----------------------------------------------------------------------------------------
    def _draw(self, rng, clusters: list[_PoolCluster], mix: np.ndarray, n: int) -> np.ndarray:
        which = rng.choice(len(clusters), size=n, p=mix)
        kind = rng.random(n)
        u = rng.random(n)
        out = np.empty(n, dtype=np.int64)
        hit = kind < self.hits_share
        from_catalog = ~hit & (kind < self.hits_share + (1.0 - self.hits_share) * self.catalog_share)
        if hit.any():
            h = self._hits
            out[hit] = h.tracks[np.minimum(np.searchsorted(h.cum, u[hit] * h.cum[-1], side="right"),
                                           len(h.tracks) - 1)]
        tail = ~hit & ~from_catalog
        cand = U.lomax_ranks(rng.random((int(tail.sum()), MOOD_CANDIDATES)), self.tail_shape, self.tail_scale)
        tail_rows = np.flatnonzero(tail)
        for k, c in enumerate(clusters):
            sel = from_catalog & (which == k)
            if sel.any():
                pos = np.searchsorted(c.catalog.cum, u[sel] * c.catalog.cum[-1], side="right")
                out[sel] = c.catalog.tracks[np.minimum(pos, len(c.catalog.tracks) - 1)]
            mine = which[tail_rows] == k
            if mine.any():
                ranks = cand[mine]
                if c.mood >= 0:
                    match = U.mood_of(np.int64(c.pool), U.artist_of(np.int64(c.pool), ranks)) == c.mood
                    col = np.where(match.any(1), np.argmax(match, axis=1), 0)
                    ranks = ranks[np.arange(len(ranks)), col]
                else:
                    ranks = ranks[:, 0]
                out[tail_rows[mine]] = U.make_keys(c.pool, ranks)
        return out

    def _continuations(self, anchor: np.ndarray, same_album: np.ndarray, u: np.ndarray) -> np.ndarray:
        """As ``PlaylistWorld._continuations``; a run that starts on a synthetic track continues with its artist."""
        syn = U.is_synthetic(anchor)
        pick = np.empty(len(anchor), dtype=np.int64)
        pick[~syn] = super()._continuations(anchor[~syn], same_album[~syn], u[~syn])
        if syn.any():
            pick[syn] = U.same_artist(anchor[syn], u[syn], same_album[syn])
        return pick

    def codes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Artist and album codes of catalog rows and synthetic keys alike."""
        syn = U.is_synthetic(rows)
        safe = np.where(syn, 0, rows)
        artist, album = self.artist_code[safe], self.album_code[safe]
        if syn.any():
            sa, sb = U.codes(rows[syn])
            artist, album = artist.copy(), album.copy()
            artist[syn], album[syn] = sa, sb
        return artist, album

    def durations(self, rows: np.ndarray) -> np.ndarray:
        syn = U.is_synthetic(rows)
        out = self.duration[np.where(syn, 0, rows)].copy()
        if syn.any():
            out[syn] = self.universe.duration(rows[syn])
        return out

    def sample_playlist(self, rng: np.random.Generator, pid: int) -> dict:
        """One playlist as an MPD dict without ``tracks``, plus ``_rows`` (catalog rows and synthetic keys) and
        ``_taste`` (its clusters as ``(kind, index, mood)``, mixture, run probability, theme; never written)."""
        n = int(np.clip(round(rng.lognormal(self.length_mu, 0.77)), MIN_TRACKS, MAX_TRACKS))
        theme = -1
        if rng.random() < self.theme_share:
            theme = int(rng.choice(len(self.themes), p=self.theme_prior))
            th = self.themes[theme]
            mood = self.moods.index(th.mood) if th.mood is not None else -1
            keys = [("theme", theme, mood)]
            gs = self.theme_genres[theme]
            if gs and rng.random() < 0.5:  # some themed playlists add one of the theme's genres as such
                keys.append(("genre", gs[int(rng.integers(len(gs)))], -1))
            g = [k[1] for k in keys if k[0] == "genre"] or [int(rng.choice(len(self.genres), p=self.genre_prior))]
            mix = rng.dirichlet(np.array([4.0, 1.5][: len(keys)]))
        else:
            k = int(rng.choice(3, p=[0.45, 0.35, 0.20])) + 1
            g = [int(rng.choice(len(self.genres), p=self.genre_prior))]
            while len(g) < k:
                nxt = int(rng.choice(len(self.genres), p=self.genre_next[g[-1]]))
                if nxt not in g:
                    g.append(nxt)
            mood = int(rng.choice(len(self.moods), p=self.genre_mood[g[0]])) if rng.random() < 0.55 else -1
            mix = rng.dirichlet(np.full(k, 2.0))
            keys = [("genre", x, mood) for x in g]
        clusters = [self._pool_cluster(*key) for key in keys]
        p_run = float(rng.beta(2.0, 5.0))
        rows = self._sequence(rng, clusters, mix, n, p_run)
        for attempt in range(9):
            artist, album = self.codes(rows)
            if (len(rows) >= MIN_TRACKS and len(np.unique(artist)) >= MIN_ARTISTS
                    and len(np.unique(album)) >= MIN_ALBUMS):
                break
            if attempt == 8:  # pragma: no cover - a catalog with almost no artists
                raise RuntimeError(f"pid {pid}: could not meet MPD's constraints (>={MIN_ARTISTS} artists, "
                                   f">={MIN_ALBUMS} albums) with this catalog")
            if attempt >= 3:
                keys = keys + [("genre", int(rng.choice(len(self.genres), p=self.genre_prior)), -1)]
                clusters = clusters + [self._pool_cluster(*keys[-1])]
                mix = np.full(len(clusters), 1.0 / len(clusters))
            rows = self._sequence(rng, clusters, mix, max(n, MIN_TRACKS), 0.0)
            p_run = 0.0
        if theme >= 0:
            title = self._theme_title(rng, theme)
        else:
            title = self._title(rng, g, mood, rows)
        followers = int(rng.geometric(0.55))
        modified = int(1262304000 + (1509494400 - 1262304000) * max(rng.random(), rng.random()))
        modified -= modified % 86400
        pl = {
            "name": title,
            "collaborative": "true" if rng.random() < 0.02 else "false",
            "pid": pid,
            "modified_at": modified,
            "num_tracks": int(len(rows)),
            "num_albums": int(len(np.unique(album))),
            "num_followers": followers,
            "num_edits": int(1 + rng.poisson(2 + len(rows) / 6)),
            "duration_ms": int(self.durations(rows).sum()),
            "num_artists": int(len(np.unique(artist))),
        }
        if rng.random() < 0.019:
            about = self.themes[theme].name if theme >= 0 else _genre_words(self.genres[g[0]])[0]
            pl["description"] = f"{self.moods[mood] if mood >= 0 else 'my'} {about}"
        pl["_rows"] = rows
        pl["_taste"] = {"clusters": keys, "mix": mix, "p_run": p_run,
                        "theme": self.themes[theme].name if theme >= 0 else None}
        return pl

    def _theme_title(self, rng, theme: int) -> str:
        th = self.themes[theme]
        r = rng.random()
        if r < 0.05:
            title = GENERIC_TITLES[int(rng.integers(len(GENERIC_TITLES)))]
        else:
            title = th.titles[int(rng.integers(len(th.titles)))]
            if r > 0.9 and th.mood is not None:  # "chill christmas", "happy summer"
                words = MOODS[th.mood][1]
                title = f"{words[int(rng.integers(len(words)))]} {title}"
        return _casing(rng, title)

    def _top_artist_name(self, rows: np.ndarray) -> str:
        artist, _ = self.codes(rows)
        vals, counts = np.unique(artist, return_counts=True)
        top = int(rows[np.flatnonzero(artist == vals[np.argmax(counts)])[0]])
        if U.is_synthetic(np.int64(top)):
            return self.universe.track(top)["artist_name"]
        return str(self.artist_names[top])

    # -- writing ------------------------------------------------------------------------------------------
    def fragment(self, row: int) -> bytes:
        """A track's JSON after its ``pos``: the catalog's, cached once, or the universe's (LRU-cached)."""
        return self._fragments[row] if row < U.SYNTHETIC else self.universe.fragment(row)

    def _slice_info(self, first_pid: int, count: int) -> dict:
        return {"generated_on": MPD_WORLD_VERSION, "slice": f"{first_pid}-{first_pid + count - 1}",
                "version": MPD_WORLD_VERSION, "seed": self.seed, "shape": "mpd"}
