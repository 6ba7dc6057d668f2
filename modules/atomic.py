"""Write outputs so nothing is lost: never over a folder that is not ours, and never half a folder.

A store, a challenge split and a model bundle are folders several files long. Before any work, a command checks
its ``--out`` (``check_output_folder``): a folder that exists, holds files and is not one of ours of the same
kind is refused, and so is an ``--out`` that is or holds one of the command's inputs; a folder of
ours is recognized by its marker file (``store.json``, ``split.json``, ``manifest.json``, …, see
``FolderKind``). The folder is then built beside the target and swapped in (``atomic_directory``): an
interrupted write (Ctrl-C, a full disk, a bug) leaves the previous folder as it was and no debris beside it.
Single output files are checked the same way before the work (``check_output_file``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from modules.errors import OutputError


@dataclass(frozen=True)
class FolderKind:
    """What makes a folder one of ours of one kind.

    Parameters
    ----------
    name : str
        Shown in messages, e.g. ``"playlist store"``.
    marker : str or None
        A JSON file in the folder whose ``"format"`` starts with ``format``, e.g. ``store.json``.
    format : str or None
        Prefix of the marker's format, e.g. ``"playlist-store/"`` (any version of the format is ours).
    also : callable, default=None
        ``folder -> bool``: other folders of this kind, e.g. ones written before the marker existed.
    """

    name: str
    marker: str | None
    format: str | None
    also: Callable[[Path], bool] | None = None

    def owns(self, folder: str | Path) -> bool:
        """Whether ``folder`` is a folder of this kind (written by this code)."""
        folder = Path(folder)
        marker = folder / self.marker if self.marker else None
        if marker is not None and marker.is_file():
            try:
                doc = orjson.loads(marker.read_bytes())
            except (orjson.JSONDecodeError, OSError):
                doc = None
            if isinstance(doc, dict) and str(doc.get("format", "")).startswith(self.format):
                return True
        return bool(self.also and self.also(folder))


def _overlap(out: Path, inputs: Iterable[str | Path]) -> Path | None:
    """The first input that ``out`` is or holds (paths resolved), or None. (A new folder inside an input folder
    is harmless: replacing it touches nothing of the input.)"""
    o = out.resolve()
    for item in inputs:
        if item is None:
            continue
        i = Path(item).resolve()
        if o == i or o in i.parents:
            return Path(item)
    return None


def check_output_folder(out: str | Path, kind: FolderKind, *, inputs: Iterable[str | Path] = (),
                        flag: str = "--out") -> Path:
    """Refuse an output folder that writing would wreck; call it before any work.

    Accepted: a folder that does not exist, an empty folder, or a folder of ``kind`` (it will be replaced as a
    whole). Refused (``OutputError``): a file; a folder holding anything else; a folder that is or holds one of
    ``inputs``.
    """
    out = Path(out)
    clash = _overlap(out, inputs)
    if clash is not None:
        where = "is" if out.resolve() == clash.resolve() else "holds"
        raise OutputError(f"{flag} {out} {where} the input {clash}: writing it would replace the input. "
                          f"Choose another {flag} folder, one that is not and does not hold the input.")
    why = refusal(out, kind.name, kind.marker, is_file=out.is_file(),
                  holds_files=lambda: out.is_dir() and any(out.iterdir()), is_kind=lambda: kind.owns(out), flag=flag)
    if why is not None:
        raise OutputError(why)
    return out


def refusal(out, kind_name: str, marker: str | None, *, is_file: bool, holds_files: Callable[[], bool],
            is_kind: Callable[[], bool], flag: str = "--out") -> str | None:
    """Why writing a ``kind_name`` folder at ``out`` would wreck what is there, or ``None`` when it may be
    written: nothing there, an empty folder, or a folder of that kind (replaced as a whole).

    The one rule (and its messages) for every destination: local folders (``check_output_folder``) and URIs
    (``modules.spark.storage.check_destination``), each asking its own file system through ``is_file`` and the
    callables, which are only called when the answer needs them."""
    if is_file:
        return f"{flag} {out} is a file; the {kind_name} is a folder. Choose a new or empty folder."
    if holds_files() and not is_kind():
        why = f" (no {marker})" if marker else ""
        return (f"{flag} {out} already holds files and is not a {kind_name}{why}; writing there would replace "
                "them. Choose a new or empty folder, or move the files away.")
    return None


def check_output_file(out: str | Path, *, inputs: Iterable[str | Path] = (), flag: str = "--out",
                      make_parent: bool = False) -> Path:
    """Refuse an output file that cannot be written or is one of ``inputs``; call it before any work.

    An existing file is replaced (by the command, once the new one is complete). A missing folder is refused
    (more often a typo than a wish) unless ``make_parent`` says the writer creates it.
    """
    out = Path(out)
    clash = next((Path(i) for i in inputs if i is not None and Path(i).resolve() == out.resolve()), None)
    if clash is not None:
        raise OutputError(f"{flag} {out} is the input {clash}: writing it would replace the input. "
                          f"Choose another {flag} file.")
    if out.is_dir():
        raise OutputError(f"{flag} {out} is a folder; give a file name, e.g. {out / 'submission.csv'}.")
    parent = out.parent
    if not make_parent and not parent.is_dir():
        raise OutputError(f"{flag} {out}: the folder {parent} does not exist; create it first "
                          f"(mkdir -p {parent}) or choose another {flag}.")
    return out


@contextmanager
def atomic_directory(out: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``out``; on success it replaces ``out``, on error it is removed.

    The swap is two renames on the same file system (the old ``out`` is moved aside, then deleted), so ``out`` is
    at every moment either the old folder or the complete new one. Check ``out`` first with
    ``check_output_folder``: this function replaces whatever is there.
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
