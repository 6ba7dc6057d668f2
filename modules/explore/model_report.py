"""The model page's data: the two-tower's training curve and the quality benchmark results
(``benchmarks/quality.py``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from modules.errors import ExploreError

log = logging.getLogger(__name__)


def training_curve(bundle: str | Path) -> pd.DataFrame:
    """The two-tower's per-epoch record (``two_tower/training_curve.json``): one row per epoch, numeric columns
    only (loss, seconds, examples/s, validation metrics). Empty when the bundle recorded none."""
    from modules.bundle import Bundle

    path = Bundle(bundle).training_curve
    if not path.is_file():
        return pd.DataFrame()
    try:
        epochs = json.loads(path.read_text()).get("epochs") or []
    except (json.JSONDecodeError, AttributeError) as err:
        raise ExploreError(f"{path} is not a training-curve file ({err}).") from None
    rows = []
    for i, e in enumerate(epochs, start=1):
        row = {"epoch": e.get("epoch", i)}
        for key, v in e.items():
            if isinstance(v, dict):  # nested validation metrics, e.g. {"val": {"recall@100": …}}
                row.update({f"{key}.{k}": x for k, x in v.items() if isinstance(x, (int, float))})
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                row[key] = v
        rows.append(row)
    return pd.DataFrame(rows)


def benchmark_results(root: str | Path) -> pd.DataFrame:
    """Quality results under ``root`` (``benchmarks/results/**/*.json`` written by ``benchmarks/quality.py``) as
    a long table: ``run`` (the results folder), ``method``, ``category``, ``metric``, ``value``, ``count``.

    Files that are not per-category quality results (speed benchmarks, rule mining) are skipped.
    """
    root = Path(root)
    rows = []
    for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            log.warning("skipping %s: not JSON", path)
            continue
        metrics = doc.get("metrics") if isinstance(doc, dict) else None
        if not isinstance(metrics, dict) or not isinstance(metrics.get("ALL"), dict):
            continue
        run = str(path.parent.relative_to(root)) if path.parent != root else "."
        method = str(doc.get("label") or doc.get("method") or path.stem)
        for category, values in metrics.items():
            if not isinstance(values, dict):
                continue
            for metric, v in values.items():
                if metric != "count" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    rows.append((run, method, category, metric, float(v), values.get("count")))
    return pd.DataFrame(rows, columns=["run", "method", "category", "metric", "value", "count"])


def benchmark_table(results: pd.DataFrame, run: str, category: str = "ALL") -> pd.DataFrame:
    """One run's methods as rows and metrics as columns (one category), best NDCG first."""
    sel = results.loc[(results["run"] == run) & (results["category"] == category)]
    table = sel.pivot_table(index="method", columns="metric", values="value", aggfunc="first")
    order = [c for c in ("r_precision", "r_precision_artist", "ndcg", "clicks", "recall") if c in table.columns]
    table = table[order + [c for c in table.columns if c not in order]]
    if "ndcg" in table.columns:
        table = table.sort_values("ndcg", ascending=False)
    return table.reset_index()
