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

from modules.errors import InputError, MissingInputError, MPDFormatError

log = logging.getLogger(__name__)

TRACK_URI = re.compile(r"spotify:track:[0-9A-Za-z]{22}\Z")
TRACK_FIELDS = ("pos", "artist_name", "track_uri", "artist_uri", "track_name", "album_uri", "duration_ms",
                "album_name")
PLAYLIST_FIELDS = ("name", "collaborative", "pid", "modified_at", "num_tracks", "num_albums", "num_followers",
                   "num_edits", "duration_ms", "num_artists")
SLICE_NAME = re.compile(r"mpd\.slice\.(\d+)-(\d+)\.json\Z")
_INT32, _INT64 = (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1)
# Integer fields of a playlist that the store keeps, with the range of their column (num_tracks is recounted).
PLAYLIST_INTS = {"modified_at": _INT64, "num_albums": _INT32, "num_followers": _INT32, "num_edits": _INT32,
                 "duration_ms": _INT64, "num_artists": _INT32}
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_warned_derived = False


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
    MissingInputError
        When ``path`` does not exist or holds no ``mpd.slice.*.json`` (a ``FileNotFoundError``).
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise MissingInputError(f"{path} does not exist: pass an MPD directory or one mpd.slice.*.json file.")
    files = [p for p in path.iterdir() if SLICE_NAME.match(p.name) and p.is_file()]
    if not files:
        data = path / "data"
        if data.is_dir():  # the MPD archive unpacks to <root>/data/mpd.slice.*.json
            return find_slices(data)
        raise MissingInputError(f"{path} holds no mpd.slice.*.json files.")
    return sorted(files, key=lambda p: int(SLICE_NAME.match(p.name).group(1)))


