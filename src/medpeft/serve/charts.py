"""The probability bar chart of one model: per image, one bar per label.

Drawn with matplotlib's object API (no pyplot global state: requests run in worker threads).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def probability_chart(frame: pd.DataFrame, labels: Sequence[str], title: str) -> Figure:
    """Horizontal grouped bars: images down the side (upload order), a colour per label, x in [0, 1]."""
    images = frame["image"].tolist()
    probs = frame[list(labels)].to_numpy(dtype=np.float64)
    n, c = probs.shape
    height = 1.2 + max(1, n) * (0.25 * c + 0.35)
    fig = Figure(figsize=(6.0, height))
    ax = fig.add_subplot()
    bar = 0.8 / max(c, 1)
    rows = np.arange(n)
    for j, label in enumerate(labels):
        ax.barh(rows + j * bar - 0.4 + bar / 2, probs[:, j], height=bar, label=label)
    ax.set_yticks(rows, labels=images, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("probability")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
