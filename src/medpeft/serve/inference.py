"""Every call the web app makes into ``medpeft.evaluation``, in one place.

Why: the page must give the numbers ``predict`` gives (one scoring path, no copy of it here), and the
evaluation API is being reshaped; whatever its new call looks like, only this file changes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from medpeft.evaluation.heatmap import save_heatmaps
from medpeft.evaluation.options import InferenceOptions
from medpeft.evaluation.predict import label_prompts, parse_labels, predict
from medpeft.evaluation.prompts import DATASETS, TEMPLATE_SETS
from medpeft.runtime import PRECISIONS


def resolve_compute(device: str = "auto", precision: str = "fp32", batch_size: int = 16) -> InferenceOptions:
    """``--device``/``--precision`` checked once at start, the project's way (fp16 needs CUDA)."""
    options = InferenceOptions(batch_size=batch_size, device=device, precision=precision)
    dev = options.torch_device()
    options.autocast_dtype(dev)
    return InferenceOptions.make(options, device=str(dev))


def template_sets() -> dict[str, tuple[str, ...]]:
    """The named template sets the page offers (chest-xray, histopathology, biomedclip)."""
    return dict(TEMPLATE_SETS)


def dataset_presets() -> dict[str, tuple[tuple[str, ...], str | None]]:
    """Per dataset: its class names and the name of its template set (None if not a named set)."""
    by_templates = {templates: name for name, templates in TEMPLATE_SETS.items()}
    return {name: (d.class_names, by_templates.get(d.templates)) for name, d in DATASETS.items()}


def check_prompts(labels: Sequence[str], templates: str | list[str]) -> list[str]:
    """The labels, validated with the prompts they make (``ConfigError`` on a bad label or template)."""
    names = parse_labels(list(labels))
    label_prompts(names, templates)
    return names


def score(
    models: Mapping[str, Any],
    images: Sequence[Image.Image],
    labels: Sequence[str],
    templates: str | list[str],
    compute: InferenceOptions,
) -> dict[str, pd.DataFrame]:
    """Per model, ``evaluation.predict``'s table (``image``, ``predicted``, one column per label)."""
    return {
        name: predict(
            model,
            list(images),
            list(labels),
            templates=templates,
            options=InferenceOptions.make(compute, on_bad_image="error"),
        )
        for name, model in models.items()
    }


def heatmaps(
    model: Any, images: Sequence[Image.Image], titles: Sequence[str], compute: InferenceOptions
) -> list[Image.Image]:
    """``evaluation.heatmap``'s overlays, drawn in a temporary folder that is removed before returning."""
    with tempfile.TemporaryDirectory(prefix="medpeft-serve-heatmaps-") as folder:
        written = save_heatmaps(
            model,
            list(images),
            folder,
            titles=list(titles),
            options=InferenceOptions.make(compute, on_bad_image="error"),
        )
        overlays = []
        for file in written["files"]:
            with Image.open(Path(file)) as img:
                overlays.append(img.convert("RGB"))
    return overlays


__all__ = [
    "PRECISIONS",
    "InferenceOptions",
    "check_prompts",
    "dataset_presets",
    "heatmaps",
    "resolve_compute",
    "score",
    "template_sets",
]