def load_json(path: str | Path, what: str = "file"):
    """The JSON document in ``path``; a missing, unreadable or truncated file is a ``UserError`` naming it."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{what} {path} does not exist.")
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; pass the JSON file.")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{what} {path} cannot be read ({err.strerror}).") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise MPDFormatError(path, f"not valid JSON ({err}); is the file complete?") from None


def _int_problem(value, bounds) -> str | None:
    """Why ``value`` is not an integer within ``bounds`` (None when it is, or when it is missing)."""
    if value is None:
        return None
    n = None
    if type(value) is int:
        n = value
    elif isinstance(value, str):  # reduced MPD subsets may quote their numbers
        try:
            n = int(value)
        except ValueError:
            pass
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    if n is None:
        return f"must be an integer, got {value!r}"
    if not bounds[0] <= n <= bounds[1]:
        return f"{n} is out of range ({bounds[0]:,} to {bounds[1]:,})"
    return None


def _validate_tracks(path, index, pid, tracks, *, fill_missing: bool) -> int:
    """Check each track of one playlist; fill missing artist/album URIs. Returns how many were filled."""
    global _warned_derived
    if not isinstance(tracks, list):
        raise MPDFormatError(path, f"must be a list, got {type(tracks).__name__}", index=index, pid=pid,
                             field="tracks")
    filled = 0
    match = TRACK_URI.match
    lo, hi = _INT64
    for j, t in enumerate(tracks):  # the hot loop of ingest: the common, valid track takes the fewest steps
        if type(t) is not dict:
            raise MPDFormatError(path, f"track {j} is not an object", index=index, pid=pid, field="tracks")
        uri = t.get("track_uri")
        if type(uri) is not str or not match(uri):
            if uri is None:
                raise MPDFormatError(path, f"track {j} has no track_uri", index=index, pid=pid, field="track_uri")
            raise MPDFormatError(path, f"track {j}: {uri!r} is not a Spotify track URI "
                                 "(spotify:track:<22 letters/digits>)", index=index, pid=pid, field="track_uri")
        d = t.get("duration_ms")
        if type(t.get("artist_uri")) is not str or type(t.get("album_uri")) is not str or \
                (d is not None and (type(d) is not int or d < lo or d > hi)):
            filled += _check_track(path, index, pid, j, t, fill_missing)
    if filled and not _warned_derived:
        _warned_derived = True
        log.warning("%s: tracks without artist_uri/album_uri; using stand-ins derived from artist and album "
                    "names (said once)", path)
    return filled


def _check_track(path, index, pid, j: int, t: dict, fill_missing: bool) -> int:
    """The checks of one track that is not plain (a URI missing or of another type, an odd duration); returns
    1 when missing artist/album URIs were filled in."""
    artist_uri, album_uri = t.get("artist_uri"), t.get("album_uri")
    for name, value in (("artist_uri", artist_uri), ("album_uri", album_uri)):
        if value is not None and not isinstance(value, str):
            raise MPDFormatError(path, f"track {j}: must be a string, got {value!r}", index=index, pid=pid,
                                 field=name)
    problem = _int_problem(t.get("duration_ms"), _INT64)
    if problem:
        raise MPDFormatError(path, f"track {j}: {problem}", index=index, pid=pid, field="duration_ms")
    if (artist_uri is None or album_uri is None) and fill_missing:
        artist = str(t.get("artist_name") or "")
        if artist_uri is None:
            t["artist_uri"] = derive_uri("artist", artist)
        if album_uri is None:
            t["album_uri"] = derive_uri("album", artist, str(t.get("album_name") or ""))
        return 1
    return 0


def validate_playlist(path, index: int, pl, *, need_tracks: bool = True, fill_missing: bool = True) -> None:
    """Validate one playlist object in place (raises ``MPDFormatError``)."""
    if not isinstance(pl, dict):
        raise MPDFormatError(path, f"is not an object (got {type(pl).__name__})", index=index)
    pid = pl.get("pid")
    if pid is None:
        raise MPDFormatError(path, "missing", index=index, field="pid")
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise MPDFormatError(path, f"must be an integer, got {pid!r}", index=index, field="pid")
    if not _INT64[0] <= pid <= _INT64[1]:
        raise MPDFormatError(path, f"{pid} is out of range ({_INT64[0]:,} to {_INT64[1]:,})", index=index,
                             field="pid")
    if "tracks" not in pl:
        if need_tracks:
            raise MPDFormatError(path, "missing", index=index, pid=pid, field="tracks")
        pl["tracks"] = []
    for key in ("name", "description"):
        value = pl.get(key)
        if value is not None and not isinstance(value, str):
            raise MPDFormatError(path, f"must be a string, got {value!r}", index=index, pid=pid, field=key)
    for key, bounds in PLAYLIST_INTS.items():
        problem = _int_problem(pl.get(key), bounds)
        if problem:
            raise MPDFormatError(path, problem, index=index, pid=pid, field=key)
    _validate_tracks(path, index, pid, pl["tracks"], fill_missing=fill_missing)


def read_slice(path: str | Path, *, fill_missing: bool = True) -> tuple[dict, list[dict]]:
    """Read and validate one slice file. Returns ``(info, playlists)``."""
    path = Path(path)
    doc = load_json(path, "slice")
    if not isinstance(doc, dict) or "playlists" not in doc:
        raise MPDFormatError(path, "has no 'playlists' list at the top level", field="playlists")
    playlists = doc["playlists"]
    if not isinstance(playlists, list):
        raise MPDFormatError(path, f"must be a list, got {type(playlists).__name__}", field="playlists")
    for i, pl in enumerate(playlists):
        validate_playlist(path, i, pl, fill_missing=fill_missing)
    info = doc.get("info") or {}
    if not isinstance(info, dict):
        raise MPDFormatError(path, f"must be an object, got {type(info).__name__}", field="info")
    return info, playlists


def read_slices(path: str | Path) -> Iterator[tuple[Path, dict, list[dict]]]:
    """Every slice under ``path`` (see ``find_slices``) as ``(file, info, playlists)``, read and validated, one
    slice in memory at a time.

    The one reading path for slices: ``ingest`` and the challenge split use it, and every other command reads
    slices through a store made by ``ingest``. Beyond each slice's own checks (``read_slice``), a pid must
    appear once across all the slices, and there must be at least one playlist.

    Raises
    ------
    MPDFormatError
        At the first problem, naming the file, the playlist and the field (for a pid seen twice, both places).
    """
    files = find_slices(path)
    seen: set[int] = set()
    for k, file in enumerate(files):
        info, playlists = read_slice(file)
        before = len(seen)
        seen.update(pl["pid"] for pl in playlists)
        if len(seen) - before != len(playlists):
            raise _duplicate_pid(files[: k + 1], playlists)
        yield file, info, playlists
    if not seen:
        where = f"all {len(files)} slice files have" if len(files) > 1 else f"its slice file {files[0].name} has"
        raise MPDFormatError(path, f"holds no playlists ({where} an empty 'playlists' list): there is nothing to "
                             "read. Pass slices that hold playlists.")


def _duplicate_pid(files: list[Path], playlists: list[dict]) -> MPDFormatError:
    """The error for the first pid of the last of ``files`` (``playlists``) seen before (error path only:
    the earlier files are read again to say where)."""
    first: dict[int, tuple[Path, int]] = {}
    for file in files[:-1]:
        for i, pl in enumerate(orjson.loads(file.read_bytes())["playlists"]):
            first.setdefault(pl["pid"], (file, i))
    for i, pl in enumerate(playlists):
        pid = pl["pid"]
        if pid in first:
            file, j = first[pid]
            where = "earlier in this file" if file == files[-1] else f"in {file.name}"
            return MPDFormatError(files[-1], f"appears twice: also {where} (playlist #{j}); a pid must be unique "
                                  "across all slices", index=i, pid=pid, field="pid")
        first[pid] = (files[-1], i)
    raise AssertionError("no duplicate pid found")  # pragma: no cover - called only when there is one


def iter_playlists(path: str | Path) -> Iterator[tuple[Path, dict]]:
    """Every playlist of every slice under ``path``, one slice in memory at a time (validated: ``read_slices``)."""
    for file, _, playlists in read_slices(path):
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
    doc = load_json(path, "challenge set")
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


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file, streamed; another encoding is an error naming the line."""
    lineno = 0
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                yield lineno, line
    except UnicodeDecodeError as err:
        raise MPDFormatError(path, f"line {lineno + 1} is not UTF-8 text ({err.reason}); a submission is a CSV "
                             "file") from None


def read_submission(path: str | Path) -> Submission:
    """Read a submission CSV as given; anything malformed is listed in ``problems``, never fixed."""
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise InputError(f"submission {path} is a folder; pass the CSV file.")
        raise MissingInputError(f"submission {path} does not exist.")
    team: tuple[str, ...] = ()
    rows: dict[int, list[str]] = {}
    problems: list[str] = []
    for lineno, line in _text_lines(path):
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
