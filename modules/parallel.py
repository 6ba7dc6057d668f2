"""Per-file work in worker processes, results in input order: the same output for any number of jobs.

``ordered_map`` forks (the workers inherit what the parent prepared, e.g. a world generator), so it is for
Linux-style platforms; ``jobs == 1`` runs in this process.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator


def ordered_map(fn: Callable, tasks: list[tuple], jobs: int) -> Iterator:
    """``fn(*task)`` for every task, in order; ``jobs`` worker processes when there is more than one task. A task
    that fails in a worker runs again here, so its error is raised as it would be without workers."""
    if jobs > 1 and len(tasks) > 1:
        with mp.get_context("fork").Pool(min(jobs, len(tasks))) as pool:
            for task, (ok, result) in zip(tasks, pool.imap(_in_worker, [(fn, t) for t in tasks]), strict=True):
                yield result if ok else fn(*task)
    else:
        for task in tasks:
            yield fn(*task)


def _in_worker(job) -> tuple[bool, object]:
    """``(True, fn(*task))``, or ``(False, None)`` when it raised (an exception need not survive pickling)."""
    fn, task = job
    try:
        return True, fn(*task)
    except Exception:
        return False, None
