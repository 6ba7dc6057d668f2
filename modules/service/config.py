"""The service's defaults and limits, its one error type, and the checks of its settings."""

from __future__ import annotations

import os
import warnings
from typing import Any

from modules.errors import ServiceError

DEFAULT_MAX_K = 500
DEFAULT_MAX_SEEDS = 500
DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_MODEL_NAME = "two_tower"
DEFAULT_KEEP_ALIVE = 30  # seconds an idle keep-alive connection stays open between requests
DEFAULT_REQUEST_TIMEOUT = 10  # seconds a client has to send a whole request, from its first byte or from connecting
API_KEY_ENV = "PLAYLIST_API_KEY"  # the API key, when no --api-key-file is given
MIN_API_KEY_LENGTH = 16
# what a client may read without the API key: liveness for load balancers, and the API's own description
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
# /recommend batches at once in one process: 1 measured faster than 2 on 2 cores (the GIL serializes the rest)
DEFAULT_CONCURRENCY = 1
# recommendation processes: one per core, at most 4 (each holds a copy of the bundle)
DEFAULT_WORKERS = max(1, min(os.cpu_count() or 1, 4))
# OpenMP/BLAS threads per process: one request is many tiny native calls, and per-core pools contend
DEFAULT_NATIVE_THREADS = 1
RECOMMEND_BATCH = 32  # /recommend requests per batch (one catalog scan; memory: 32 x tracks floats)

UNSET: Any = object()  # "not given", for renamed keywords whose ``None`` means something


def check_positive_ints(**values) -> None:
    """``ServiceError`` naming the first of ``values`` that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ServiceError(f"{name} must be a positive integer (got {value!r}).")


def check_timeouts(keep_alive, request_timeout) -> None:
    """``ServiceError`` unless both are positive numbers of seconds."""
    for name, value in (("keep_alive", keep_alive), ("request_timeout", request_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ServiceError(f"{name} must be a positive number of seconds (got {value!r}).")


def renamed(value, old_value, *, old: str, new: str, where: str):
    """The value of a keyword renamed from ``old`` to ``new``: ``old`` still works, with a ``DeprecationWarning``.

    ``threads`` meant OpenMP/BLAS threads in ``serve`` and ``create_app`` but worker threads in ``MicroBatcher``;
    the names now say which (``native_threads``, ``workers``)."""
    if old_value is UNSET:
        return value
    warnings.warn(f"{where}({old}=...) is deprecated; pass {new}=... (the same setting)", DeprecationWarning,
                  stacklevel=3)
    return old_value
