"""RSNA Pneumonia -> manifests with image-level labels and per-image boxes (classification, detection).

``stage_2_train_labels.csv`` has one row per box (negative patients one row with empty box fields);
images are ``stage_2_train_images/{patientId}.dcm``. Boxes are collected per patient and rescaled to
the cached image. The split is seeded, patient-level and stratified so both classes are in every
split (the reference split script kept only positive patients).
"""

from __future__ import annotations

import math

import pandas as pd

from medpeft.data.manifest import DatasetInfo
from medpeft.data.prepare.cache import ImageJob
from medpeft.data.prepare.context import PrepareContext, Prepared
from medpeft.data.prepare.splits import DEFAULT_FRACTIONS, stratified_group_split
from medpeft.data.prepare.tables import LINE, read_table, require_file
from medpeft.errors import DataError

LABELS_CSV = "stage_2_train_labels.csv"
IMAGES_DIR = "stage_2_train_images"
CLASSES = ["No Finding", "Pneumonia"]
BOX_FIELDS = ("x", "y", "width", "height")


def _number(value: str, where: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"{where}: {name} {value!r} is not a number")
    return number


def read_boxes(table: pd.DataFrame) -> tuple[dict[str, int], dict[str, list[tuple[list[float], str]]]]:
    """patientId -> Target, and patientId -> [(box [x, y, w, h], 'file line N')], validating every row."""
    targets: dict[str, int] = {}
    boxes: dict[str, list[tuple[list[float], str]]] = {}
    for i in range(len(table)):
        pid = table["patientId"].iat[i]
        where = f"{LABELS_CSV} line {table[LINE].iat[i]} (patientId {pid})"
        target = table["Target"].iat[i]
        if target not in ("0", "1", "0.0", "1.0"):
            raise DataError(f"{where}: Target {target!r} is not 0 or 1")
        label = int(float(target))
        if targets.setdefault(pid, label) != label:
            raise DataError(
                f"{where}: Target {label} contradicts Target {targets[pid]} on an earlier row of this patient"
            )
        fields = [table[f].iat[i] for f in BOX_FIELDS]
        boxes.setdefault(pid, [])
        if label == 0:
            if any(fields):
                raise DataError(f"{where}: a negative row (Target 0) must have empty x, y, width, height")
            continue
        x, y, w, h = (_number(v, where, f) for v, f in zip(fields, BOX_FIELDS, strict=True))
        if w <= 0 or h <= 0:
            raise DataError(f"{where}: box has a negative or zero size (width {w:g}, height {h:g})")
        if x < 0 or y < 0:
            raise DataError(f"{where}: box lies outside the image (x {x:g}, y {y:g} is negative)")
        boxes[pid].append(([x, y, w, h], where))
    return targets, boxes


def scale_boxes(
    boxes: list[tuple[list[float], str]], raw_size: tuple[int, int], size: tuple[int, int]
) -> list[list[float]]:
    """Check boxes lie inside the raw ``(width, height)`` and rescale them to ``size`` (pixels)."""
    (rw, rh), (w, h) = raw_size, size
    sx, sy = w / rw, h / rh
    out = []
    for (x, y, bw, bh), where in boxes:
        if x + bw > rw or y + bh > rh:
            raise DataError(f"{where}: box [{x:g}, {y:g}, {bw:g}, {bh:g}] lies outside the {rw}x{rh} image")
        out.append([round(x * sx, 2), round(y * sy, 2), round(bw * sx, 2), round(bh * sy, 2)])
    return out


def build(ctx: PrepareContext, *, images_dir: str = IMAGES_DIR) -> Prepared:
    """Read the RSNA layout under ``ctx.raw``; 70/15/15 seeded patient-level split with both classes."""
    path = require_file(ctx.raw / LABELS_CSV, "RSNA label file")
    table = read_table(
        path, ["patientId", *BOX_FIELDS, "Target"], non_empty=["patientId", "Target"], strip_values=True
    )
    targets, boxes = read_boxes(table)
    ctx.report.read.update({"label rows": len(table), "patients": len(targets)})
    present: dict[str, int] = {}
    jobs = []
    for pid, label in targets.items():
        src = ctx.raw / images_dir / f"{pid}.dcm"
        if not src.is_file():
            ctx.missing(
                "images: DICOM missing", str(src), f"{LABELS_CSV}: image of patientId {pid} not found: {src}"
            )
            continue
        present[pid] = label
        jobs.append(ImageJob(pid, src, f"{images_dir}/{pid}"))
    results = ctx.images(jobs, need_size=True)
    present = {pid: label for pid, label in present.items() if pid in results}
    split_of = stratified_group_split(present, seed=ctx.seed, fractions=DEFAULT_FRACTIONS, what="patient")
    records: dict[str, list[dict]] = {name: [] for name in DEFAULT_FRACTIONS}
    for pid, label in present.items():
        res = results[pid]
        scaled = scale_boxes(boxes[pid], (res.raw_width, res.raw_height), (res.width, res.height))
        records[split_of[pid]].append(
            {
                "image": ctx.rel(res.path),
                "No Finding": 1 - label,
                "Pneumonia": label,
                "boxes": scaled,
                "width": res.width,
                "height": res.height,
                "subject_id": pid,
                "image_id": pid,
            }
        )
    columns = ["image", *CLASSES, "boxes", "width", "height", "subject_id", "image_id"]
    splits = {name: pd.DataFrame(rows, columns=columns) for name, rows in records.items()}
    ctx.report.note("boxes are [x, y, w, h] in pixels of the image each manifest row points at")
    info = DatasetInfo(
        name="rsna",
        task="binary",
        classes=list(CLASSES),
        class_names=list(CLASSES),
        positive_class="Pneumonia",
        has_boxes=True,
    )
    return Prepared(splits=splits, info=info, group_column="subject_id")
