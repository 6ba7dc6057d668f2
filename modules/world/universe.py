"""The synthetic long tail of the MPD-shaped world: tracks that exist in playlists but in no open catalog.

Most of the MPD's 2.26 M tracks are in no catalog with audio features; the world's ``--shape mpd`` adds
them as *synthetic* tracks beside the real catalog. Nothing about them is stored: every synthetic entity is a
deterministic function of an integer, so a universe of any size costs no memory and every process (and every
``--jobs`` worker) sees the same one.

* A synthetic track is ``(pool, rank)``: ``pool`` is a taste pool (a catalog genre or a theme of
  ``modules.world.themes``), ``rank`` its popularity rank inside the pool, drawn from a Lomax (Pareto II)
  law ``P(rank ≥ x) = (1 + x / scale) ** -shape``: a flat head (``scale``) and a power-law tail (``shape``),
  which gives the Heaps-like growth of distinct tracks with the number of playlists (docs/world.md).
* Artists: ranks come in blocks of ``BLOCK``; a block holds ``ARTISTS_PER_BLOCK`` artists, each rank's artist
  picked by a hash. So an artist's tracks have neighbouring ranks (similar popularity) and an artist has
  about ``BLOCK / ARTISTS_PER_BLOCK`` tracks in the universe (Poisson-like spread).
* Albums: an artist has 1 to ``MAX_ALBUMS`` albums (by hash); each track's album is a hash of its rank.
* Each artist leans to one mood (by hash), so mood-tilted clusters prefer some artists.
* Names, URIs and durations are hashes of the indices, spelled with small word lists. URIs are
  ``derive_uri(kind, "world-synthetic", pool name, index)``: 22 base-62 characters from a 136-bit hash,
  so they do not meet a real Spotify id (a collision has probability ~1e-34 per pair).

The key of a synthetic track is one int64 ``SYNTHETIC | pool << POOL_SHIFT | rank``; catalog tracks are
their catalog row (< 2**62), so both live in one array.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import orjson

from modules.mpd import derive_uri

SYNTHETIC = 1 << 62
POOL_SHIFT = 44
RANK_MASK = (1 << POOL_SHIFT) - 1
BLOCK = 56
ARTISTS_PER_BLOCK = 3
MAX_ALBUMS = 7
N_MOODS = 8
FRAGMENT_CACHE = 1 << 18  # synthetic track JSON fragments kept (bounded: an LRU, not the universe)

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_SALT = {"artist": 0x9E3779B97F4A7C15, "album": 0xBF58476D1CE4E5B9, "nalb": 0x94D049BB133111EB,
         "mood": 0x2545F4914F6CDD1D, "name": 0xD6E8FEB86659FD93, "dur": 0xA0761D6478BD642F}


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 (wraps mod 2**64, as intended)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash64(kind: str, *parts) -> np.ndarray:
    """A uint64 hash of integer arrays (broadcast), different for each ``kind``."""
    with np.errstate(over="ignore"):
        h = np.full(np.broadcast(*parts).shape if len(parts) > 1 else np.shape(parts[0]), _SALT[kind], np.uint64)
        for p in parts:
            h = _mix(h ^ (np.asarray(p).astype(np.uint64) + np.uint64(_ADD)))
    return h


_MASK = (1 << 64) - 1
_ADD = 0x632BE59BD9B4E019


def _mix_int(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def hash_int(kind: str, *parts: int) -> int:
    """``hash64`` of Python ints, without numpy's per-call cost (the JSON of a track needs a few)."""
    h = _SALT[kind]
    for p in parts:
        h = _mix_int(h ^ ((p + _ADD) & _MASK))
    return h


def is_synthetic(keys: np.ndarray) -> np.ndarray:
    return keys >= SYNTHETIC


def make_keys(pool: int | np.ndarray, rank: np.ndarray) -> np.ndarray:
    return SYNTHETIC | (np.asarray(pool, np.int64) << POOL_SHIFT) | np.asarray(rank, np.int64)


