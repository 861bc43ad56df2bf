"""The combined markdown results table."""

from __future__ import annotations

import numpy as np
import pytest

from medpeft.errors import ConfigError
from medpeft.evaluation.metrics import classification_metrics
from medpeft.evaluation.report import markdown_table, metrics_row


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
