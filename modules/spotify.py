"""Spotify Web API client (spotipy) for track metadata and album art, built to survive the API's closures.

Spotify closed Audio Features, Recommendations and Related Artists to new apps on 2024-11-27. What is left
for a self-hosted engine is metadata and album art (``/v1/tracks``, ``/v1/search``), so that is what this
client fetches, and it treats everything else as optional:

* no credentials: the project runs offline, names come from the feature store and images are placeholders;
  nothing is raised and nothing is logged above INFO;
* ``/v1/tracks`` is asked 50 URIs per call and the answers are cached in the feature store with a TTL;
* audio features are asked only when enabled in the config; a 403 (the normal answer for new apps) marks
  the endpoint unavailable for the rest of the run and is logged once;
* a 429 is retried after its ``Retry-After`` (at most ``max_retries`` times, and never when the wait is
  longer than ``max_retry_after``); timeouts, connection errors and 5xx answers degrade to cached or
  placeholder data and pause API calls for ``offline_cooldown`` seconds;
* secrets are never printed or logged: credentials hide themselves in ``repr``, the token is kept in memory
  (not spotipy's ``.cache`` file), and a log filter scrubs spotipy's debug lines of auth headers.

Credentials come from ``SPOTIFY_CLIENT_ID`` / ``SPOTIFY_CLIENT_SECRET`` (or spotipy's ``SPOTIPY_*`` names) in
the environment, a ``.env`` file, or Streamlit secrets (``.streamlit/secrets.toml``), in that order.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import threading
import time
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from modules.errors import InputError, SpotifyForbidden, SpotifyUnavailable
from modules.features import FEATURE_COLUMNS, FeatureStore
from modules.mpd import TRACK_URI
from modules.paths import REPO_ROOT

log = logging.getLogger(__name__)

API_BASE = "https://api.spotify.com"
TOKEN_URL = "https://accounts.spotify.com/api/token"
TRACKS_PER_CALL = 50  # Spotify's limit for GET /v1/tracks
FEATURES_PER_CALL = 100  # and for GET /v1/audio-features
AUDIO_FEATURES_CLOSED = "2024-11-27"
ENV_NAMES = (("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"), ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET"))
# Columns of the frames ``tracks`` and ``search`` return.
TRACK_COLUMNS = ("track_uri", "found", "track_name", "artist_name", "artists", "album_name", "album_art_url",
                 "popularity", "duration_ms", "source")


# -- credentials ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    """A Spotify app's client id and secret; ``repr`` shows neither the secret nor the whole id."""

    client_id: str
    client_secret: str = field(repr=False)
    origin: str = "?"

    def __repr__(self) -> str:
        return f"Credentials(client_id='{self.client_id[:4]}…', client_secret=<hidden>, origin={self.origin!r})"

    __str__ = __repr__


def load_credentials(*, env: Mapping[str, str] | None = None, search_dirs: Sequence[str | os.PathLike] | None = None,
                     use_streamlit: bool = True) -> Credentials | None:
    """Find Spotify app credentials; ``None`` (offline mode) when there are none.

    Looked up in order: the environment (``SPOTIFY_CLIENT_ID``/``SPOTIFY_CLIENT_SECRET``, or spotipy's
    ``SPOTIPY_*`` names); a ``.env`` file; Streamlit secrets (``.streamlit/secrets.toml``, top-level keys of
    those names or a ``[spotify]`` table with ``client_id``/``client_secret``), and ``st.secrets`` when
    running inside Streamlit.

    Parameters
    ----------
    env : mapping, default=None
        The environment (default ``os.environ``).
    search_dirs : sequence of paths, default=None
        Where ``.env`` and ``.streamlit/secrets.toml`` are looked for (default: the working directory, then
        the repository root; the user's ``~/.streamlit/secrets.toml`` is read last).
    use_streamlit : bool, default=True
        Also look at ``st.secrets`` if Streamlit is already imported (never imports it).
    """
    env = os.environ if env is None else env
    found = _pair(env)
    if found:
        return Credentials(*found, origin="environment")
    dirs = [Path(d) for d in (search_dirs if search_dirs is not None else (Path.cwd(), REPO_ROOT))]
    for d in dirs:
        found = _pair(_read_dotenv(d / ".env"))
        if found:
            return Credentials(*found, origin=str(d / ".env"))
    secret_files = [d / ".streamlit" / "secrets.toml" for d in dirs]
    if search_dirs is None:
        secret_files.append(Path.home() / ".streamlit" / "secrets.toml")
    for f in secret_files:
        found = _pair_from_secrets(_read_toml(f))
        if found:
            return Credentials(*found, origin=str(f))
    if use_streamlit and "streamlit" in __import__("sys").modules:
        try:
            import streamlit as st

            found = _pair_from_secrets(dict(st.secrets))
        except Exception:  # no secrets file, not running in Streamlit, …: offline is fine
            found = None
        if found:
            return Credentials(*found, origin="streamlit secrets")
    return None


