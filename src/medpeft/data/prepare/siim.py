"""SIIM-ACR Pneumothorax -> manifests with image-level labels and PNG masks (classification, segmentation).

``train-rle.csv`` (header ``ImageId, EncodedPixels`` with a space) has one row per pneumothorax
component, " -1" for none; rows of one image are merged. DICOMs live somewhere under
``dicom-images-train/<study>/<series>/<ImageId>.dcm`` and are found by one walk. Masks are decoded
at the DICOM's size from the column-major relative RLE and resized (nearest neighbour) to the
cached image. The split is seeded, by ImageId (never by row), with both classes in every split.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from medpeft.data.manifest import DatasetInfo
from medpeft.data.prepare.cache import ImageJob
from medpeft.data.prepare.context import PrepareContext, Prepared
from medpeft.data.prepare.splits import DEFAULT_FRACTIONS, stratified_group_split
from medpeft.data.prepare.tables import LINE, read_table, require_file
from medpeft.data.rle import is_empty_rle, rle_decode
from medpeft.errors import DataError

RLE_CSV = "train-rle.csv"
IMAGES_DIR = "dicom-images-train"
MASKS_DIR = "masks"
CLASSES = ["No Finding", "Pneumothorax"]


def find_dicoms(root: Path) -> dict[str, Path]:
    """ImageId (file stem) -> path for every ``.dcm`` under ``root``, walking the tree once."""
    if not root.is_dir():
        raise DataError(f"SIIM image folder not found: expected {root}")
    found: dict[str, Path] = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if name.lower().endswith(".dcm"):
                stem = name[:-4]
                path = Path(folder) / name
                if stem in found:
                    raise DataError(f"two DICOMs for ImageId {stem}: {found[stem]} and {path}")
                found[stem] = path
    return found


def read_rles(table: pd.DataFrame) -> dict[str, list[tuple[str, int]]]:
    """ImageId -> [(rle, file line)] in file order (several rows per image are merged later)."""
    rles: dict[str, list[tuple[str, int]]] = {}
    for image_id, rle, line in zip(table["ImageId"], table["EncodedPixels"], table[LINE], strict=True):
        rles.setdefault(image_id.strip(), []).append((rle, int(line)))
    return rles


def decode_mask(image_id: str, rows: list[tuple[str, int]], height: int, width: int) -> np.ndarray:
    """Union of an image's RLE rows at ``height`` x ``width``; errors name the ImageId and line."""
    mask = np.zeros((height, width), dtype=bool)
    for rle, line in rows:
        if is_empty_rle(rle):
            continue
        try:
            mask |= rle_decode(rle.strip(), height, width)
        except DataError as err:
            raise DataError(f"{RLE_CSV} line {line} (ImageId {image_id}): {err}") from None
    return mask


def build(
    ctx: PrepareContext,
    *,
    images_dir: str = IMAGES_DIR,
    mask_size: int | None = None,
) -> Prepared:
    """Read the SIIM layout under ``ctx.raw``; masks under ``out/masks``.

    ``mask_size`` is the square grid the RLE was encoded on (the competition's is 1024); when given,
    an image of another size is a mask/image size mismatch error. By default the RLE is decoded at
    each DICOM's own size.
    """
    path = require_file(ctx.raw / RLE_CSV, "SIIM RLE file")
    table = read_table(path, ["ImageId", "EncodedPixels"], non_empty=["ImageId"], strip_names=True)
    rles = read_rles(table)
    dicoms = find_dicoms(ctx.raw / images_dir)
    ctx.report.read.update(
        {"rle rows": len(table), "images in rle file": len(rles), "dicoms found": len(dicoms)}
    )
    unlabelled = sorted(set(dicoms) - set(rles))
    ctx.report.drop(
        "images: DICOM without a row in train-rle.csv", unlabelled[0] if unlabelled else None, len(unlabelled)
    )
    labels: dict[str, int] = {}
    jobs = []
    for image_id, rows in rles.items():
        if image_id not in dicoms:
            ctx.missing(
                "images: DICOM missing",
                image_id,
                f"{RLE_CSV} line {rows[0][1]}: no DICOM for ImageId {image_id} under {ctx.raw / images_dir}",
            )
            continue
        labels[image_id] = int(any(not is_empty_rle(r) for r, _ in rows))
        rel = dicoms[image_id].relative_to(ctx.raw).with_suffix("").as_posix()
        jobs.append(ImageJob(image_id, dicoms[image_id], rel))
    results = ctx.images(jobs, need_size=True)
    labels = {k: v for k, v in labels.items() if k in results}
    split_of = stratified_group_split(labels, seed=ctx.seed, fractions=DEFAULT_FRACTIONS, what="image")
    (ctx.stage_dir / MASKS_DIR).mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict]] = {name: [] for name in DEFAULT_FRACTIONS}
    for image_id, label in labels.items():
        res = results[image_id]
        grid = (mask_size, mask_size) if mask_size else (res.raw_height, res.raw_width)
        if grid != (res.raw_height, res.raw_width):
            raise DataError(
                f"ImageId {image_id}: mask/image size mismatch: the RLE grid is {grid[1]}x{grid[0]} "
                f"but the DICOM {dicoms[image_id]} is {res.raw_width}x{res.raw_height}"
            )
        mask = Image.fromarray(
            (decode_mask(image_id, rles[image_id], *grid) * 255).astype(np.uint8), mode="L"
        )
        if mask.size != (res.width, res.height):
            mask = mask.resize((res.width, res.height), resample=Image.Resampling.NEAREST)
        rel_mask = Path(MASKS_DIR) / f"{image_id}.png"
        mask.save(ctx.stage_dir / rel_mask, format="PNG")
        records[split_of[image_id]].append(
            {
                "image": ctx.rel(res.path),
                "mask": rel_mask.as_posix(),
                "No Finding": 1 - label,
                "Pneumothorax": label,
                "width": res.width,
                "height": res.height,
                "image_id": image_id,
            }
        )
    columns = ["image", "mask", *CLASSES, "width", "height", "image_id"]
    splits = {name: pd.DataFrame(rows, columns=columns) for name, rows in records.items()}
    ctx.report.note("masks are PNGs of the same size as each row's image: 0 background, 255 pneumothorax")
    info = DatasetInfo(
        name="siim",
        task="binary",
        classes=list(CLASSES),
        class_names=list(CLASSES),
        positive_class="Pneumothorax",
        has_mask=True,
    )
    return Prepared(splits=splits, info=info, group_column="image_id")
