"""CheXpert 5x200: the zero-shot test set of GLoRIA/MedCLIP built from CheXpert's ``train.csv``.

Frontal images; for each of the five classes, rows where that class is 1 and the other four and the
eight other findings (``CHEXPERT_5X200_EXCLUDED``) are 0 or blank (blank = not mentioned; any -1
excludes the row); ``n_per_class`` rows per class drawn with the seed. An existing 5x200 CSV (Path +
the five one-hot columns) can be given instead with ``from_csv``. Writes ``test.csv`` only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medpeft.data.labels import CHEXPERT_5X200_CLASSES, CHEXPERT_5X200_EXCLUDED, CHEXPERT_LABELS
from medpeft.data.manifest import DatasetInfo
from medpeft.data.prepare.cache import ImageJob
from medpeft.data.prepare.context import PrepareContext, Prepared
from medpeft.data.prepare.mimic_cxr import parse_label
from medpeft.data.prepare.tables import LINE, read_table
from medpeft.errors import ConfigError, DataError

TRAIN_CSV = "train.csv"


def _image_base(raw: Path, paths: list[str]) -> Path | None:
    """CheXpert ``Path`` values start with the archive folder (``CheXpert-v1.0-small/train/...``);
    resolve them against the raw folder, its parent, or with the first component stripped."""
    for rel in paths[:20]:
        candidates = (
            [raw / rel, raw.parent / rel, raw / Path(*Path(rel).parts[1:])] if Path(rel).parts else []
        )
        for base, cand in zip((raw, raw.parent, None), candidates, strict=True):
            if cand.is_file():
                return base
    return None


def find_train_csv(raw: Path) -> Path:
    """``raw/train.csv``, or ``raw/CheXpert-v1.0*/train.csv`` when ``raw`` is the folder above the archive."""
    if (raw / TRAIN_CSV).is_file():
        return raw / TRAIN_CSV
    found = sorted(raw.glob(f"CheXpert-v1.0*/{TRAIN_CSV}"))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise DataError(
            f"several CheXpert train.csv files under {raw}: {', '.join(map(str, found))}; pass the one folder"
        )
    raise DataError(
        f"CheXpert train.csv not found: expected {raw / TRAIN_CSV} or {raw}/CheXpert-v1.0-small/{TRAIN_CSV}"
    )


def _resolve(raw: Path, base: Path | None, rel: str) -> Path:
    if base is None:
        return raw / Path(*Path(rel).parts[1:])
    return base / rel


def _ids(rel: str) -> tuple[str, str]:
    """(patient, patient/study) from ``.../train/patient00001/study1/view1_frontal.jpg``."""
    parts = Path(rel).parts
    patient = next((p for p in parts if p.startswith("patient")), "")
    study = next((p for p in parts if p.startswith("study")), "")
    return patient, f"{patient}/{study}" if patient and study else ""


def _select(ctx: PrepareContext, table: pd.DataFrame, n_per_class: int, allow_fewer: bool) -> pd.DataFrame:
    """The 5x200 rule on CheXpert's train.csv, sampled with the seed."""
    frontal = table["Frontal/Lateral"].str.strip().str.lower() == "frontal"
    ctx.report.drop("images: lateral view", None, int((~frontal).sum()))
    table = table[frontal].reset_index(drop=True)
    constrained = [*CHEXPERT_5X200_CLASSES, *CHEXPERT_5X200_EXCLUDED]
    values = {
        c: np.array(
            [
                np.nan if (v := parse_label(x, f"{TRAIN_CSV} line {line}", c)) is None else v
                for x, line in zip(table[c], table[LINE], strict=True)
            ],
            dtype=float,
        )
        for c in constrained
    }
    rng = np.random.default_rng(ctx.seed)
    picked = []
    for cls in CHEXPERT_5X200_CLASSES:
        ok = values[cls] == 1
        for other in constrained:
            if other != cls:
                ok &= np.nan_to_num(values[other], nan=0.0) == 0
        idx = np.flatnonzero(ok)
        if len(idx) < n_per_class:
            if not allow_fewer:
                raise DataError(
                    f"only {len(idx)} frontal rows qualify for {cls!r} in {TRAIN_CSV} (need {n_per_class}); "
                    "lower --n-per-class or pass --allow-fewer"
                )
            ctx.report.note(f"{cls}: only {len(idx)} qualifying rows (asked for {n_per_class})")
        chosen = np.sort(rng.choice(idx, size=min(n_per_class, len(idx)), replace=False))
        rows = table.iloc[chosen].copy()
        rows["_class"] = cls
        picked.append(rows)
    result = pd.concat(picked, ignore_index=True)
    ctx.report.drop("images: not a single-class 5x200 row or not sampled", None, len(table) - len(result))
    return result


