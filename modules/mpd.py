"""Read, validate and write the Million Playlist Dataset's own formats: slices, challenge sets, submissions.

Every error names the file, the playlist (index and pid) and the field, so a bad line in a 30 MB slice can
be found without a debugger. Reduced MPD subsets that lack artist/album URIs are accepted: stable stand-ins
are derived from the names (``derive_uri``), and a warning says so once per process.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

TRACK_URI = re.compile(r"spotify:track:[0-9A-Za-z]{22}\Z")
TRACK_FIELDS = ("pos", "artist_name", "track_uri", "artist_uri", "track_name", "album_uri", "duration_ms",
                "album_name")
PLAYLIST_FIELDS = ("name", "collaborative", "pid", "modified_at", "num_tracks", "num_albums", "num_followers",
                   "num_edits", "duration_ms", "num_artists")
SLICE_NAME = re.compile(r"mpd\.slice\.(\d+)-(\d+)\.json\Z")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_warned_derived = False


class MPDFormatError(ValueError):
    """A file that breaks the MPD format, with where and what."""

    def __init__(self, file, message, *, index=None, pid=None, field=None):
        self.file, self.index, self.pid, self.field = str(file), index, pid, field
        where = [self.file]
        if index is not None:
            where.append(f"playlist #{index}")
        if pid is not None:
            where.append(f"pid {pid}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}")


def derive_uri(kind: str, *names: str) -> str:
    """A stable stand-in Spotify URI (``spotify:<kind>:<22 base62>``) derived from names.

    Used where a reduced MPD subset lacks artist/album URIs and by the playlist world; the same names
    always give the same URI, on every machine.
    """
    digest = hashlib.blake2b("\x1f".join((kind, *names)).encode(), digest_size=17).digest()
    n = int.from_bytes(digest, "big")
    chars = []
    for _ in range(22):
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    return f"spotify:{kind}:{''.join(chars)}"


def slice_name(first: int, last: int) -> str:
    return f"mpd.slice.{first}-{last}.json"


def find_slices(path: str | Path) -> list[Path]:
    """The slice files under ``path`` (a directory, or one slice file), in pid order.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist or holds no ``mpd.slice.*.json``.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist: pass an MPD directory or one mpd.slice.*.json file.")
    files = [p for p in path.iterdir() if SLICE_NAME.match(p.name)]
    if not files:
        data = path / "data"
        if data.is_dir():  # the MPD archive unpacks to <root>/data/mpd.slice.*.json
            return find_slices(data)
        raise FileNotFoundError(f"{path} holds no mpd.slice.*.json files.")
    return sorted(files, key=lambda p: int(SLICE_NAME.match(p.name).group(1)))


def _load_json(path: Path):
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise MPDFormatError(path, f"not valid JSON ({err})") from None


def _validate_tracks(path, index, pid, tracks, *, fill_missing: bool) -> int:
    """Check each track of one playlist; fill missing artist/album URIs. Returns how many were filled."""
    global _warned_derived
    if not isinstance(tracks, list):
        raise MPDFormatError(path, f"must be a list, got {type(tracks).__name__}", index=index, pid=pid,
                             field="tracks")
    filled = 0
    match = TRACK_URI.match
    for j, t in enumerate(tracks):
        if not isinstance(t, dict):
            raise MPDFormatError(path, f"track {j} is not an object", index=index, pid=pid, field="tracks")
        uri = t.get("track_uri")
        if uri is None:
            raise MPDFormatError(path, f"track {j} has no track_uri", index=index, pid=pid, field="track_uri")
        if not isinstance(uri, str) or not match(uri):
            raise MPDFormatError(path, f"track {j}: {uri!r} is not a Spotify track URI "
                                 "(spotify:track:<22 letters/digits>)", index=index, pid=pid, field="track_uri")
        if "artist_uri" not in t or "album_uri" not in t:
            if not fill_missing:
                continue
            artist = str(t.get("artist_name") or "")
            if "artist_uri" not in t:
                t["artist_uri"] = derive_uri("artist", artist)
            if "album_uri" not in t:
                t["album_uri"] = derive_uri("album", artist, str(t.get("album_name") or ""))
            filled += 1
    if filled and not _warned_derived:
        _warned_derived = True
        log.warning("%s: tracks without artist_uri/album_uri; using stand-ins derived from artist and album "
                    "names (said once)", path)
    return filled