def split_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pool, rank)`` of synthetic keys."""
    keys = np.asarray(keys, np.int64)
    return (keys & ~SYNTHETIC) >> POOL_SHIFT, keys & RANK_MASK


def lomax_ranks(u: np.ndarray, shape: float, scale: float) -> np.ndarray:
    """Ranks from uniforms ``u`` in [0, 1): ``floor(scale * ((1 - u) ** (-1 / shape) - 1))``, capped."""
    x = scale * ((1.0 - u) ** (-1.0 / shape) - 1.0)
    return np.minimum(np.floor(x), float(RANK_MASK)).astype(np.int64)


def artist_of(pool: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The artist index (inside its pool) of each ``(pool, rank)``."""
    pick = hash64("artist", pool, rank) % np.uint64(ARTISTS_PER_BLOCK)
    return (np.asarray(rank, np.int64) // BLOCK) * ARTISTS_PER_BLOCK + pick.astype(np.int64)


def albums_of(pool: np.ndarray, artist: np.ndarray) -> np.ndarray:
    """How many albums each artist has (1..MAX_ALBUMS)."""
    return (hash64("nalb", pool, artist) % np.uint64(MAX_ALBUMS)).astype(np.int64) + 1


def album_of(pool: np.ndarray, rank: np.ndarray, artist: np.ndarray) -> np.ndarray:
    """The album index (inside its artist) of each track."""
    return (hash64("album", pool, rank) % albums_of(pool, artist).astype(np.uint64)).astype(np.int64)


def mood_of(pool: np.ndarray, artist: np.ndarray) -> np.ndarray:
    """The mood (index into the world's moods) each synthetic artist leans to."""
    return (hash64("mood", pool, artist) % np.uint64(N_MOODS)).astype(np.int64)


def codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Artist and album codes of synthetic keys: int64, unique across pools, all >= 2**62 (so they never
    equal a catalog code)."""
    pool, rank = split_keys(keys)
    artist = artist_of(pool, rank)
    album = album_of(pool, rank, artist)
    base = SYNTHETIC | (pool << POOL_SHIFT)
    return base | artist, base | (artist * (MAX_ALBUMS + 1) + album)


def same_artist(keys: np.ndarray, u: np.ndarray, same_album: np.ndarray) -> np.ndarray:
    """For each synthetic anchor key, another track (maybe itself) of the same artist, or of the same album
    where ``same_album``; chosen uniformly by ``u`` in [0, 1) among the ranks of the artist's block."""
    pool, rank = split_keys(keys)
    artist = artist_of(pool, rank)
    album = album_of(pool, rank, artist)
    ranks = (rank // BLOCK * BLOCK)[:, None] + np.arange(BLOCK)[None, :]
    p2 = pool[:, None]
    a2 = artist_of(p2, ranks)
    member = a2 == artist[:, None]
    alb = album_of(p2, ranks, a2)
    member &= ~same_album[:, None] | (alb == album[:, None])
    count = member.sum(1)  # >= 1: the anchor itself
    target = np.minimum((u * count).astype(np.int64), count - 1) + 1
    col = np.argmax(member.cumsum(1) >= target[:, None], axis=1)
    return make_keys(pool, ranks[np.arange(len(keys)), col])


# -- names --------------------------------------------------------------------------------------------------
_ADJ = ("Golden", "Silver", "Wild", "Quiet", "Electric", "Velvet", "Broken", "Lonely", "Midnight", "Neon",
        "Crimson", "Paper", "Hollow", "Bright", "Secret", "Restless", "Gentle", "Savage", "Lucky", "Blue",
        "Burning", "Frozen", "Sweet", "Young", "Distant", "Happy", "Fading", "Endless", "Little", "Heavy")
_NOUN = ("Heart", "River", "Light", "Fire", "Dream", "Road", "Sky", "Ocean", "City", "Summer", "Night",
         "Shadow", "Rain", "Star", "Echo", "Garden", "Mirror", "Wave", "Storm", "Ghost", "Highway", "Moon",
         "Window", "Letter", "Hour", "Horizon", "Thunder", "Island", "Kingdom", "Stranger", "Valley", "Song")
_VERB = ("Hold", "Chase", "Remember", "Call", "Find", "Leave", "Take", "Save", "Wait for", "Run to", "Dance with",
         "Follow", "Miss", "Burn", "Carry", "Break", "Forget", "Need", "Drive", "Keep")
_FIRST = ("Mara", "Jonah", "Lena", "Theo", "Ava", "Milo", "Iris", "Felix", "Nina", "Oscar", "Zoe", "Leo",
          "Ruby", "Cole", "Maya", "Ezra", "Cleo", "Jude", "Nora", "Abel", "Sade", "Dex", "Lila", "Kai")
_LAST = ("Quinlan", "Hart", "Vance", "Moreno", "Sutton", "Reyes", "Calloway", "Brooks", "Lindqvist", "Okafor",
         "Delgado", "Frost", "Ashby", "Marlowe", "Kearney", "Silva", "Whitlock", "Novak", "Harlow", "Bishop")
_PREFIX = ("DJ", "Lil", "MC", "Young", "Big", "King")


def _pick(h: int, words: tuple[str, ...], shift: int) -> str:
    return words[(h >> shift) % len(words)]


def artist_name(pool: int, artist: int) -> str:
    h = hash_int("name", pool, artist, 1)
    form = h % 8
    if form < 3:
        return f"{_pick(h, _FIRST, 8)} {_pick(h, _LAST, 16)}"
    if form < 5:
        return f"The {_pick(h, _ADJ, 8)} {_pick(h, _NOUN, 16)}s"
    if form == 5:
        return f"{_pick(h, _PREFIX, 8)} {_pick(h, _NOUN, 16)}"
    if form == 6:
        return f"{_pick(h, _NOUN, 8)} {_pick(h, _NOUN, 16)}"
    return f"{_pick(h, _FIRST, 8)} & the {_pick(h, _NOUN, 16)}s"


def album_name(pool: int, artist: int, album: int, words: tuple[str, ...] = ()) -> str:
    h = hash_int("name", pool, artist, album + 2)
    form = h % 6
    if words and form == 0:
        return f"{_pick(h, _ADJ, 8)} {_pick(h, words, 16).title()}"
    if form < 3:
        return f"{_pick(h, _ADJ, 8)} {_pick(h, _NOUN, 16)}"
    if form == 3:
        return f"{_pick(h, _NOUN, 8)} of the {_pick(h, _NOUN, 16)}"
    if form == 4:
        return _pick(h, _NOUN, 8) + "s"
    return f"{_pick(h, _ADJ, 8)}"


def track_name(pool: int, rank: int, words: tuple[str, ...] = ()) -> str:
    h = hash_int("name", pool, rank, 0)
    form = h % 7
    if words and form < 3:  # theme pools say their theme in most names
        w = _pick(h, words, 24).title()
        return (f"{w} {_pick(h, _NOUN, 8)}", f"{_pick(h, _ADJ, 8)} {w}", f"{_pick(h, _VERB, 8)} {w}")[form]
    if form < 3:
        return f"{_pick(h, _ADJ, 8)} {_pick(h, _NOUN, 16)}"
    if form == 3:
        return f"{_pick(h, _VERB, 8)} the {_pick(h, _NOUN, 16)}"
    if form == 4:
        return f"{_pick(h, _NOUN, 8)} in the {_pick(h, _NOUN, 16)}"
    if form == 5:
        return f"{_pick(h, _VERB, 8)} Me"
    return _pick(h, _NOUN, 8)


class Universe:
    """Names, URIs and JSON of the synthetic tracks of one world.

    Parameters
    ----------
    pool_names : list of str
        The name of each pool (its index is the key's ``pool``); URIs derive from the name, so a pool keeps
        its tracks when another catalog reorders the pools.
    pool_words : list of tuple of str
        Words the names of a pool's tracks and albums use (a theme's words; empty for genres).
    cache_size : int, default=FRAGMENT_CACHE
        Serialized tracks kept in an LRU cache (a quarter as many artists and albums): the only memory the
        universe takes, and it does not grow past this.
    """

    def __init__(self, pool_names: list[str], pool_words: list[tuple[str, ...]], *, cache_size: int = FRAGMENT_CACHE):
        self.pool_names = list(pool_names)
        self.pool_words = list(pool_words)
        self.fragment = lru_cache(maxsize=cache_size)(self._fragment)
        self._artist = lru_cache(maxsize=max(1, cache_size // 4))(self._artist_fields)
        self._album = lru_cache(maxsize=max(1, cache_size // 4))(self._album_fields)

    def _artist_fields(self, pool: int, artist: int) -> tuple[str, str]:
        return artist_name(pool, artist), derive_uri("artist", "world-synthetic", self.pool_names[pool], str(artist))

    def _album_fields(self, pool: int, artist: int, album: int) -> tuple[str, str]:
        return (album_name(pool, artist, album, self.pool_words[pool]),
                derive_uri("album", "world-synthetic", self.pool_names[pool], str(artist), str(album)))

    def track(self, key: int) -> dict:
        """The MPD track fields (without ``pos``) of one synthetic key."""
        pool, rank = (key & ~SYNTHETIC) >> POOL_SHIFT, key & RANK_MASK
        artist = rank // BLOCK * ARTISTS_PER_BLOCK + hash_int("artist", pool, rank) % ARTISTS_PER_BLOCK
        album = hash_int("album", pool, rank) % (hash_int("nalb", pool, artist) % MAX_ALBUMS + 1)
        artist_n, artist_uri = self._artist(pool, artist)
        album_n, album_uri = self._album(pool, artist, album)
        return {
            "artist_name": artist_n,
            "track_uri": derive_uri("track", "world-synthetic", self.pool_names[pool], str(rank)),
            "artist_uri": artist_uri,
            "track_name": track_name(pool, rank, self.pool_words[pool]),
            "album_uri": album_uri,
            "duration_ms": 120_000 + hash_int("dur", pool, rank) % 240_000,
            "album_name": album_n,
        }

    def _fragment(self, key: int) -> bytes:
        return orjson.dumps(self.track(key))[1:]

    def duration(self, keys: np.ndarray) -> np.ndarray:
        pool, rank = split_keys(keys)
        return 120_000 + (hash64("dur", pool, rank) % np.uint64(240_000)).astype(np.int64)
