"""One request of the page, as a plain function: uploads + labels + templates -> tables, heat maps,
messages. The Gradio handlers only move its result into components, so tests and notebooks can call it
without a browser.

Nothing here raises for bad input: a problem becomes a message (naming the file where there is one),
and the server goes on serving.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from PIL import Image

from medpeft.errors import ConfigError, MedpeftError
from medpeft.serve.inference import InferenceOptions, check_prompts, heatmaps, score, template_sets
from medpeft.serve.limits import UploadLimits
from medpeft.serve.results import check_labels, combine
from medpeft.serve.uploads import read_uploads

#: The template choice that means "the templates typed in the page".
OWN_TEMPLATES = "own (typed below)"


@dataclass
class Analysis:
    """What one request produced. ``table`` holds every model's rows (``model`` column first)."""

    labels: list[str] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    overlays: dict[str, list[tuple[Image.Image, str]]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


def parse_label_text(text: str | None) -> list[str]:
    """Class names typed in the page: separated by commas or new lines, blanks dropped."""
    return [part.strip() for part in re.split(r"[,\n]", text or "") if part.strip()]


def choose_templates(choice: str | None, own_text: str | None) -> str | list[str]:
    """A named template set, or the typed templates (one per line; ``#`` lines are comments).

    Only names from the fixed list are passed on as strings: evaluation reads any other string as a
    template *file*, and a web page must never name files on the server.
    """
    if choice == OWN_TEMPLATES:
        lines = [line.strip() for line in (own_text or "").splitlines()]
        templates = [line for line in lines if line and not line.startswith("#")]
        if not templates:
            raise ConfigError("type at least one template (with {} where the class name goes), or pick a set")
        return templates
    if choice in template_sets():
        return str(choice)
    raise ConfigError(f"unknown template set {choice!r}: choose one of {[*template_sets(), OWN_TEMPLATES]}")


def analyse(
    models: Mapping[str, Any],
    files: Sequence[str | os.PathLike] | None,
    labels_text: str | None,
    template_choice: str | None,
    own_templates: str | None,
    *,
    limits: UploadLimits,
    compute: InferenceOptions,
    with_heatmaps: bool = True,
) -> Analysis:
    """Score the readable uploads with every model (``evaluation.predict``), draw heat maps, and report
    unreadable files, limits and bad labels/templates as messages."""
    try:
        labels = parse_label_text(labels_text)
        check_labels(labels)
        templates = choose_templates(template_choice, own_templates)
        labels = check_prompts(labels, templates)
        read = read_uploads([os.fspath(f) for f in (files or [])], limits)
    except MedpeftError as err:
        return Analysis(messages=[str(err)])
    result = Analysis(labels=labels, messages=list(read.rejected))
    if not read.images:
        result.messages.append("no readable image to score")
        return result
    images = [upload.image for upload in read.images]
    names = [upload.name for upload in read.images]
    try:
        result.tables = score(models, images, labels, templates, compute)
    except MedpeftError as err:
        result.messages.append(str(err))
        return result
    result.table = combine(result.tables, names)
    if with_heatmaps:
        for model_name, model in models.items():
            frame = result.tables[model_name]
            titles = [f"{row['predicted']} ({row[row['predicted']]:.2f})" for _, row in frame.iterrows()]
            drawn = heatmaps(model, images, titles, compute)
            captions = [f"{name}: {title}" for name, title in zip(names, titles, strict=True)]
            result.overlays[model_name] = list(zip(drawn, captions, strict=True))
    return result