def _pair(mapping: Mapping) -> tuple[str, str] | None:
    for id_key, secret_key in ENV_NAMES:
        cid, secret = str(mapping.get(id_key) or "").strip(), str(mapping.get(secret_key) or "").strip()
        if cid and secret:
            return cid, secret
    return None


def _pair_from_secrets(doc: Mapping) -> tuple[str, str] | None:
    found = _pair(doc)
    if found:
        return found
    section = doc.get("spotify")
    if isinstance(section, Mapping):
        return _pair({"SPOTIFY_CLIENT_ID": section.get("client_id"),
                      "SPOTIFY_CLIENT_SECRET": section.get("client_secret")}) or _pair(section)
    return None


def _read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` prefixes, quotes and ``#`` comments allowed); missing file: ``{}``."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError):
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        out[key] = value
    return out


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


class _Redact(logging.Filter):
    """Scrubs secrets from log records of spotipy, urllib3 and this module (spotipy's DEBUG lines print the
    request headers, ``Authorization`` included), and turns spotipy's ERROR line for each HTTP error into
    DEBUG: this module handles those answers and says once, in plain words, what it does about them."""

    _AUTH = re.compile(r"(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]+")

    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:
            return True
        clean = self._AUTH.sub(r"\1 <redacted>", msg)
        for s in self.secrets:
            if s and s in clean:
                clean = clean.replace(s, "<redacted>")
        if clean != msg:
            record.msg, record.args = clean, None
        if record.name == "spotipy.client" and record.levelno == logging.ERROR and msg.startswith("HTTP Error"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_REDACT = _Redact()
for _name in ("spotipy", "spotipy.client", "spotipy.oauth2", "spotipy.util", "urllib3.connectionpool", __name__):
    logging.getLogger(_name).addFilter(_REDACT)


# -- configuration -------------------------------------------------------------------------------------------

@dataclass
class SpotifyConfig:
    """How the client talks to Spotify. ``from_env`` reads ``SPOTIFY_*`` overrides.

    Parameters
    ----------
    api_base : str
        Web API root (``/v1/`` is appended); ``SPOTIFY_API_BASE``. Tests point it at a local fake.
    token_url : str
        Client-credentials token endpoint; ``SPOTIFY_TOKEN_URL``.
    timeout : float, default=5.0
        Seconds per HTTP request; ``SPOTIFY_TIMEOUT``.
    ttl : float, default=7 days
        Seconds cached metadata stays fresh; ``SPOTIFY_CACHE_TTL``.
    audio_features : bool, default=False
        Ask the Audio Features endpoint (closed to new apps since 2024-11-27); ``SPOTIFY_AUDIO_FEATURES=1``.
    max_retries : int, default=3
        Retries of a rate-limited (429) call.
    max_retry_after : float, default=30.0
        Longest ``Retry-After`` waited for; a longer one degrades to cached data at once.
    offline_cooldown : float, default=60.0
        After a timeout, connection error or 5xx, seconds during which the API is not asked again.
    market : str, default=None
        ISO country code for track relinking; ``SPOTIFY_MARKET``.
    """

    api_base: str = API_BASE
    token_url: str = TOKEN_URL
    timeout: float = 5.0
    ttl: float = 7 * 24 * 3600.0
    audio_features: bool = False
    max_retries: int = 3
    max_retry_after: float = 30.0
    offline_cooldown: float = 60.0
    market: str | None = None

    _ENV = {"api_base": "SPOTIFY_API_BASE", "token_url": "SPOTIFY_TOKEN_URL", "timeout": "SPOTIFY_TIMEOUT",
            "ttl": "SPOTIFY_CACHE_TTL", "audio_features": "SPOTIFY_AUDIO_FEATURES",
            "max_retries": "SPOTIFY_MAX_RETRIES", "market": "SPOTIFY_MARKET"}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> SpotifyConfig:
        """Defaults, then ``SPOTIFY_*`` variables of ``env`` (default ``os.environ``), then ``overrides``."""
        env = os.environ if env is None else env
        values: dict = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in cls._ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            kind = types[name]
            try:
                if kind == "bool":
                    values[name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif kind == "float":
                    values[name] = float(raw)
                elif kind == "int":
                    values[name] = int(raw)
                else:
                    values[name] = raw
            except ValueError:
                raise InputError(f"{var} must be a {kind} (got {raw!r}).") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


# -- placeholders --------------------------------------------------------------------------------------------

def placeholder_art(text: str | None = None, size: int = 300) -> str:
    """A square SVG cover as a ``data:`` URI: a colour derived from ``text`` and its initials. Needs no network
    and is stable for the same text, so the app's grid does not flicker."""
    text = (text or "").strip()
    digest = hashlib.blake2b(text.encode(), digest_size=3).digest()
    hue = int.from_bytes(digest, "big") % 360
    initials = "".join(w[0] for w in re.findall(r"\w+", text)[:2]).upper() or "♪"
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 100 100">'
           f'<rect width="100" height="100" fill="hsl({hue},45%,35%)"/>'
           f'<text x="50" y="50" font-family="sans-serif" font-size="34" fill="white" text-anchor="middle" '
           f'dominant-baseline="central">{_xml_escape(initials)}</text></svg>')
    return "data:image/svg+xml;utf8," + quote(svg, safe="")


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def is_placeholder(url: str | None) -> bool:
    return not url or url.startswith("data:")


# -- the client ----------------------------------------------------------------------------------------------

class SpotifyClient:
    """Track metadata, album art and search, from Spotify when reachable, else from the feature store.

    Parameters
    ----------
    store : FeatureStore or path, default=None
        Where fetched metadata is cached (and where names come from offline). ``None``: an in-memory cache
        for this object only.
    credentials : Credentials, "auto" or None, default="auto"
        ``"auto"`` looks them up with ``load_credentials``; ``None`` forces offline mode.
    config : SpotifyConfig, default=None
        Default: ``SpotifyConfig.from_env()``.

    Attributes
    ----------
    requests_made : dict
        HTTP calls per endpoint in this object's life (``tracks``, ``search``, ``audio-features``), retries
        included; for tests and the app's status page.

    Examples
    --------
    >>> client = SpotifyClient("data/features.sqlite")                # doctest: +SKIP
    >>> client.tracks(["spotify:track:4iV5W9uYEdYUVa79Axb7Rh"])[["track_name", "source"]]  # doctest: +SKIP
    """

    def __init__(self, store: FeatureStore | str | os.PathLike | None = None, *,
                 credentials: Credentials | str | None = "auto", config: SpotifyConfig | None = None):
        self.store = store if store is None or isinstance(store, FeatureStore) else FeatureStore(store)
        self.config = config or SpotifyConfig.from_env()
        if credentials == "auto":
            credentials = load_credentials()
        if credentials is not None and not isinstance(credentials, Credentials):
            raise TypeError(f"credentials must be a Credentials, 'auto' or None (got {type(credentials).__name__}).")
        self.credentials = credentials
        self.requests_made = {"token": 0, "tracks": 0, "search": 0, "audio-features": 0}
        self.audio_features_available = bool(self.config.audio_features)
        self._down_until = 0.0
        self._offline_reason = None if credentials else "no Spotify credentials"
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[float, dict]] = {}
        self._sp = None
        if credentials is not None:
            _REDACT.secrets.update({credentials.client_secret, base64.b64encode(
                f"{credentials.client_id}:{credentials.client_secret}".encode()).decode()})
            self._sp = self._build()
        else:
            log.info("Spotify: no credentials (set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET, or .env); "
                     "running offline with placeholder images")

    def __repr__(self) -> str:
        return f"SpotifyClient(store={self.store!r}, online={self.online}, credentials={self.credentials!r})"

    def _build(self):
        import spotipy
        from spotipy.cache_handler import MemoryCacheHandler
        from spotipy.oauth2 import SpotifyClientCredentials

        auth = SpotifyClientCredentials(
            client_id=self.credentials.client_id, client_secret=self.credentials.client_secret,
            requests_session=_counting_session(self.requests_made, "token"), requests_timeout=self.config.timeout,
            cache_handler=MemoryCacheHandler())  # the token stays in memory, never in a .cache file
        auth.OAUTH_TOKEN_URL = self.config.token_url  # instance attribute: the class constant stays as it is
        # our own session: no urllib3 retry adapter, so 429/5xx come back to us with their headers
        sp = spotipy.Spotify(auth_manager=auth, requests_session=_counting_session(self.requests_made),
                             requests_timeout=self.config.timeout, retries=0, status_retries=0)
        sp.prefix = self.config.api_base.rstrip("/") + "/v1/"
        return sp

    # -- state --

    @property
    def online(self) -> bool:
        """Whether the API will be asked now (credentials, and not in a cool-down after a failure)."""
        return self._sp is not None and self._offline_reason is None and time.monotonic() >= self._down_until

    def status(self) -> dict:
        """What the app shows: online or why not, and whether audio features are still asked."""
        reason = self._offline_reason or ("cooling down after an API failure"
                                          if time.monotonic() < self._down_until else None)
        return {"online": self.online, "reason": reason, "audio_features": self.audio_features_available,
                "credentials": repr(self.credentials) if self.credentials else None,
                "requests": dict(self.requests_made)}

    def _warn_once(self, key: str, msg: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    def _call(self, what: str, fn, *args, **kwargs):
        """One API call with the degradation rules; raises ``SpotifyUnavailable`` or ``SpotifyForbidden``."""
        import requests
        from spotipy.exceptions import SpotifyException, SpotifyOauthError

        cfg = self.config
        for attempt in range(cfg.max_retries + 1):
            if not self.online:
                raise SpotifyUnavailable(self._offline_reason or "cooling down")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    return fn(*args, **kwargs)
            except SpotifyException as err:
                status = err.http_status
                if status == 429:
                    wait = _retry_after(err.headers)
                    if attempt < cfg.max_retries and wait <= cfg.max_retry_after:
                        log.info("Spotify rate limit on %s: retrying after %.0f s (Retry-After)", what, wait)
                        time.sleep(wait)
                        continue
                    self._pause(max(wait, cfg.offline_cooldown),
                                f"rate-limited (Retry-After {wait:.0f} s, {attempt} retries)")
                    raise SpotifyUnavailable("rate limited") from None
                if status == 403:
                    raise SpotifyForbidden(what) from None
                if status >= 500:
                    self._pause(cfg.offline_cooldown, f"HTTP {status} from {what}")
                    raise SpotifyUnavailable(f"HTTP {status}") from None
                if status == 401:
                    self._pause(cfg.offline_cooldown, "HTTP 401 (token refused)")
                    raise SpotifyUnavailable("HTTP 401") from None
                self._warn_once(f"http-{status}-{what}", "Spotify answered HTTP %s to %s; using cached data",
                                status, what)
                raise SpotifyUnavailable(f"HTTP {status}") from None
            except SpotifyOauthError as err:
                self._offline_reason = "Spotify rejected the credentials"
                self._warn_once("oauth", "Spotify rejected the app credentials (%s); running offline for this run",
                                getattr(err, "error", None) or "token request failed")
                raise SpotifyUnavailable("credentials rejected") from None
            except requests.RequestException as err:
                self._pause(cfg.offline_cooldown, f"{type(err).__name__} on {what}")
                raise SpotifyUnavailable(type(err).__name__) from None
        raise SpotifyUnavailable("rate limited")  # pragma: no cover - the loop always returns or raises

    def _pause(self, seconds: float, why: str) -> None:
        self._down_until = time.monotonic() + seconds
        log.warning("Spotify API unavailable (%s): using cached or placeholder data for %.0f s", why, seconds)

    # -- metadata and art --

    def tracks(self, uris: Sequence[str], *, refresh: bool = False) -> pd.DataFrame:
        """Names, popularity and album art for ``uris``, in the order asked; never raises for network trouble.

        Fresh cache entries (younger than ``config.ttl``) are served from the store; the others are fetched
        50 per call when the API is reachable. ``source`` says where each row came from: ``spotify`` (just
        fetched), ``cache`` (fresh), ``stale-cache`` (expired, API unreachable), ``catalog`` (names from the
        store, no art yet) or ``placeholder`` (unknown track). ``album_art_url`` is never empty: a
        placeholder image stands in.
        """
        if isinstance(uris, str):
            raise TypeError("uris must be a list of track URIs, not one string; wrap it in a list.")
        uris = [str(u) for u in uris]
        unique = list(dict.fromkeys(uris))
        cached = self._cached(unique)
        now = time.time()
        fresh = {u for u, r in cached.items() if r.get("album_art_url") and r.get("meta_fetched_at")
                 and now - r["meta_fetched_at"] < self.config.ttl}
        wanted = [u for u in unique if (refresh or u not in fresh) and TRACK_URI.match(u)]
        fetched: dict[str, dict] = {}
        if wanted and self.online:
            for start in range(0, len(wanted), TRACKS_PER_CALL):
                batch = wanted[start:start + TRACKS_PER_CALL]
                try:
                    answer = self._call("tracks", self._sp.tracks, batch, market=self.config.market)
                except (SpotifyUnavailable, SpotifyForbidden):
                    break
                for uri, item in zip(batch, (answer or {}).get("tracks") or [], strict=False):
                    if item:
                        fetched[uri] = _track_record(item, uri)
            self._remember(list(fetched.values()))
        rows = []
        for u in uris:
            if u in fetched:
                rows.append(dict(fetched[u], source="spotify", found=True))
            elif u in cached:
                r = cached[u]
                src = "cache" if u in fresh else ("stale-cache" if r.get("album_art_url") else "catalog")
                rows.append(dict(r, source=src, found=True))
            else:
                rows.append({"track_uri": u, "found": False, "source": "placeholder"})
        for r in rows:
            if not r.get("album_art_url"):
                r["album_art_url"] = placeholder_art(r.get("album_name") or r.get("track_name") or r["track_uri"])
        return pd.DataFrame(rows, columns=list(TRACK_COLUMNS))

    def album_art(self, uris: Sequence[str]) -> list[str]:
        """One image URL per URI (a placeholder ``data:`` URI where none is known)."""
        return self.tracks(uris)["album_art_url"].tolist()

    def _cached(self, uris: list[str]) -> dict[str, dict]:
        if self.store is not None:
            cols = ["track_name", "artist_name", "artists", "album_name", "album_art_url", "popularity",
                    "duration_ms", "meta_fetched_at"]
            frame = self.store.get_many(uris, columns=cols)
            frame = frame.loc[frame["found"]]
            return {r["track_uri"]: _clean(r) for r in frame.to_dict("records")}
        with self._lock:
            return {u: dict(self._memory[u][1], meta_fetched_at=self._memory[u][0]) for u in uris if u in self._memory}

    def _remember(self, records: list[dict]) -> None:
        if not records:
            return
        if self.store is not None:
            self.store.upsert_metadata(records, source="spotify")
        else:
            now = time.time()
            with self._lock:
                self._memory.update({r["track_uri"]: (now, r) for r in records})

    # -- audio features --

    def audio_features(self, uris: Sequence[str]) -> pd.DataFrame:
        """Audio features for ``uris`` (order kept), from the store; the API is asked for missing ones only
        when ``config.audio_features`` is on and it has not answered 403 yet. ``found`` is ``True`` where
        features exist."""
        uris = [str(u) for u in uris]
        have = (self.store.get_many(uris, columns=list(FEATURE_COLUMNS)) if self.store is not None
                else pd.DataFrame({"track_uri": uris, **{c: np.nan for c in FEATURE_COLUMNS}}))
        have["found"] = have["energy"].notna() if len(have) else have.get("found", False)
        missing = [u for u in dict.fromkeys(have.loc[~have["found"], "track_uri"]) if TRACK_URI.match(u)]
        if not missing or not self.audio_features_available or not self.online:
            return have
        got: list[dict] = []
        for start in range(0, len(missing), FEATURES_PER_CALL):
            try:
                answer = self._call("audio-features", self._sp.audio_features, missing[start:start + FEATURES_PER_CALL])
            except SpotifyForbidden:
                self.audio_features_available = False
                self._warn_once("af-403", "Spotify answered 403 to audio-features (closed to new apps since %s); "
                                "not asking again in this run, features come from the catalog only",
                                AUDIO_FEATURES_CLOSED)
                break
            except SpotifyUnavailable:
                break
            for item in answer or []:
                if item and item.get("uri"):
                    got.append({**{c: item.get(c) for c in FEATURE_COLUMNS}, "track_uri": item["uri"]})
        if got and self.store is not None:
            self.store.upsert_features(got)
            return self.audio_features(uris) if self.audio_features_available else have
        return have

    # -- search --

    def search(self, query: str, limit: int = 10) -> pd.DataFrame:
        """Tracks matching ``query``: Spotify's search when online (results cached in the store), else the
        feature store's own search (names, artists, album); same columns as ``tracks``."""
        query = str(query or "").strip()
        limit = max(1, min(int(limit), 50))
        if not query:
            return pd.DataFrame(columns=list(TRACK_COLUMNS))
        if self.online:
            try:
                answer = self._call("search", self._sp.search, q=query, type="track", limit=limit,
                                    market=self.config.market)
                items = ((answer or {}).get("tracks") or {}).get("items") or []
                records = [_track_record(i, i.get("uri")) for i in items if i and i.get("uri")]
                self._remember(records)
                frame = pd.DataFrame([dict(r, source="spotify", found=True) for r in records],
                                     columns=list(TRACK_COLUMNS))
                return frame
            except (SpotifyUnavailable, SpotifyForbidden):
                pass
        if self.store is None:
            return pd.DataFrame(columns=list(TRACK_COLUMNS))
        hits = self.store.search(query, limit=limit)
        return self.tracks(hits["track_uri"].tolist()) if len(hits) else pd.DataFrame(columns=list(TRACK_COLUMNS))


def _counting_session(counter: dict, fixed: str | None = None):
    """A plain ``requests.Session`` (no retry adapter) that counts calls per endpoint into ``counter``."""
    import requests

    class CountingSession(requests.Session):
        def request(self, method, url, *args, **kwargs):
            key = fixed or _endpoint(url)
            counter[key] = counter.get(key, 0) + 1
            return super().request(method, url, *args, **kwargs)

    return CountingSession()


def _endpoint(url: str) -> str:
    m = re.search(r"/v1/([a-z-]+)", url)
    return m.group(1) if m else "other"


def _retry_after(headers) -> float:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); 1 s when absent or unreadable."""
    raw = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    if raw is None:
        return 1.0
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            return 1.0


def _track_record(item: dict, uri: str) -> dict:
    """A ``/v1/tracks`` or search item as a feature-store metadata record."""
    album = item.get("album") or {}
    images = sorted((i for i in album.get("images") or [] if i.get("url")),
                    key=lambda i: abs((i.get("width") or 300) - 300))  # the ~300 px one suits a grid
    artists = [a.get("name") or "" for a in item.get("artists") or []]
    return {"track_uri": uri, "track_name": item.get("name"), "artist_name": artists[0] if artists else None,
            "artists": ";".join(artists) or None, "album_name": album.get("name"),
            "album_art_url": images[0]["url"] if images else None, "popularity": item.get("popularity"),
            "duration_ms": item.get("duration_ms"), "explicit": None if item.get("explicit") is None
            else int(bool(item.get("explicit"))),
            "artist_uri": (item.get("artists") or [{}])[0].get("uri"), "album_uri": album.get("uri")}


def _clean(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
