"""``MicroBatcher``: concurrent requests answered together by worker threads, so one call serves many."""

from __future__ import annotations

import logging
import threading

from modules.service.config import UNSET, renamed

log = logging.getLogger(__name__)


class MicroBatcher:
    """Answers concurrent calls together, in a worker thread: ``fn(rows)`` maps a list of rows (playlists) to one
    result per row. While one batch runs, the calls that arrive queue up, and the next batch takes them all (up to
    ``max_rows`` rows) in arrival order.

    With ``workers`` > 1 worker threads that many batches run at once: a thread that becomes free takes its share of
    what has queued (the queue divided by the number of threads, rounded up), so the others find work too.
    (``threads`` is the deprecated name of ``workers``.)
    The work behind both endpoints costs mostly per call, not per row (a SavedModel call; a scan of the whole
    catalog's factors), so under load one call serves many requests; an idle server adds no wait (a lone request
    is a batch of one). Requests wait as asyncio futures on the event loop, not as threads: 32 waiting threads
    fighting for the GIL starve the event loop and stretch the latency tail.

    A batch whose call raises is answered again in halves, down to single calls, so a request that makes ``fn``
    fail gets its own error and the others their answers (a failing batch of 32 costs about 10 more calls, not
    32); errors in ``whole_batch_errors`` (a recommendation process that died) fail the whole batch at once.
    """

    def __init__(self, fn, max_rows: int = 256, name: str = "batcher", workers: int = 1,
                 whole_batch_errors: tuple[type[BaseException], ...] = (), *, threads: int = UNSET):
        import queue

        workers = renamed(workers, threads, old="threads", new="workers", where="MicroBatcher")
        self.fn, self.max_rows, self.whole_batch_errors = fn, max_rows, tuple(whole_batch_errors)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    async def __call__(self, rows: list) -> list:
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((list(rows), loop, future))
        return await future

    def call(self, rows: list) -> list:
        """The same from a thread without an event loop (tests, scripts)."""
        import asyncio

        return asyncio.run(self(rows))

    def _work(self) -> None:
        import queue

        pending = None
        while True:
            batch = [pending or self._queue.get()]
            # a fair share of what is queued, so the other threads (processes) get work too: with one cap for all,
            # the first free thread took all 32 waiting requests while the second idled
            share = -(-(len(batch[0][0]) + self._queue.qsize()) // len(self._threads))
            pending, n = None, len(batch[0][0])
            while n < share:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if n + len(job[0]) > self.max_rows:
                    pending = job  # starts the next batch
                    break
                batch.append(job)
                n += len(job[0])
            try:
                self._run(batch)
            except Exception:  # e.g. a caller's event loop closed meanwhile: the thread goes on serving the others
                log.exception("%s could not answer a batch", threading.current_thread().name)

    def alive(self) -> bool:
        """Whether every worker thread is running (a dead one would leave its share of requests waiting)."""
        return all(t.is_alive() for t in self._threads)

    def _run(self, batch: list) -> None:
        """Answer each job (``(rows, loop, future)``) of ``batch``: one call for all; if it raises, each half again."""
        try:
            out = self.fn([row for rows, _loop, _future in batch for row in rows])
        except Exception as err:
            if len(batch) > 1 and not isinstance(err, self.whole_batch_errors):
                log.warning("a batch of %d requests failed (%s); answering it in halves so only the request that "
                            "fails gets the error", len(batch), type(err).__name__)
                half = len(batch) // 2
                self._run(batch[:half])
                self._run(batch[half:])
                return
            for _rows, loop, future in batch:
                loop.call_soon_threadsafe(_resolve, future, None, err)
            return
        at = 0
        for rows, loop, future in batch:
            loop.call_soon_threadsafe(_resolve, future, out[at:at + len(rows)], None)
            at += len(rows)


def _resolve(future, result, error) -> None:
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
