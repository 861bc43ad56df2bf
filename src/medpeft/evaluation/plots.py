"""Figures for evaluation outputs: ROC curves, confusion matrices, and image overlays (heat map, mask, boxes).

Drawn with matplotlib's object API on an Agg canvas (no pyplot global state, no display needed, safe in
worker threads) and written atomically, so a figure on disk is always complete.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from medpeft.data.boxes import to_xyxy
from medpeft.errors import DataError
from medpeft.evaluation.metrics import auroc, prepare_inputs
from medpeft.io import atomic_path

PathLike = str | os.PathLike[str]
_BOX_COLOURS = ("#00e5ff", "#ffea00", "#ff3d00", "#76ff03", "#d500f9")


def _save(fig: Figure, path: PathLike, dpi: int) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def _roc_points(targets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve vertices (fpr, tpr) with tied scores merged into one step, from (1,1) down to (0,0)."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], targets[order].astype(np.float64)
    distinct = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(t)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(t.sum(), 1)]
    fpr = np.r_[0.0, fps / max((1 - t).sum(), 1)]
    return fpr, tpr


def save_roc_curves(
    y_true: Any,
    probs: Any,
    task: str,
    class_names: Sequence[str],
    path: PathLike,
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """ROC curve PNG: one curve per class (one-vs-rest; binary: the positive class), AUROC in the legend.

    Inputs are those of ``classification_metrics`` and are validated the same way; the legend's AUROC is the
    project's single ``auroc``, so it matches ``metrics.json``. Classes without both outcomes are left out.
    """
    prep = prepare_inputs(y_true, probs, task, class_names, threshold=0.5)
    fig = Figure(figsize=(5.5, 5.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance")
    skipped = []
    for col, name in enumerate(prep.auroc_names):
        targets, scores = prep.auroc_targets[:, col], prep.auroc_scores[:, col]
        value = auroc(targets.astype(np.int64), scores)
        if value is None:
            skipped.append(name)
            continue
        fpr, tpr = _roc_points(targets, scores)
        ax.plot(fpr, tpr, linewidth=1.6, label=f"{name} (AUROC {value:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    heading = title or "ROC curves"
    if skipped:
        heading += f"\n(no AUROC, one class only: {', '.join(skipped)})"
    ax.set_title(heading, fontsize=10)
    ax.legend(loc="lower right", fontsize=7 if len(prep.auroc_names) > 6 else 8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path, dpi)


def save_confusion_matrix(
    matrix: Any,
    class_names: Sequence[str],
    path: PathLike,
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Confusion-matrix PNG (rows = true class, columns = predicted), each cell as count and row percentage.

    Colours follow the row-normalised value so a small class's errors stay visible next to a large class.
    """
    cm = np.asarray(matrix, dtype=np.float64)
    n = len(class_names)
    if cm.shape != (n, n):
        raise DataError(f"confusion matrix has shape {list(cm.shape)} but {n} class names need [{n}, {n}]")
    if not np.all(np.isfinite(cm)) or (cm < 0).any():
        raise DataError("confusion matrix must hold non-negative finite counts")
    row_sums = cm.sum(axis=1, keepdims=True)
    normalised = np.divide(cm, row_sums, out=np.zeros_like(cm), where=row_sums > 0)
    size = max(4.0, 1.0 + 0.75 * n)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=list(class_names), fontsize=8)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(title or "Confusion matrix", fontsize=10)
    font = 8 if n <= 6 else 6
    for i in range(n):
        for j in range(n):
            count = int(cm[i, j]) if float(cm[i, j]).is_integer() else round(float(cm[i, j]), 2)
            colour = "white" if normalised[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{count}\n{100 * normalised[i, j]:.0f}%",
                ha="center",
                va="center",
                color=colour,
                fontsize=font,
            )
    fig.tight_layout()
    return _save(fig, path, dpi)


def _image_array(image: Any) -> np.ndarray:
    """[H, W] or [H, W, 3] array in [0, 1] for display, from a PIL image or an HW/HWC array."""
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL image
        image = np.asarray(image.convert("L" if image.mode in ("L", "I", "I;16", "F", "1") else "RGB"))
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise DataError(f"image must be [H, W] or [H, W, 3] (channels last), got shape {list(array.shape)}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise DataError("image contains NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if np.issubdtype(np.asarray(image).dtype, np.integer) and high > 1:
        scale_max = 65535.0 if high > 255 else 255.0
        return array / scale_max
    if low < 0 or high > 1:  # e.g. normalised pixel values: stretch to [0, 1] for display only
        return (array - low) / (high - low) if high > low else np.zeros_like(array)
    return array


def save_overlay(
    image: Any,
    heat: np.ndarray | None,
    path: PathLike,
    *,
    boxes: Sequence[Sequence[float]] | Mapping[str, Sequence[Sequence[float]]] | None = None,
    mask: np.ndarray | None = None,
    title: str | None = None,
    box_format: str = "xyxy",
    alpha: float = 0.45,
    dpi: int = 100,
) -> Path:
    """PNG of ``image`` with a heat map, a mask outline and boxes drawn over it.

    ``heat`` is [H, W] (a probability map) or a coarse [gh, gw] grid (e.g. 14×14 patch weights) stretched over
    the whole image with bilinear smoothing; it is min-max scaled for display. ``mask`` is an [H, W] binary
    mask (outlined in green). ``boxes`` are pixel boxes in ``box_format`` ("xyxy" or "xywh"); a mapping such as
    ``{"ground truth": [...], "predicted": [...]}`` draws each group in its own colour with a legend.
    """
    picture = _image_array(image)
    height, width = picture.shape[:2]
    fig = Figure(figsize=(5.0, 5.0 * height / width + (0.4 if title else 0.0)))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 if not title else 1.0 - 0.4 / (5.0 * height / width + 0.4)))
    ax.imshow(
        picture, cmap="gray" if picture.ndim == 2 else None, vmin=0.0, vmax=1.0, extent=(0, width, height, 0)
    )
    if heat is not None:
        grid = np.asarray(heat, dtype=np.float64)
        if grid.ndim != 2:
            raise DataError(f"heat must be a 2-D map [h, w], got shape {list(grid.shape)}")
        if not np.all(np.isfinite(grid)):
            raise DataError("heat contains NaN or infinite values")
        low, high = grid.min(), grid.max()
        grid = (grid - low) / (high - low) if high > low else np.zeros_like(grid)
        ax.imshow(
            grid,
            cmap="jet",
            alpha=alpha,
            vmin=0.0,
            vmax=1.0,
            extent=(0, width, height, 0),
            interpolation="bilinear",
        )
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != (height, width):
            raise DataError(f"mask has shape {list(m.shape)} but the image is {height}x{width}")
        if m.any() and not m.all():
            ax.contour(
                np.arange(width) + 0.5,
                np.arange(height) + 0.5,
                (m > 0.5).astype(float),
                levels=[0.5],
                colors="#00ff66",
                linewidths=1.5,
            )
    handles = []
    if boxes is not None:
        groups = boxes.items() if isinstance(boxes, Mapping) else [(None, boxes)]
        for index, (label, group) in enumerate(groups):
            colour = _BOX_COLOURS[index % len(_BOX_COLOURS)]
            for x1, y1, x2, y2 in to_xyxy(
                group, box_format, what=f"overlay boxes {label or ''}".strip()
            ).tolist():
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=2))
            if label is not None:
                handles.append(Patch(facecolor="none", edgecolor=colour, label=str(label)))
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=8)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10, y=0.995, va="top")
    return _save(fig, path, dpi)
