"""How bad requests are answered: a 4xx with the message in ``error`` (and FastAPI's ``detail``), never a 500.

A body that is not JSON is a 400, wrong types or unknown fields a 422, a body above the limit a 413; on the
``/v1/`` routes TensorFlow Serving's shape (``{"error": …}``, 400). Whatever the client sent, the error response
itself can be written (lone surrogates and non-finite numbers are made visible, deep nesting is not echoed).
"""

from __future__ import annotations

import math
from typing import Any


def json_error(status: int, message: str):
    """A JSON error response with the message in both ``detail`` (FastAPI's key) and ``error``."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": message, "error": message}, status_code=status)


def clean(value):
    """``value`` writable as JSON: a string's lone surrogates as visible ``\\ud800`` text (UTF-8 has no
    encoding for them), a non-finite number as its name (JSON has no NaN or Infinity)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def error_detail(errors) -> list[dict[str, Any]]:
    """Pydantic errors as FastAPI's ``detail`` list, safe to write whatever the client sent: each error's type,
    location and message, and its ``input`` only when that is one JSON scalar (a value nested 900 deep, or one
    with lone surrogates, once made the error response itself fail with a 500)."""
    out = []
    for e in errors:
        item = {"type": e.get("type"), "loc": [clean(x) for x in e.get("loc", ())],
                "msg": clean(str(e.get("msg", "invalid")))}
        value = e.get("input")
        if value is None or isinstance(value, (str, bool, int, float)):
            item["input"] = clean(value)
        out.append(item)
    return out


def summarize(errors) -> str:
    """Pydantic errors as one readable line: ``body.k: Input should be a valid integer``."""
    parts = []
    for e in errors:
        if e.get("type") == "json_invalid":
            pos = e.get("loc", ("", "?"))[-1]
            parts.append(f"invalid JSON at character {pos}: {(e.get('ctx') or {}).get('error', 'decode error')}")
            continue
        loc = ".".join(str(clean(x)) for x in e.get("loc", ()))
        msg = clean(str(e.get("msg", "invalid")))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


class BodyLimitMiddleware:
    """Refuse request bodies above ``max_bytes`` with 413, by Content-Length or while the body streams in."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        from starlette.exceptions import HTTPException

        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_bytes:  # (the 413 response built only here: not for every request)
                    too_big = json_error(413, f"request body larger than the limit of {self.max_bytes} bytes")
                    return await too_big(scope, receive, send)
            except ValueError:
                return await json_error(400, "invalid Content-Length header")(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # a chunked body: FastAPI passes this through to the 413 response
                    raise HTTPException(413, f"request body larger than the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


def install_error_handlers(app) -> None:
    """Answer validation errors and HTTP errors of ``app`` in the shapes above."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        msg = summarize(exc.errors())
        if tf_style(request):
            return JSONResponse({"error": msg}, status_code=400)
        # malformed JSON is a 400 (the body is not JSON at all); well-formed JSON of the wrong shape is a 422
        status = 400 if any(e.get("type") == "json_invalid" for e in exc.errors()) else 422
        return JSONResponse({"detail": error_detail(exc.errors()), "error": msg}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        msg = clean(exc.detail if isinstance(exc.detail, str) else str(exc.detail))
        if isinstance(exc.__cause__, RecursionError):  # FastAPI's json.loads gave up: say why
            msg = "the JSON body is nested too deeply to parse"
        body = {"error": msg} if tf_style(request) else {"detail": msg, "error": msg}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def tf_style(request) -> bool:
    """Whether ``request`` is on a TensorFlow-Serving route (its errors are ``{"error": …}`` with 400)."""
    return request.url.path.startswith("/v1/")
