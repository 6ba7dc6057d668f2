"""Result files that keep every run: ``{"runs": [...]}``, one entry appended per invocation."""

from __future__ import annotations

import json
from pathlib import Path


def append_run(path: Path, result: dict) -> None:
    """Append ``result`` to the ``runs`` of the JSON file at ``path`` (created, with its folder, when missing)."""
    path = Path(path)
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": runs + [result]}, indent=1))
