"""Atomic JSON writing and the combined markdown results table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medpeft.errors import ConfigError
from medpeft.evaluation.metrics import classification_metrics
from medpeft.evaluation.report import atomic_path, markdown_table, metrics_row, write_json_atomic


def test_write_json_atomic_plain_strict_json(tmp_path):
    obj = {
        "a": np.float32(0.5),
        "b": np.arange(3),
        "c": float("nan"),
        "d": torch.tensor([1.5]),
        "e": tmp_path,
    }
    out = write_json_atomic(obj, tmp_path / "deep" / "er" / "metrics.json")
    text = out.read_text()
    assert json.loads(text) == {"a": 0.5, "b": [0, 1, 2], "c": None, "d": [1.5], "e": str(tmp_path)}
    assert "NaN" not in text
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]


def test_atomic_path_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_markdown_table_with_intervals():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    p = np.clip(0.4 * y + 0.6 * rng.random(50), 0, 1)
    m = classification_metrics(y, p, "binary", ["No Finding", "pneumonia"], n_bootstrap=50)
    rows = [
        metrics_row(m, dataset="rsna", adapter="base"),
        metrics_row(m, dataset="rsna", adapter="ace|lora"),
        {"dataset": "siim", "adapter": "base", "n": 10, "auroc": None},
    ]
    table = markdown_table(rows)
    lines = table.strip().splitlines()
    assert lines[0] == "| Dataset | Adapter | N | AUROC | Accuracy | Macro F1 | Balanced acc. |"
    assert lines[1].count("---") == 7
    low, high = m["ci"]["auroc"]
    assert f"{m['auroc']:.3f} [{low:.3f}, {high:.3f}]" in lines[2]
    assert "ace\\|lora" in lines[3]
    assert lines[4] == "| siim | base | 10 | n/a | n/a | n/a | n/a |"
    assert markdown_table([{"x": 0.12345}], ["x"], digits=2) == "| x |\n| --- |\n| 0.12 |\n"
    with pytest.raises(ConfigError):
        markdown_table(rows, [])
