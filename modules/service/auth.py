"""Who may call the service: an API key checked on every request, where the key comes from, and which addresses
need one (``serve`` refuses a non-loopback address without a key). See docs/serving.md, "Security"."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
from pathlib import Path

from modules.service.config import API_KEY_ENV, MIN_API_KEY_LENGTH, OPEN_PATHS, ServiceError
from modules.service.http_errors import json_error

log = logging.getLogger(__name__)


class BearerAuthMiddleware:
    """Refuse requests without ``Authorization: Bearer <api_key>`` with 401, except on ``open_paths``.

    The key is compared as SHA-256 digests with ``hmac.compare_digest``: the time taken tells a caller nothing
    about how much of a guess was right, not even its length. Runs before the body is read, so a caller without
    the key cannot make the server parse anything. The key is never logged (uvicorn's access log writes the
    request line, not the headers).
    """

    def __init__(self, app, api_key: str, open_paths=OPEN_PATHS):
        self.app = app
        self._digest = hashlib.sha256(api_key.encode()).digest()
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            return await self.app(scope, receive, send)
        given = None
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                given = token.strip() if scheme.lower() == b"bearer" else b""
                break
        if given is not None and hmac.compare_digest(hashlib.sha256(given).digest(), self._digest):
            return await self.app(scope, receive, send)
        message = ("this server needs an API key: send the header 'Authorization: Bearer <key>'" if given is None
                   else "wrong API key (expected the header 'Authorization: Bearer <key>')")
        response = json_error(401, message)
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)


def read_api_key(path: str | Path | None = None, environ: dict | None = None) -> str | None:
    """The service's API key: the contents of ``path`` (surrounding whitespace removed), else the environment
    variable ``PLAYLIST_API_KEY``, else ``None`` (no authentication). Raises ``ServiceError`` for a key that is
    missing, too short or not printable ASCII, without ever writing the key itself."""
    if path is not None:
        path = Path(path)
        try:
            key = path.read_bytes().decode("latin-1").strip()  # any bytes; a non-ASCII key is refused below
        except FileNotFoundError:
            raise ServiceError(f"--api-key-file {path} does not exist; write a key into it, e.g. python -c "
                               f"'import secrets; print(secrets.token_urlsafe(32))' > {path}") from None
        except OSError as err:
            raise ServiceError(f"--api-key-file {path} cannot be read: {err.strerror}") from None
        source = f"--api-key-file {path}"
        if os.name == "posix" and path.stat().st_mode & 0o077:
            log.warning("%s can be read by other users of this machine; restrict it with chmod 600", path)
    else:
        key = (os.environ if environ is None else environ).get(API_KEY_ENV, "").strip()
        if not key:  # unset or empty
            return None
        source = f"${API_KEY_ENV}"
    if len(key) < MIN_API_KEY_LENGTH or not all(33 <= ord(c) < 127 for c in key):
        raise ServiceError(f"the API key in {source} must be at least {MIN_API_KEY_LENGTH} printable ASCII "
                           "characters without spaces; make one with: python -c 'import secrets; "
                           "print(secrets.token_urlsafe(32))'")
    return key


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` answers only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def document_bearer(app) -> None:
    """Declare the bearer key in the OpenAPI schema, so /docs offers "Authorize" and sends it."""
    build = app.openapi

    def openapi():
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
            for path, operations in schema.get("paths", {}).items():
                if path not in OPEN_PATHS:
                    for operation in operations.values():
                        operation["security"] = [{"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
