"""``serve``: the REST service (FastAPI + uvicorn) over a trained bundle."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class DeprecatedAlias(argparse.Action):
    """An option's old name: still accepted, with a warning naming the new one; the flag used is kept in
    ``<dest>_flag`` so errors name what the user typed."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        log.warning("%s is deprecated: use %s (the same setting)", option_string, self.new)
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_flag", option_string)


def register(sub: argparse._SubParsersAction) -> None:
    from modules.service import (
        API_KEY_ENV,
        DEFAULT_CONCURRENCY,
        DEFAULT_KEEP_ALIVE,
        DEFAULT_MAX_BODY_BYTES,
        DEFAULT_MAX_K,
        DEFAULT_MAX_SEEDS,
        DEFAULT_MODEL_NAME,
        DEFAULT_NATIVE_THREADS,
        DEFAULT_REQUEST_TIMEOUT,
        DEFAULT_WORKERS,
    )

    p = sub.add_parser(
        "serve", help="serve a bundle over REST (POST /recommend, TF-Serving-style :predict, docs at /docs)",
        description="Load a model bundle and serve it over HTTP: POST /recommend {seed_track_uris, title, k} -> "
        "recommendations with score parts and explanations; GET /health; GET /metadata (the bundle manifest); "
        "POST /v1/models/NAME:predict in TensorFlow Serving's REST format, answered by the bundle's two-tower "
        "SavedModel; OpenAPI docs at /docs. Bad input gets a 4xx with a message. See docs/serving.md.")
    p.add_argument("--model", required=True, type=Path, metavar="BUNDLE_DIR", help="a bundle from `train`")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; any other address needs an API key "
                   "or --allow-unauthenticated)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-k", type=int, default=DEFAULT_MAX_K, metavar="N",
                   help=f"largest k a request may ask for (default {DEFAULT_MAX_K})")
    p.add_argument("--max-seeds", type=int, default=DEFAULT_MAX_SEEDS, metavar="N",
                   help=f"most seed tracks per playlist (default {DEFAULT_MAX_SEEDS})")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, metavar="N",
                   help=f"larger request bodies get 413 (default {DEFAULT_MAX_BODY_BYTES:,})")
    p.add_argument("--model-name", default=DEFAULT_MODEL_NAME, metavar="NAME",
                   help=f"model name in /v1/models/NAME:predict (default {DEFAULT_MODEL_NAME})")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                   help="/recommend batches computed at once in this process (--workers 1); requests arriving "
                   f"meanwhile queue for the next batch (default {DEFAULT_CONCURRENCY})")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, metavar="N",
                   help="processes computing /recommend, each loading the bundle, fed from one queue by this HTTP "
                   f"process; 1 computes in this process (default {DEFAULT_WORKERS}: one per core, up to 4; see "
                   "docs/serving.md)")
    p.add_argument("--native-threads", type=int, default=DEFAULT_NATIVE_THREADS, metavar="N",
                   help="OpenMP/BLAS threads per process, 0 to leave the libraries' defaults (default "
                   f"{DEFAULT_NATIVE_THREADS}: one request is many tiny native calls and per-core pools contend; see "
                   "docs/serving.md)")
    p.add_argument("--threads", type=int, dest="native_threads", action=DeprecatedAlias, new="--native-threads",
                   default=argparse.SUPPRESS, metavar="N", help="deprecated name of --native-threads")
    p.add_argument("--api-key-file", type=Path, metavar="FILE",
                   help="require 'Authorization: Bearer <key>' on every route but /health and the docs, the key "
                   f"being this file's contents (default: ${API_KEY_ENV} if set, else no key)")
    p.add_argument("--allow-unauthenticated", action="store_true",
                   help="serve a --host other than loopback without an API key (a proxy in front authenticates)")
    p.add_argument("--keep-alive", type=int, default=DEFAULT_KEEP_ALIVE, metavar="SECONDS",
                   help=f"close idle keep-alive connections after this long (default {DEFAULT_KEEP_ALIVE})")
    p.add_argument("--request-timeout", type=float, default=DEFAULT_REQUEST_TIMEOUT, metavar="SECONDS",
                   help="close a connection that has not sent a whole request this long after connecting or after "
                   f"the request's first byte (default {DEFAULT_REQUEST_TIMEOUT})")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn log level (default info; warning hides the access log)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from modules.errors import InputError
    from modules.service import read_api_key, serve

    if args.keep_alive < 1:
        raise InputError(f"--keep-alive must be >= 1 second (got {args.keep_alive})")
    if not args.request_timeout > 0:
        raise InputError(f"--request-timeout must be > 0 seconds (got {args.request_timeout})")
    if args.native_threads < 0:
        flag = getattr(args, "native_threads_flag", "--native-threads")
        raise InputError(f"{flag} must be >= 0 (got {args.native_threads})")
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535 (got {args.port})")
    serve(args.model, host=args.host, port=args.port, log_level=args.log_level, max_k=args.max_k,
          max_seeds=args.max_seeds, max_body_bytes=args.max_body_bytes, model_name=args.model_name,
          concurrency=args.concurrency, workers=args.workers, native_threads=args.native_threads or None,
          keep_alive=args.keep_alive, request_timeout=args.request_timeout, api_key=read_api_key(args.api_key_file),
          allow_unauthenticated=args.allow_unauthenticated)
    return 0
