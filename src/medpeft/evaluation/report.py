"""Result files: atomic writes (JSON and any other file) and the combined markdown results table.

Files are written to a temporary name in the destination folder and renamed into place, so an
interrupted run never leaves a half-written ``metrics.json`` or PNG that a later step would trust.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
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


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``.

    Parent folders are created. On any exception the temporary file is removed and ``path`` is untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy/torch scalars and arrays to numbers/lists, paths to str, NaN/inf to null."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "detach"):  # torch tensor
        obj = obj.detach().cpu().tolist()
        return _jsonable(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy array or scalar
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # strict JSON has no NaN; an undefined metric is null
    return obj


def write_json_atomic(obj: Any, path: str | os.PathLike[str], *, indent: int = 2) -> Path:
    """Write ``obj`` as strict JSON (NaN/inf become null; numpy/torch values become plain numbers) atomically."""
    text = json.dumps(_jsonable(obj), indent=indent, allow_nan=False, ensure_ascii=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


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
