"""A bundle trained in the background, so the app can show progress instead of a terminal that waits.

``make demo`` starts the app at once; the app's first page starts ``python -m modules train`` as a child
process (``start``) and shows how far it is (``status``) until the bundle exists. Three files sit beside the
bundle folder ``DIR`` (``.DIR.train.json``, ``.log``, ``.lock``):

* the child holds an exclusive ``flock`` on the ``.lock`` file for as long as it runs (the descriptor is passed
  to it and the parent closes its copy), so "is it still running?" needs no process id, survives a restart of
  the app, and can never start a second training into the same folder;
* the ``.log`` file collects the child's output (its log lines and progress bars);
* the ``.json`` file records the command and when it started.

The bundle itself is written atomically by ``train``: until it is complete, ``DIR`` does not exist.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

TAIL_LINES = 12


@dataclass(frozen=True)
class JobStatus:
    """Where a background training stands: ``state`` is ``"done"`` (the bundle exists), ``"running"``,
    ``"failed"`` (the process ended and left no bundle: ``tail`` says why) or ``"none"`` (never started)."""

    state: str
    out: Path
    command: list[str] = field(default_factory=list)
    started: float | None = None
    tail: list[str] = field(default_factory=list)
    log_path: Path | None = None

    @property
    def elapsed(self) -> float | None:
        """Seconds since the job started (``None`` when it never did)."""
        return None if self.started is None else max(0.0, time.time() - self.started)


def job_files(out: str | Path) -> dict[str, Path]:
    """The job's ``json``, ``log`` and ``lock`` files, beside the bundle folder ``out``."""
    out = Path(out)
    return {kind: out.parent / f".{out.name}.train.{kind}" for kind in ("json", "log", "lock")}


def train_command(source: str | Path, out: str | Path, seed: int = 0) -> list[str]:
    """``python -m modules train`` for the playlists in ``source`` (an MPD folder or a store) into ``out``."""
    return [sys.executable, "-m", "modules", "train", "--mpd", str(source), "--out", str(out), "--seed", str(seed)]


def _lock_is_held(lock: Path) -> bool:
    if not lock.exists():
        return False
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def _tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of the log; a progress bar's carriage returns count as line ends (last state)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64_000))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    rows = [r.rstrip() for r in text.replace("\r", "\n").split("\n")]
    return [r for r in rows if r.strip()][-lines:]


def status(out: str | Path) -> JobStatus:
    """Where the training into ``out`` stands (see ``JobStatus``)."""
    out = Path(out)
    files = job_files(out)
    try:
        record = json.loads(files["json"].read_text())
    except (OSError, ValueError):
        record = {}
    common = {"out": out, "command": record.get("command", []), "started": record.get("started"),
              "log_path": files["log"] if files["log"].exists() else None}
    if (out / "manifest.json").is_file():
        return JobStatus("done", **common)
    if _lock_is_held(files["lock"]):
        return JobStatus("running", tail=_tail(files["log"]), **common)
    if record:
        return JobStatus("failed", tail=_tail(files["log"]), **common)
    return JobStatus("none", **common)


def start(command: list[str], out: str | Path, cwd: str | Path | None = None) -> JobStatus:
    """Run ``command`` (which writes the bundle ``out``) in the background, unless ``out`` is already a bundle or
    a job for it is running; returns the job's status either way. The child outlives the app (its own session):
    stopping the app does not throw away a half-finished training."""
    out = Path(out)
    files = job_files(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(files["lock"], os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another app process started it first
            return status(out)
        if (out / "manifest.json").is_file():
            return status(out)
        started = time.time()
        files["json"].write_text(json.dumps({"command": list(command), "started": started}))
        with open(files["log"], "wb") as logfile:
            subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                             pass_fds=(fd,), start_new_session=True)
        log.info("training %s in the background (log %s)", out, files["log"])
    finally:
        os.close(fd)  # the child keeps the lock until it exits
    return status(out)
