"""How a serving process runs its native code and its garbage collector (both tuned once, at start-up)."""

from __future__ import annotations

import logging

from modules.service.config import ServiceError

log = logging.getLogger(__name__)


def limit_native_threads(native_threads: int | None) -> None:
    """Cap the OpenMP and BLAS thread pools of this process at ``native_threads`` (``None``: leave them).

    One recommendation is small work for many tiny native calls (the fusion's gradient-boosting predict
    runs an OpenMP region per tree); with a pool per core those threads spin and contend, worse still
    when requests overlap. Measured on the 3,000-playlist bundle, 2 busy cores: 1,120 ms per request with
    the default pools, 78 ms with one thread each.
    """
    if native_threads is None:
        return
    if isinstance(native_threads, bool) or not isinstance(native_threads, int) or native_threads < 1:
        raise ServiceError(f"native_threads must be a positive integer (got {native_threads!r}).")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=native_threads)  # process-wide, for the life of the server
    log.info("native thread pools (OpenMP, BLAS) limited to %d thread(s)", native_threads)


def freeze_loaded_heap() -> int:
    """Move every object alive now (the loaded bundle: hundreds of thousands of dicts, strings and TensorFlow
    objects) out of the garbage collector's reach; returns how many.

    Python's full collection walks every tracked object: with a bundle loaded that is ~240 ms, a pause every
    request in flight waits through. Those objects live as long as the server, so collecting them is wasted
    work; ``gc.freeze`` skips them (requests' own garbage is still collected)."""
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
