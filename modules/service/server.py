"""Running the service: ``serve`` loads the bundle, builds the app and runs uvicorn with a request deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from modules.service.app import create_app
from modules.service.auth import is_loopback
from modules.service.config import (
    API_KEY_ENV,
    DEFAULT_KEEP_ALIVE,
    DEFAULT_NATIVE_THREADS,
    DEFAULT_REQUEST_TIMEOUT,
    UNSET,
    ServiceError,
    check_positive_ints,
    check_timeouts,
    renamed,
)
from modules.service.runtime import freeze_loaded_heap, limit_native_threads

log = logging.getLogger(__name__)


def request_deadline_protocol(request_timeout: float) -> type:
    """uvicorn's httptools HTTP protocol, closing a connection that has not sent a whole request (request line,
    headers and body) ``request_timeout`` seconds after connecting or after the request's first byte.

    uvicorn 0.54 has no such timeout: its keep-alive timer runs only between requests and any byte cancels it, so
    a client that connects and sends nothing, half a request line, or a body a byte at a time held its connection
    (and, for the body, a task waiting for it) open forever, and a few hundred such clients exhaust the server's
    file descriptors (Slowloris). The deadline is absolute, not per read, so trickling does not extend it, and
    it stops once the request is in: computing the answer is not limited. A request pipelined behind one still
    being answered gets its deadline when that answer is done (uvicorn stops reading until then), so a slow
    answer is never cut by the next request. On httptools (C) uvicorn's protocol costs about half of what it did on
    h11 (pure Python): ~0.08 against ~0.16 ms a request (docs/serving.md).
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError as e:  # httptools missing
        raise ServiceError(f"the service needs httptools ({e}): pip install -r requirements.txt") from e

    class RequestDeadlineProtocol(HttpToolsProtocol):
        deadline: asyncio.TimerHandle | None = None
        begun = 0  # requests whose first byte arrived on this connection
        answered = 0  # responses completed on this connection
        receiving = False  # between a request's first byte and its end

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                self._disarm()
            elif self.answered >= self.begun - self.receiving:
                # waiting for the client: a partial request next in line, or bytes that began none (blank lines)
                self._arm()  # keeps the deadline set by the request's first byte

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.begun += 1
            self.receiving = True

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self.receiving = False
            self._disarm()  # the request is in

        def on_response_complete(self) -> None:
            self.answered += 1
            super().on_response_complete()
            if self.receiving and self.answered >= self.begun - 1 and not self.transport.is_closing():
                self._arm()  # a request pipelined behind this answer is now the one awaited

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_websocket_upgrade(self) -> None:
            self._disarm()
            super().handle_websocket_upgrade()

        def _arm(self) -> None:
            if self.deadline is None:
                self.deadline = self.loop.call_later(request_timeout, self._expire)

        def _disarm(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def _expire(self) -> None:
            self.deadline = None
            if not self.transport.is_closing():
                self.logger.info("%s:%s - closed: no whole request within %g s", *(self.client or ("?", 0)),
                                 request_timeout)
                self.transport.close()

    return RequestDeadlineProtocol


def make_server(app, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                keep_alive: int = DEFAULT_KEEP_ALIVE, request_timeout: float = DEFAULT_REQUEST_TIMEOUT):
    """The ``uvicorn.Server`` for ``app`` (not started: ``.run()``): HTTP/1.1 with the request deadline of
    ``request_deadline_protocol`` and ``keep_alive`` seconds for idle connections between requests, on asyncio's
    own event loop (uvicorn would take uvloop whenever it is installed; it did not lower the HTTP process's CPU per
    request measurably: docs/serving.md)."""
    import uvicorn

    check_timeouts(keep_alive, request_timeout)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_keep_alive=keep_alive,
                                         http=request_deadline_protocol(request_timeout), loop="asyncio"))


def serve(model: str | Path, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          workers: int = 1, native_threads: int | None = DEFAULT_NATIVE_THREADS, keep_alive: int = DEFAULT_KEEP_ALIVE,
          request_timeout: float = DEFAULT_REQUEST_TIMEOUT, api_key: str | None = None,
          allow_unauthenticated: bool = False, threads: int | None = UNSET, **options) -> None:
    """Load the bundle, build the app and run it with uvicorn until interrupted.

    With ``workers > 1`` the ``/recommend`` batches are computed by that many worker processes, each loading
    the bundle (``ProcessRecommender``), behind this one HTTP process: the recommender is Python-heavy (the GIL
    serializes threads), so processes are how a second core helps, and one queue in front of them keeps both busy
    (uvicorn's own worker processes split the clients' connections unevenly: one got 20 of 32 and its clients
    waited). ``native_threads`` caps the OpenMP/BLAS thread pools of each process (see ``limit_native_threads``;
    ``threads`` is its deprecated name).
    ``keep_alive`` is uvicorn's idle keep-alive timeout in seconds (its default 5 s is short for a CPU-bound
    server whose event loop can be starved for seconds under load: a connection closed just as the client reuses
    it is a failed request). ``request_timeout`` bounds the time a client may take to send a request
    (``request_deadline_protocol``).

    ``api_key`` (see ``read_api_key``) makes every route but ``/health`` and the docs need it. Binding an address
    other than loopback without one is refused unless ``allow_unauthenticated`` (for a service behind a proxy
    that authenticates), and then warned about.
    """
    native_threads = renamed(native_threads, threads, old="threads", new="native_threads", where="serve")
    check_positive_ints(workers=workers)
    if api_key is None and not is_loopback(host):
        if not allow_unauthenticated:
            raise ServiceError(f"--host {host} lets other machines call the service, and it has no API key: give one "
                               f"with --api-key-file FILE (or ${API_KEY_ENV}), or pass --allow-unauthenticated if a "
                               "proxy in front of it authenticates callers. See docs/serving.md, Security.")
        log.warning("SERVING WITHOUT AN API KEY ON %s: anyone who can reach port %d can call every endpoint", host,
                    port)
    check_timeouts(keep_alive, request_timeout)
    limit_native_threads(native_threads)
    t0 = time.perf_counter()
    app = create_app(model, processes=workers if workers > 1 else 0, native_threads=native_threads, api_key=api_key,
                     **options)
    server = make_server(app, host=host, port=port, log_level=log_level, keep_alive=keep_alive,
                         request_timeout=request_timeout)
    frozen = freeze_loaded_heap()
    log.info("bundle %s loaded in %.1f s (%d objects kept out of garbage collection%s); serving on http://%s:%d "
             "(docs at /docs)%s", model, time.perf_counter() - t0, frozen,
             f"; {workers} recommendation processes" if workers > 1 else "", host, port,
             "; every route but /health and the docs needs the API key" if api_key is not None else "")
    server.run()
