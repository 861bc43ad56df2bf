"""The results table of one request: all models in one frame, as a page table and as a CSV download.

Why: the page shows rounded numbers, the CSV keeps full precision (it reproduces ``medpeft predict``'s
CSV for the same images and labels), and both come from one frame so they cannot disagree.
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from medpeft.errors import ConfigError
from medpeft.io import atomic_path

#: The column that names the model (adapter) of a row; a label may not take it.
MODEL_COLUMN = "model"
CSV_NAME = "medpeft_predictions.csv"


def check_labels(labels: Sequence[str]) -> None:
    """A label named like the model column would make the table ambiguous."""
    if MODEL_COLUMN in labels:
        raise ConfigError(f"{MODEL_COLUMN!r} is a column of the results table; rename that label")


def combine(tables: Mapping[str, pd.DataFrame], names: Sequence[str]) -> pd.DataFrame:
    """One frame: ``model``, ``image`` (the uploaded names), ``predicted``, a probability per label."""
    frames = []
    for model, frame in tables.items():
        rows = frame.reset_index(drop=True).copy()
        rows["image"] = [names[i] for i in frame.attrs.get("kept", range(len(frame)))]
        rows.insert(0, MODEL_COLUMN, model)
        frames.append(rows)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_csv(frame: pd.DataFrame, folder: str | Path) -> Path:
    """The table as ``medpeft_predictions.csv`` in a fresh sub-folder of ``folder`` (so concurrent users
    never overwrite each other's download), at full precision."""
    out = Path(tempfile.mkdtemp(prefix="request-", dir=folder)) / CSV_NAME
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    return out


def to_html(frame: pd.DataFrame, digits: int = 4) -> str:
    """The table for the page (names escaped: they come from uploads); probabilities to ``digits``."""
    if frame.empty:
        return ""
    return frame.to_html(
        index=False,
        escape=True,
        float_format=lambda v: f"{v:.{digits}f}",
        classes="medpeft-results",
        table_id="medpeft-results",
        border=0,
    )


def messages_html(
    messages: Sequence[str], heading: str = "Not scored:", element_id: str = "medpeft-messages"
) -> str:
    """Problems of a request as a list for the page (escaped: a file name cannot inject markup)."""
    if not messages:
        return ""
    items = "".join(f"<li>{html.escape(m)}</li>" for m in messages)
    return (
        f'<div id="{element_id}" role="alert"><strong>{html.escape(heading)}</strong><ul>{items}</ul></div>'
    )
