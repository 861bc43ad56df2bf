"""What every A³Tune (VQA/report) reader shares: items, split leakage, the image cache and lesion masks.

A conversation reader turns its raw layout into :class:`Item` s (a sample plus where its image is) and
hands them to :func:`finish`, which (1) removes image leakage across splits, (2) verifies/caches each
image once, however many questions it carries, (3) attaches ``lesion_mask`` where the raw folder is
a ``medpeft synth`` output whose ``synthetic_truth.json`` records the true lesion of the image, and
(4) returns a :class:`PreparedConversations` that ``prepare`` writes as the conversation manifest.

Leakage: VQA sets ask many questions about one image; an image in two splits lets a model see test images
in training. ``overlap="drop"`` (default) keeps such an image only in the evaluation-most split (test, then
validate) and drops (and counts) its samples elsewhere; ``overlap="keep"`` keeps the published split as is
(the authors' behaviour) and records the count in the summary.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medpeft.data.conversations import SPLITS, ConversationSample
from medpeft.data.prepare.cache import ImageJob
from medpeft.data.prepare.context import PrepareContext
from medpeft.errors import ConfigError, DataError

OVERLAP = ("drop", "keep")
#: Where an image in several splits stays under ``overlap="drop"`` (evaluation splits win).
PRIORITY = ("test", "validate", "train")
LESION_DIR = "lesion_masks"
TRUTH_FILE = "synthetic_truth.json"  # written by medpeft.data.synthetic.output (not imported: floors)


@dataclass
class Item:
    """One sample before its image is cached: ``key`` identifies the image (same image, same key).

    ``src`` is the raw image file, or None when the reader already wrote the image (``rel``, relative
    to the output folder, e.g. PathVQA's decoded parquet bytes). ``truth_key`` is the image's path
    relative to the raw root, looked up in a synthetic truth sidecar.
    """

    sample: ConversationSample
    key: str
    src: Path | None = None
    rel: str | None = None
    truth_key: str | None = None


@dataclass
class PreparedConversations:
    """A conversation reader's result: samples by split, and what ``dataset.json`` says about them."""

    splits: dict[str, list[ConversationSample]]
    name: str
    kind: str  # "vqa" | "report"
    source: str
    has_lesion_mask: bool = False


def check_overlap_policy(overlap: str) -> str:
    if overlap not in OVERLAP:
        raise ConfigError(f"image_overlap must be one of {OVERLAP}, got {overlap!r}")
    return overlap


def map_answer_type(value: Any, where: str) -> str:
    """The raw ``answer_type`` (``CLOSED``/``OPEN``, any case) as the manifest's ``closed``/``open``."""
    text = str(value).strip().lower() if value is not None else ""
    if text not in ("closed", "open"):
        raise DataError(f"{where}: field 'answer_type' is {value!r}, expected 'CLOSED' or 'OPEN'")
    return text


def text_field(obj: dict[str, Any], name: str) -> str | None:
    """A stripped text field (numbers, e.g. VQA-RAD's count answers, become text); None when empty."""
    value = obj.get(name)
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def read_json_list(path: Path, what: str) -> list[Any]:
    """A JSON file that must hold a list (SLAKE and VQA-RAD ship their questions this way)."""
    if not path.is_file():
        raise DataError(f"{what} not found: expected {path}")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid UTF-8 JSON ({err})") from err
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a JSON list of question objects, got {type(items).__name__}")
    return items


def resolve_overlap(items: list[Item], ctx: PrepareContext, overlap: str) -> list[Item]:
    """Keep each image in one split (``drop``) or keep the published split and count the overlap (``keep``)."""
    splits_of: dict[str, set[str]] = {}
    for item in items:
        splits_of.setdefault(item.key, set()).add(item.sample.split)
    shared = {k: s for k, s in splits_of.items() if len(s) > 1}
    if not shared:
        return items
    if overlap == "keep":
        ctx.report.note(
            f"{len(shared)} image(s) appear in more than one split (kept as published: image_overlap='keep')"
        )
        return items
    home = {k: next(p for p in PRIORITY if p in s) for k, s in shared.items()}
    kept = []
    for item in items:
        target = home.get(item.key)
        if target is not None and item.sample.split != target:
            ctx.report.drop(
                f"samples: image also in the {target} split (dropped from {item.sample.split} to avoid leakage)",
                f"{item.sample.id} ({item.key})",
            )
            continue
        kept.append(item)
    ctx.report.note(f"{len(shared)} image(s) were in several splits; each kept only in its evaluation split")
    return kept


def _truth_masks(ctx: PrepareContext) -> dict[str, str]:
    """Raw image path -> lesion mask path (both relative to the raw root), from a synthetic sidecar."""
    path = ctx.raw / TRUTH_FILE
    if not path.is_file():
        return {}
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON ({err})") from err
    if truth.get("dataset") != ctx.dataset:
        ctx.report.note(f"{TRUTH_FILE} is for {truth.get('dataset')!r}, not {ctx.dataset}: no lesion masks")
        return {}
    return {k: v["lesion_mask"] for k, v in truth.get("images", {}).items() if v.get("lesion_mask")}


def _write_lesion_mask(ctx: PrepareContext, mask_src: Path, image_path: Path, key: str) -> str:
    """Copy a truth mask into ``lesion_masks/`` at the size of the manifest's image (nearest: stays 0/255)."""
    from PIL import Image

    from medpeft.data.images import image_size

    width, height = image_size(image_path)
    with Image.open(mask_src) as img:
        mask = img.convert("L")
        if mask.size != (width, height):
            mask = mask.resize((width, height), Image.Resampling.NEAREST)
        rel = f"{LESION_DIR}/{key}.png"
        dest = ctx.stage_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        mask.save(dest)
    return rel


def finish(
    ctx: PrepareContext,
    items: list[Item],
    *,
    name: str,
    kind: str,
    source: str,
    overlap: str = "drop",
    splits: Sequence[str] = SPLITS,
) -> PreparedConversations:
    """Leakage, images, lesion masks; the samples by split in reading order (see the module docstring)."""
    items = resolve_overlap(items, ctx, check_overlap_policy(overlap))
    jobs: dict[str, ImageJob] = {}
    for item in items:
        parts = Path(item.key).parts
        if not parts or Path(item.key).is_absolute() or ".." in parts:
            raise DataError(
                f"sample {item.sample.id}: image name {item.key!r} must be a relative path inside the dataset"
            )
        if item.src is not None and item.key not in jobs:
            jobs[item.key] = ImageJob(item.key, item.src, item.key)
    results = ctx.images(list(jobs.values()))
    masks = _truth_masks(ctx)
    written: dict[str, str | None] = {}
    by_split: dict[str, list[ConversationSample]] = {s: [] for s in splits}
    lost = Counter()
    for item in items:
        if item.src is not None:
            if item.key not in results:
                lost[item.sample.split] += 1
                ctx.report.drop("samples: image unreadable", item.sample.id)
                continue
            rel = ctx.rel(results[item.key].path)
        else:
            rel = item.rel
        item.sample.image = rel
        if item.truth_key in masks:
            if item.key not in written:
                image_path = ctx.stage_dir / rel if (ctx.stage_dir / rel).is_file() else ctx.out_dir / rel
                written[item.key] = _write_lesion_mask(
                    ctx, ctx.raw / masks[item.truth_key], image_path, item.key
                )
            item.sample.lesion_mask = written[item.key]
        if item.sample.split not in by_split:
            raise DataError(
                f"sample {item.sample.id}: split {item.sample.split!r} is not one of {tuple(splits)}"
            )
        by_split[item.sample.split].append(item.sample)
    ctx.report.read["images"] = len({i.key for i in items})
    if written:
        ctx.report.note(f"lesion_mask attached from {TRUTH_FILE} for {len(written)} synthetic image(s)")
    return PreparedConversations(
        splits=by_split,
        name=name,
        kind=kind,
        source=source,
        has_lesion_mask=bool(written),
    )
