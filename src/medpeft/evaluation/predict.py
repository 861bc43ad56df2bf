"""``predict``: zero-shot probabilities for the user's own images and labels, as a table.

The same batched path as ``evaluate`` (``inference.score_images``), so one image and a thousand give the
same numbers per image. Works on any object with ``encode_image``/``encode_prompts``/``logit_scale`` and a
``backbone`` (``AceLoraModel``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from medpeft.errors import ConfigError
from medpeft.evaluation.image_loader import ImageInput, as_items, describe
from medpeft.evaluation.inference import ClassPrompts, classify_images
from medpeft.evaluation.options import InferenceOptions
from medpeft.evaluation.zero_shot import Templates, resolve_templates

#: Without ``templates``, BiomedCLIP's own zero-shot template (it fits any image family).
DEFAULT_TEMPLATES = "biomedclip"
#: Columns of the prediction table that a label may not take as its name.
RESERVED = ("image", "predicted")


def parse_labels(labels: str | Sequence[str]) -> list[str]:
    """Labels from a list or a comma-separated string; at least two distinct, non-empty labels."""
    items = labels.split(",") if isinstance(labels, str) else list(labels)
    names = [str(label).strip() for label in items if str(label).strip()]
    if len(names) < 2:
        raise ConfigError(
            f"zero-shot prediction needs at least two labels to choose between (got {names}); "
            'e.g. --labels "no finding,pneumonia"'
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"labels must be distinct, repeated: {duplicates}")
    reserved = [n for n in names if n in RESERVED]
    if reserved:
        raise ConfigError(
            f"{reserved} are reserved column names of the prediction table; rename those labels"
        )
    return names


def label_prompts(labels: Sequence[str], templates: Templates = None) -> ClassPrompts:
    """The filled prompts of each label (softmax scoring over the labels)."""
    from medpeft.evaluation.prompts import build_prompts

    names = parse_labels(labels)
    chosen = resolve_templates(templates if templates is not None else DEFAULT_TEMPLATES)
    return ClassPrompts(names, build_prompts(names, chosen))


def predict(
    model: Any,
    images: Sequence[ImageInput] | ImageInput,
    labels: str | Sequence[str],
    *,
    templates: Templates = None,
    options: InferenceOptions | None = None,
    tokenizer: Any | None = None,
    preprocess: Callable | None = None,
    **option_overrides: Any,
) -> pd.DataFrame:
    """Probabilities of ``labels`` for each image (paths to PNG/JPEG/DICOM, PIL images or preprocessed
    [3, H, W] tensors): a DataFrame with ``image``, ``predicted`` and one probability column per label,
    rows in input order. Unreadable images raise ``DataError`` naming them or, with
    ``on_bad_image="skip"``, are left out and listed in ``frame.attrs["skipped"]`` as ``{image, reason}``.
    ``templates``: a template-set name, a file, a list of "{}" templates or ``{label: [prompts]}``
    (default: BiomedCLIP's "this is a photo of {}"). ``options`` (``InferenceOptions``; batch 32 by
    default here) says how it runs; keyword overrides such as ``device="cuda"`` apply on top.
    """
    options = InferenceOptions.make(options or InferenceOptions(batch_size=32), **option_overrides)
    items = as_items(images)
    if not items:
        raise ConfigError("no images to predict")
    prompts = label_prompts(labels, templates)
    head, scores = classify_images(
        model,
        prompts,
        items,
        tokenizer=tokenizer,
        preprocess=preprocess,
        options=options,
        desc="predict",
    )
    frame = pd.DataFrame({"image": [describe(items[i], i) for i in scores.kept]})
    frame["predicted"] = [head.names[j] for j in scores.probs.argmax(axis=1)] if scores.kept else []
    for j, name in enumerate(head.names):
        frame[name] = scores.probs[:, j]
    frame.attrs["skipped"] = [{"image": describe(items[i], i), "reason": msg} for i, msg in scores.skipped]
    frame.attrs["prompts"] = head.prompts
    frame.attrs["kept"] = list(scores.kept)
    return frame


def write_predictions(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """``.csv`` (one row per image) or ``.json`` (a list of records) written atomically."""
    from pathlib import Path

    from medpeft.io import atomic_path, write_json

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        write_json(path, frame.to_dict(orient="records"))
    elif suffix == ".csv":
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)  # full precision: the CSV reproduces metrics.json exactly
    else:
        raise ConfigError(f"--out must end in .csv or .json, got {path.name!r}")
