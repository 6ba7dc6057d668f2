"""A real uvicorn server on a free loopback port, in a thread: what the service tests talk to."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(make_server: Callable[[int], object], start_timeout: float = 30.0) -> Iterator[tuple[str, int]]:
    """``make_server(port)`` (a ``uvicorn.Server``) run on a free loopback port until the block ends; yields
    (base URL, port)."""
    port = free_port()
    srv = make_server(port)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        srv.should_exit = True
        thread.join(10)


def uvicorn_server(app, port: int):
    """A plain ``uvicorn.Server`` for ``app`` on ``port`` (warnings only)."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
