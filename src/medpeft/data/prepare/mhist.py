"""MHIST colorectal polyps -> binary HP/SSA manifests using MHIST's own train/test partition.

``annotations.csv`` (Image Name, Majority Vote Label HP/SSA, Partition train/test) and ``images/``.
"""

from __future__ import annotations

import pandas as pd

from medpeft.data.labels import MHIST_CLASSES
from medpeft.data.manifest import DatasetInfo
from medpeft.data.prepare.cache import ImageJob
from medpeft.data.prepare.context import PrepareContext, Prepared
from medpeft.data.prepare.tables import LINE, read_table, require_file
from medpeft.errors import DataError

ANNOTATIONS = "annotations.csv"
PARTITIONS = ("train", "test")
CLASS_NAMES = {"HP": "hyperplastic polyp", "SSA": "sessile serrated adenoma"}


def build(ctx: PrepareContext, *, images_dir: str = "images") -> Prepared:
    """Read ``annotations.csv`` and ``images/`` under ``ctx.raw``."""
    table = read_table(
        require_file(ctx.raw / ANNOTATIONS, "MHIST annotations.csv"),
        ["Image Name", "Majority Vote Label", "Partition"],
        non_empty=["Image Name", "Majority Vote Label", "Partition"],
        strip_values=True,
    )
    ctx.report.read["annotations"] = len(table)
    jobs, meta = [], {}
    for name, label, part, line in zip(
        table["Image Name"], table["Majority Vote Label"], table["Partition"], table[LINE], strict=True
    ):
        where = f"{ANNOTATIONS} line {line}"
        if label not in MHIST_CLASSES:
            raise DataError(
                f"{where}: Majority Vote Label {label!r} is not one of {', '.join(MHIST_CLASSES)}"
            )
        if part.lower() not in PARTITIONS:
            raise DataError(f"{where}: Partition {part!r} is not one of {', '.join(PARTITIONS)}")
        if name in meta:
            raise DataError(f"{where}: image {name} listed twice")
        src = ctx.raw / images_dir / name
        if not src.is_file():
            ctx.missing("images: file missing", str(src), f"{where}: image file not found: {src}")
            continue
        meta[name] = (label, part.lower())
        jobs.append(ImageJob(name, src, f"{images_dir}/{src.stem}"))
    results = ctx.images(jobs)
    splits = {}
    for part in PARTITIONS:
        records = []
        for job in jobs:
            label, p = meta[job.id]
            if p == part and job.id in results:
                rec = {"image": ctx.rel(results[job.id].path)}
                rec.update({c: int(label == c) for c in MHIST_CLASSES})
                rec["image_id"] = job.id
                records.append(rec)
        splits[part] = pd.DataFrame(records, columns=["image", *MHIST_CLASSES, "image_id"])
    info = DatasetInfo(
        name="mhist",
        task="binary",
        classes=list(MHIST_CLASSES),
        class_names=[CLASS_NAMES[c] for c in MHIST_CLASSES],
        positive_class="SSA",
    )
    return Prepared(splits=splits, info=info, group_column="image_id")
