"""Result tables: metric rows and the combined markdown results table (files are written through
``medpeft.io``, so an interrupted run never leaves a half-written ``metrics.json``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from medpeft.errors import ConfigError

Column = str | tuple[str, str]

# The metrics of ``classification_metrics`` in the order the combined table shows them.
CLASSIFICATION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("dataset", "Dataset"),
    ("adapter", "Adapter"),
    ("n", "N"),
    ("auroc", "AUROC"),
    ("accuracy", "Accuracy"),
    ("f1", "Macro F1"),
    ("balanced_accuracy", "Balanced acc."),
)
_ROW_METRICS = ("accuracy", "auroc", "f1", "balanced_accuracy", "subset_accuracy")


def metrics_row(metrics: Mapping[str, Any], **identifiers: Any) -> dict[str, Any]:
    """Flatten one ``classification_metrics`` result into a table row (``<metric>`` and ``<metric>_ci``).

    ``identifiers`` name the row, e.g. ``metrics_row(m, dataset="rsna", adapter="ace-lora")``.
    """
    row: dict[str, Any] = dict(identifiers)
    row["n"] = metrics.get("n")
    intervals = metrics.get("ci") or {}
    for key in _ROW_METRICS:
        if key in metrics:
            row[key] = metrics[key]
            row[f"{key}_ci"] = intervals.get(key)
    return row


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _format_cell(value: Any, interval: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        cell = f"{value:.{digits}f}"
        if isinstance(interval, Sequence) and len(interval) == 2 and None not in interval:
            low, high = interval
            cell += f" [{low:.{digits}f}, {high:.{digits}f}]"
        return cell
    return _escape(str(value))


def markdown_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column] = CLASSIFICATION_COLUMNS,
    *,
    digits: int = 3,
    ci_suffix: str = "_ci",
) -> str:
    """A GitHub-markdown table: one line per row (e.g. dataset × adapter), one column per key.

    ``columns`` are keys or ``(key, header)`` pairs. A float cell is printed with ``digits`` decimals and, when
    the row has ``<key><ci_suffix>`` = ``[low, high]``, its confidence interval as ``0.853 [0.821, 0.884]``
    (percentile intervals are not symmetric, so they are not shown as ±). Missing values print ``n/a``.
    """
    if not columns:
        raise ConfigError("markdown_table needs at least one column")
    keys: list[str] = []
    headers: list[str] = []
    for column in columns:
        key, header = (column, column) if isinstance(column, str) else column
        keys.append(key)
        headers.append(_escape(header))
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    for row in rows:
        cells = [_format_cell(row.get(key), row.get(f"{key}{ci_suffix}"), digits) for key in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