def _from_csv(path: Path) -> pd.DataFrame:
    """An existing 5x200 CSV: ``Path`` plus the five one-hot class columns."""
    table = read_table(path, ["Path", *CHEXPERT_5X200_CLASSES], non_empty=["Path"])
    classes = []
    for i in range(len(table)):
        hot = [c for c in CHEXPERT_5X200_CLASSES if table[c].iat[i].strip() not in ("", "0", "0.0")]
        bad = [c for c in hot if table[c].iat[i].strip() not in ("1", "1.0")]
        if bad or len(hot) != 1:
            raise DataError(
                f"{path.name} line {table[LINE].iat[i]}: a 5x200 row needs exactly one of "
                f"{', '.join(CHEXPERT_5X200_CLASSES)} equal to 1 (got {', '.join(hot) or 'none'})"
            )
        classes.append(hot[0])
    table["_class"] = classes
    return table


def build(
    ctx: PrepareContext,
    *,
    n_per_class: int = 200,
    from_csv: Path | None = None,
    allow_fewer: bool = False,
) -> Prepared:
    """Read CheXpert (``raw/train.csv`` and its images) and write the 5x200 test manifest."""
    if n_per_class < 1:
        raise ConfigError(f"n_per_class must be positive, got {n_per_class}")
    if from_csv is not None:
        source = Path(from_csv)
        rows = _from_csv(source)
        ctx.report.read["5x200 rows"] = len(rows)
    else:
        source = find_train_csv(ctx.raw)
        table = read_table(
            source, ["Path", "Frontal/Lateral", *CHEXPERT_LABELS], non_empty=["Path"], strip_values=True
        )
        ctx.report.read["train.csv rows"] = len(table)
        rows = _select(ctx, table, n_per_class, allow_fewer)
    root = source.parent if from_csv is None else ctx.raw
    base = _image_base(root, rows["Path"].tolist())
    jobs, meta = [], {}
    for path, cls, line in zip(rows["Path"], rows["_class"], rows[LINE], strict=True):
        src = _resolve(root, base, path)
        if not src.is_file():
            ctx.missing(
                "images: file missing", str(src), f"{source.name} line {line}: image file not found: {src}"
            )
            continue
        key = Path(path).with_suffix("").as_posix()
        jobs.append(ImageJob(key, src, key))
        meta[key] = cls
    results = ctx.images(jobs)
    records = []
    for job in jobs:
        if job.id not in results:
            continue
        patient, study = _ids(job.key)
        rec = {"image": ctx.rel(results[job.id].path)}
        rec.update({c: int(meta[job.id] == c) for c in CHEXPERT_5X200_CLASSES})
        rec.update({"subject_id": patient, "study_id": study, "image_id": job.key})
        records.append(rec)
    df = pd.DataFrame(
        records, columns=["image", *CHEXPERT_5X200_CLASSES, "subject_id", "study_id", "image_id"]
    )
    info = DatasetInfo(
        name="chexpert-5x200",
        task="multiclass",
        classes=list(CHEXPERT_5X200_CLASSES),
        class_names=list(CHEXPERT_5X200_CLASSES),
    )
    return Prepared(splits={"test": df}, info=info, group_column="subject_id")
