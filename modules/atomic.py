"""Write a directory so a reader never sees half of it: build it beside the target, then swap it in.

A store, a challenge split and a model bundle are folders several files long; an interrupted write (Ctrl-C, a
full disk, a bug) must leave the previous folder as it was and no debris beside it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(out: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``out``; on success it replaces ``out``, on error it is removed.

    The swap is two renames on the same file system (the old ``out`` is moved aside, then deleted), so ``out`` is
    at every moment either the old folder or the complete new one.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
