"""Recommendation processes: ``/recommend`` batches computed by worker processes, each with its own copy of the
bundle, behind the one HTTP process (``serve --workers N``). The recommender is Python-heavy, so processes, not
threads, are how a second core helps."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from modules.service.config import DEFAULT_NATIVE_THREADS, UNSET, ServiceError, renamed
from modules.service.runtime import freeze_loaded_heap, limit_native_threads

log = logging.getLogger(__name__)


_WORKER_RECOMMENDER = None


def warm_up(rec, k: int = 10) -> None:
    """One recommendation with explanations, so the two-tower's lazily traced TensorFlow function exists before
    the first (possibly concurrent) request."""
    rec.recommend_columns(rec.tracks["track_uri"].iloc[:2].tolist(), "warm up", k=k, explain=True)


def _worker_start(bundle: str, native_threads: int | None, loaded) -> None:
    """Initializer of a recommendation process: load the bundle, warm it up, freeze it, say so."""
    global _WORKER_RECOMMENDER
    import signal

    from modules.recommender import Recommender

    # Ctrl-C reaches the whole process group; the HTTP process stops these when it shuts down (without this each
    # printed a KeyboardInterrupt traceback)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_native_threads(native_threads)
    rec = Recommender.load(bundle)
    warm_up(rec)
    _WORKER_RECOMMENDER = rec
    freeze_loaded_heap()
    loaded.send(os.getpid())


def _worker_recommend(requests: list) -> list:
    return _WORKER_RECOMMENDER.recommend_columns_batch(requests)


def _worker_pid() -> int:
    return os.getpid()


class ProcessRecommender:
    """``Recommender.recommend_columns_batch`` answered by ``processes`` worker processes, each with its own copy
    of the bundle; a batch goes to whichever process is free (one queue, so none idles while another has work).

    The processes are started (spawned: TensorFlow does not survive a fork) and loaded before the constructor
    returns. If one dies (e.g. killed for memory), the batch in flight fails and a new pool starts for the next.
    Each process caps its OpenMP/BLAS pools at ``native_threads`` (``limit_native_threads``)."""

    def __init__(self, bundle: str | Path, processes: int, native_threads: int | None = DEFAULT_NATIVE_THREADS,
                 timeout: float = 600, *, threads: int | None = UNSET):
        self.bundle, self.processes, self.timeout = str(bundle), processes, timeout
        self.native_threads = renamed(native_threads, threads, old="threads", new="native_threads",
                                      where="ProcessRecommender")
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        ready, loaded = ctx.Pipe(duplex=False)  # each process sends its pid once loaded (a pipe: no semaphores)
        pool = ProcessPoolExecutor(self.processes, mp_context=ctx, initializer=_worker_start,
                                   initargs=(self.bundle, self.native_threads, loaded))
        jobs = [pool.submit(_worker_pid) for _ in range(self.processes)]  # spawns the processes
        pids, deadline = set(), time.monotonic() + self.timeout
        while len(pids) < self.processes:
            failed = next((f.exception() for f in jobs if f.done() and f.exception() is not None), None)
            if failed is not None or time.monotonic() > deadline:
                pool.shutdown(cancel_futures=True)
                why = (f"failed while loading (the cause is printed above): {failed}" if failed is not None
                       else f"did not load within {self.timeout:.0f} s")
                raise ServiceError(f"the {self.processes} recommendation processes for {self.bundle} {why}")
            if ready.poll(1.0):
                pids.add(ready.recv())
        ready.close()
        log.info("%d recommendation processes loaded (pids %s)", self.processes, sorted(pids))
        return pool

    def __call__(self, requests: list) -> list:
        from concurrent.futures.process import BrokenProcessPool

        pool = self._pool
        try:
            return pool.submit(_worker_recommend, requests).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:  # the first batch to notice starts new processes; the others just fail
                    log.error("a recommendation process died; starting new ones")
                    self._pool = self._start()
                    pool.shutdown(wait=False, cancel_futures=True)
            raise

    def alive(self) -> int:
        """How many recommendation processes are running (0 while the pool is broken, until a batch restarts it)."""
        pool = self._pool
        if getattr(pool, "_broken", False):
            return 0
        return sum(p.is_alive() for p in list((getattr(pool, "_processes", None) or {}).values()))

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
