"""Run logs: ``metrics.jsonl`` (one JSON record per log step, appended and flushed), ``metrics.csv``
rebuilt from it, and TensorBoard scalars when the ``tensorboard`` package is installed.

On resume the records after the checkpoint's step are dropped, because the resumed run logs those
steps again; the log of a resumed run then reads like that of an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

JSONL = "metrics.jsonl"
CSV = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"


def _read_records(path: Path) -> list[dict[str, Any]]:
    records = []
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            continue
    return records


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLogger:
    """Writes on the main process only; every method is a no-op elsewhere."""

    def __init__(
        self, out_dir: Path, enabled: bool, tensorboard: bool, resume_step: int | None = None
    ) -> None:
        self.enabled = enabled
        self.jsonl = Path(out_dir) / JSONL
        self.csv = Path(out_dir) / CSV
        self.writer = None
        if not enabled:
            return
        kept = [
            r
            for r in _read_records(self.jsonl)
            if resume_step is not None and r.get("step", 0) <= resume_step
        ]
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in kept))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("tensorboard is not installed; logging to %s only", self.jsonl.name)
            else:
                self.writer = SummaryWriter(str(Path(out_dir) / TENSORBOARD_DIR), purge_step=resume_step)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: _plain(v) for k, v in record.items()}
        with self.jsonl.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
        if self.writer is not None:
            step = int(record.get("step", 0))
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, step)

    def write_csv(self) -> None:
        """Rebuild ``metrics.csv`` (columns: the union of all record keys, ``step`` first)."""
        if not self.enabled:
            return
        records = _read_records(self.jsonl)
        columns: list[str] = []
        for r in records:
            columns.extend(k for k in r if k not in columns)
        if "step" in columns:
            columns.remove("step")
            columns.insert(0, "step")
        tmp = self.csv.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(records)
        tmp.replace(self.csv)

    def close(self) -> None:
        if self.enabled:
            self.write_csv()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
