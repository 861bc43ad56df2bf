"""NIH ChestX-ray14 -> manifests with the 14 NIH findings (multilabel).

Test split = the official ``test_list.txt``; from ``train_val_list.txt`` a seeded, patient-level
validation subset (``val_size``) is held out, which the paper uses for model selection. PNGs are
looked up under ``images/`` and ``images_*/images/`` (the official archive's layout).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medpeft.data.labels import NIH_LABELS, NIH_NO_FINDING
from medpeft.data.manifest import DatasetInfo
from medpeft.data.prepare.cache import ImageJob
from medpeft.data.prepare.context import PrepareContext, Prepared
from medpeft.data.prepare.tables import LINE, read_table, require_file
from medpeft.errors import ConfigError, DataError

ENTRY_CSV = "Data_Entry_2017.csv"
TRAIN_VAL_LIST = "train_val_list.txt"
TEST_LIST = "test_list.txt"


def read_list(path: Path) -> list[str]:
    """Image names, one per line (blank lines ignored)."""
    require_file(path, "NIH split list")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def find_pngs(raw: Path) -> dict[str, Path]:
    """Image name -> path under ``images/`` or ``images_*/images/`` (and ``images_*/``)."""
    found: dict[str, Path] = {}
    folders = [raw / "images", *sorted(raw.glob("images_*/images")), *sorted(raw.glob("images_*"))]
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.suffix.lower() == ".png" and path.name not in found:
                found[path.name] = path
    return found


def parse_findings(text: str, where: str) -> list[int]:
    """'A|B' -> 14 zeros/ones in ``NIH_LABELS`` order; 'No Finding' -> all zeros."""
    names = [t.strip() for t in text.split("|") if t.strip()]
    if names == [NIH_NO_FINDING]:
        return [0] * len(NIH_LABELS)
    unknown = [n for n in names if n not in NIH_LABELS]
    if unknown or not names:
        raise DataError(
            f"{where}: Finding Labels {text!r} holds {', '.join(repr(u) for u in unknown) or 'nothing'}; "
            f"expected '{NIH_NO_FINDING}' or '|'-joined names from {', '.join(NIH_LABELS)}"
        )
    return [int(label in names) for label in NIH_LABELS]


def validation_patients(patient_images: dict[str, int], val_size: float, seed: int) -> set[str]:
    """Seeded whole patients until the validation set has ``val_size`` images (a fraction if < 1)."""
    total = sum(patient_images.values())
    target = val_size * total if val_size < 1 else val_size
    patients = sorted(patient_images)
    chosen: set[str] = set()
    count = 0
    for j in np.random.default_rng(seed).permutation(len(patients)):
        if count >= target:
            break
        chosen.add(patients[j])
        count += patient_images[patients[j]]
    return chosen


def build(ctx: PrepareContext, *, val_size: float = 0.1) -> Prepared:
    """Read the NIH layout under ``ctx.raw``. ``val_size``: fraction (< 1) or number of train_val images."""
    if val_size <= 0:
        raise ConfigError(f"val_size must be positive (a fraction < 1 or a number of images), got {val_size}")
    entries = read_table(
        require_file(ctx.raw / ENTRY_CSV, "NIH Data_Entry_2017.csv"),
        ["Image Index", "Finding Labels", "Patient ID"],
        non_empty=["Image Index", "Finding Labels", "Patient ID"],
        strip_values=True,
    )
    train_val, test = read_list(ctx.raw / TRAIN_VAL_LIST), read_list(ctx.raw / TEST_LIST)
    both = set(train_val) & set(test)
    if both:
        raise DataError(
            f"{len(both)} image(s) are in both {TRAIN_VAL_LIST} and {TEST_LIST}, e.g. {sorted(both)[0]}"
        )
    split_of = {**{n: "train_val" for n in train_val}, **{n: "test" for n in test}}
    pngs = find_pngs(ctx.raw)
    if not pngs:
        raise DataError(f"no PNG images under {ctx.raw / 'images'} or {ctx.raw / 'images_*/images'}")
    ctx.report.read.update(
        {
            "entries": len(entries),
            "train_val list": len(train_val),
            "test list": len(test),
            "pngs found": len(pngs),
        }
    )

    rows = []
    seen = set()
    for i in range(len(entries)):
        name, patient = entries["Image Index"].iat[i], entries["Patient ID"].iat[i]
        where = f"{ENTRY_CSV} line {entries[LINE].iat[i]}"
        if name in seen:
            raise DataError(f"{where}: image {name} listed twice")
        seen.add(name)
        labels = parse_findings(entries["Finding Labels"].iat[i], where)
        if name not in split_of:
            ctx.report.drop("images: in neither train_val_list.txt nor test_list.txt", name)
            continue
        if name not in pngs:
            ctx.missing("images: file missing", name, f"{where}: image {name} not found under {ctx.raw}")
            continue
        view = entries["View Position"].iat[i] if "View Position" in entries.columns else ""
        rows.append(
            {"name": name, "patient": patient, "labels": labels, "split": split_of[name], "view": view}
        )
    for name in split_of:
        if name not in seen:
            ctx.missing(
                "images: listed but not in Data_Entry_2017.csv",
                name,
                f"{name} is in a split list but not in {ENTRY_CSV}",
            )

    test_patients = {r["patient"] for r in rows if r["split"] == "test"}
    overlap = {r["patient"] for r in rows if r["split"] == "train_val"} & test_patients
    if overlap:
        raise DataError(
            f"patient {sorted(overlap)[0]} has images in both {TRAIN_VAL_LIST} and {TEST_LIST} ({len(overlap)} such patients)"
        )
    per_patient: dict[str, int] = {}
    for r in rows:
        if r["split"] == "train_val":
            per_patient[r["patient"]] = per_patient.get(r["patient"], 0) + 1
    val_patients = validation_patients(per_patient, val_size, ctx.seed)
    for r in rows:
        if r["split"] == "train_val":
            r["split"] = "validate" if r["patient"] in val_patients else "train"

    results = ctx.images(
        [ImageJob(r["name"], pngs[r["name"]], f"images/{Path(r['name']).stem}") for r in rows]
    )
    columns = ["image", *NIH_LABELS, "subject_id", "image_id", "view"]
    splits = {}
    for split in ("train", "validate", "test"):
        records = []
        for r in rows:
            if r["split"] != split or r["name"] not in results:
                continue
            rec = {"image": ctx.rel(results[r["name"]].path)}
            rec.update(dict(zip(NIH_LABELS, r["labels"], strict=True)))
            rec.update({"subject_id": r["patient"], "image_id": r["name"], "view": r["view"]})
            records.append(rec)
        splits[split] = pd.DataFrame(records, columns=columns)
    info = DatasetInfo(
        name="nih-cxr14",
        task="multilabel",
        classes=list(NIH_LABELS),
        class_names=[c.replace("_", " ") for c in NIH_LABELS],
    )
    return Prepared(splits=splits, info=info, group_column="subject_id")