def validate_playlist(path, index: int, pl, *, need_tracks: bool = True, fill_missing: bool = True) -> None:
    """Validate one playlist object in place (raises ``MPDFormatError``)."""
    if not isinstance(pl, dict):
        raise MPDFormatError(path, f"is not an object (got {type(pl).__name__})", index=index)
    pid = pl.get("pid")
    if pid is None:
        raise MPDFormatError(path, "missing", index=index, field="pid")
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise MPDFormatError(path, f"must be an integer, got {pid!r}", index=index, field="pid")
    if "tracks" not in pl:
        if need_tracks:
            raise MPDFormatError(path, "missing", index=index, pid=pid, field="tracks")
        pl["tracks"] = []
    name = pl.get("name")
    if name is not None and not isinstance(name, str):
        raise MPDFormatError(path, f"must be a string, got {name!r}", index=index, pid=pid, field="name")
    _validate_tracks(path, index, pid, pl["tracks"], fill_missing=fill_missing)


def read_slice(path: str | Path, *, fill_missing: bool = True) -> tuple[dict, list[dict]]:
    """Read and validate one slice file. Returns ``(info, playlists)``."""
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, dict) or "playlists" not in doc:
        raise MPDFormatError(path, "has no 'playlists' list at the top level", field="playlists")
    playlists = doc["playlists"]
    if not isinstance(playlists, list):
        raise MPDFormatError(path, f"must be a list, got {type(playlists).__name__}", field="playlists")
    for i, pl in enumerate(playlists):
        validate_playlist(path, i, pl, fill_missing=fill_missing)
    return doc.get("info") or {}, playlists


def iter_playlists(path: str | Path) -> Iterator[tuple[Path, dict]]:
    """Every playlist of every slice under ``path``, one slice in memory at a time."""
    for file in find_slices(path):
        _, playlists = read_slice(file)
        for pl in playlists:
            yield file, pl


def dump_json_lines(head: dict, key: str, items: Iterable[bytes]) -> bytes:
    """``{...head, key: [item, item]}`` with one (already serialized) item per line: valid JSON that diffs
    and greps well, written without building one giant object."""
    head_bytes = orjson.dumps(head)
    prefix = head_bytes[:-1] + (b"," if len(head_bytes) > 2 else b"") + b'"' + key.encode() + b'":[\n'
    return prefix + b",\n".join(items) + b"\n]}\n"


def write_slice(path: str | Path, info: dict, playlists: Iterable[dict]) -> None:
    """Write one slice file (one playlist per line)."""
    Path(path).write_bytes(dump_json_lines({"info": info}, "playlists", (orjson.dumps(p) for p in playlists)))


# --- challenge sets --------------------------------------------------------------------------------------

def read_challenge(path: str | Path) -> dict:
    """Read and validate a challenge set (``{"date", "version", "playlists": [...]}``)."""
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("playlists"), list):
        raise MPDFormatError(path, "a challenge set needs a 'playlists' list", field="playlists")
    seen = set()
    for i, pl in enumerate(doc["playlists"]):
        validate_playlist(path, i, pl, need_tracks=False)
        if pl["pid"] in seen:
            raise MPDFormatError(path, "appears twice", index=i, pid=pl["pid"], field="pid")
        seen.add(pl["pid"])
    return doc


def write_challenge(path: str | Path, doc: dict) -> None:
    head = {k: v for k, v in doc.items() if k != "playlists"}
    Path(path).write_bytes(dump_json_lines(head, "playlists", (orjson.dumps(p) for p in doc["playlists"])))


# --- submissions -----------------------------------------------------------------------------------------

DEFAULT_TEAM = ("main", "playlist-engine", "playlist-engine@example.org")
SUBMISSION_SIZE = 500


@dataclass
class Submission:
    """A parsed submission: ``rows`` maps pid to its ranked URIs exactly as written."""

    team_info: tuple[str, ...]
    rows: dict[int, list[str]]
    problems: list[str] = field(default_factory=list)


def write_submission(path: str | Path, rows: Iterable[tuple[int, list[str]]],
                     team_info: tuple[str, str, str] = DEFAULT_TEAM) -> int:
    """Write an official submission CSV. Returns the number of playlist lines written."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write("team_info," + ",".join(team_info) + "\n")
        for pid, uris in rows:
            out.write(f"{pid}," + ",".join(uris) + "\n")
            n += 1
    return n


def read_submission(path: str | Path) -> Submission:
    """Read a submission CSV as given; anything malformed is listed in ``problems``, never fixed."""
    path = Path(path)
    team: tuple[str, ...] = ()
    rows: dict[int, list[str]] = {}
    problems: list[str] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split(",")]
            if parts[0] == "team_info":
                team = tuple(parts[1:])
                continue
            try:
                pid = int(parts[0])
            except ValueError:
                problems.append(f"line {lineno}: {parts[0]!r} is not a playlist id")
                continue
            if pid in rows:
                problems.append(f"line {lineno}: pid {pid} appears again (first line kept)")
                continue
            rows[pid] = [p for p in parts[1:] if p]
    if not team:
        problems.append("no team_info line")
    return Submission(team, rows, problems)
