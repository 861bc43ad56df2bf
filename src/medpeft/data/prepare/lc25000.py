"""LC25000 lung and colon histopathology -> a 5-class test manifest (classes by folder).

``lung_colon_image_set/lung_image_sets/{lung_aca,lung_n,lung_scc}/*.jpeg`` and
``lung_colon_image_set/colon_image_sets/{colon_aca,colon_n}/*.jpeg``. The paper evaluates zero-shot
on all of it, so only ``test.csv`` is written.
"""

from __future__ import annotations

import pandas as pd

from medpeft.data.labels import LC25000_CLASSES, LC25000_GROUPS
from medpeft.data.manifest import DatasetInfo
from medpeft.data.prepare.cache import ImageJob
from medpeft.data.prepare.context import PrepareContext, Prepared
from medpeft.errors import DataError

ROOT = "lung_colon_image_set"
SUFFIXES = {".jpeg", ".jpg", ".png"}
CLASS_NAMES = {
    "lung_aca": "lung adenocarcinoma",
    "lung_n": "benign lung tissue",
    "lung_scc": "lung squamous cell carcinoma",
    "colon_aca": "colon adenocarcinoma",
    "colon_n": "benign colonic tissue",
}


def build(ctx: PrepareContext) -> Prepared:
    """Read the LC25000 folders under ``ctx.raw`` (or ``ctx.raw`` itself being ``lung_colon_image_set``)."""
    root = ctx.raw / ROOT if (ctx.raw / ROOT).is_dir() else ctx.raw
    jobs, class_of = [], {}
    for cls in LC25000_CLASSES:
        folder = root / LC25000_GROUPS[cls] / cls
        if not folder.is_dir():
            raise DataError(f"LC25000 class folder not found: expected {folder}")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
        if not files:
            raise DataError(f"LC25000 class folder {folder} holds no .jpeg/.jpg/.png images")
        ctx.report.read[cls] = len(files)
        for path in files:
            key = path.relative_to(root).with_suffix("").as_posix()
            jobs.append(ImageJob(key, path, key))
            class_of[key] = cls
    results = ctx.images(jobs)
    records = []
    for job in jobs:
        if job.id in results:
            rec = {"image": ctx.rel(results[job.id].path)}
            rec.update({c: int(class_of[job.id] == c) for c in LC25000_CLASSES})
            rec["image_id"] = job.id
            records.append(rec)
    df = pd.DataFrame(records, columns=["image", *LC25000_CLASSES, "image_id"])
    info = DatasetInfo(
        name="lc25000",
        task="multiclass",
        classes=list(LC25000_CLASSES),
        class_names=[CLASS_NAMES[c] for c in LC25000_CLASSES],
    )
    return Prepared(splits={"test": df}, info=info, group_column="image_id")
