"""A user's own image-text CSV -> manifests, for adapting to a new domain.

The CSV has an image column (paths relative to the CSV or absolute), a text column and optional
label columns (1, 0, -1 or blank, mapped with the same policy as MIMIC-CXR). A ``split`` column
(train/validate/test) is used when present; otherwise a seeded split by subject (or by image) is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from medpeft.data.manifest import ID_COLUMNS, DatasetInfo
from medpeft.data.prepare.cache import ImageJob
from medpeft.data.prepare.context import PrepareContext, Prepared
from medpeft.data.prepare.mimic_cxr import BLANK, UNCERTAIN, label_values, map_label, parse_label
from medpeft.data.prepare.splits import group_split
from medpeft.data.prepare.tables import LINE, read_table
from medpeft.errors import ConfigError, DataError

SPLIT_NAMES = {
    "train": "train",
    "validate": "validate",
    "val": "validate",
    "valid": "validate",
    "validation": "validate",
    "test": "test",
}


def build(
    ctx: PrepareContext,
    *,
    csv: Path | None = None,
    image_column: str = "image",
    text_column: str = "text",
    label_columns: Sequence[str] | None = None,
    split_column: str = "split",
    subject_column: str = "subject_id",
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    uncertain: str = "zero",
    blank: str = "zero",
) -> Prepared:
    """Read ``csv`` (default: ``--raw`` itself if it is a file, else ``raw/manifest.csv``)."""
    if uncertain not in UNCERTAIN or blank not in BLANK:
        raise ConfigError(f"uncertain must be one of {tuple(UNCERTAIN)} and blank one of {tuple(BLANK)}")
    path = Path(csv) if csv is not None else (ctx.raw if ctx.raw.is_file() else ctx.raw / "manifest.csv")
    if csv is not None and not path.is_absolute() and ctx.raw.is_dir():
        path = ctx.raw / path
    table = read_table(path, [image_column, text_column], non_empty=[image_column])
    reserved = {image_column, text_column, split_column, subject_column, LINE, *ID_COLUMNS}
    labels = (
        list(label_columns) if label_columns is not None else [c for c in table.columns if c not in reserved]
    )
    missing = [c for c in labels if c not in table.columns]
    if missing:
        raise DataError(f"{path} lacks label column(s) {', '.join(repr(c) for c in missing)}")
    ctx.report.read["rows"] = len(table)
    base = path.parent
    rows, jobs = [], []
    for i in range(len(table)):
        line = table[LINE].iat[i]
        where = f"{path.name} line {line}"
        text = " ".join(table[text_column].iat[i].split())
        values = [
            map_label(parse_label(table[c].iat[i], where, c), uncertain=uncertain, blank=blank)
            for c in labels
        ]
        if not text:
            ctx.report.drop("rows: empty text", where)
            continue
        split = ""
        if split_column in table.columns:
            raw_split = table[split_column].iat[i].strip().lower()
            if raw_split not in SPLIT_NAMES:
                raise DataError(f"{where}: {split_column} {raw_split!r} is not one of train, validate, test")
            split = SPLIT_NAMES[raw_split]
        src = Path(table[image_column].iat[i])
        src = src if src.is_absolute() else base / src
        if not src.is_file():
            ctx.missing("images: file missing", str(src), f"{where}: image file not found: {src}")
            continue
        key = f"row{i:07d}"
        subject = table[subject_column].iat[i] if subject_column in table.columns else ""
        rows.append({"key": key, "split": split, "text": text, "labels": values, "subject": subject or key})
        rel = Path(table[image_column].iat[i])
        inside = not rel.is_absolute() and ".." not in rel.parts
        jobs.append(ImageJob(key, src, rel.with_suffix("").as_posix() if inside else f"other/{key}"))
    if rows and not rows[0]["split"]:
        fractions = {
            "train": 1 - val_fraction - test_fraction,
            "validate": val_fraction,
            "test": test_fraction,
        }
        fractions = {k: v for k, v in fractions.items() if v > 0}
        split_of = group_split([r["subject"] for r in rows], seed=ctx.seed, fractions=fractions)
        for r in rows:
            r["split"] = split_of[r["subject"]]
    results = ctx.images(jobs)
    id_cols = [c for c in ID_COLUMNS if c in table.columns]
    columns = [
        "image",
        "text",
        *labels,
        *(["subject_id"] if subject_column in table.columns else []),
        *id_cols,
    ]
    columns = list(dict.fromkeys(columns))
    by_key = {f"row{i:07d}": i for i in range(len(table))}
    splits: dict[str, list[dict]] = {"train": [], "validate": [], "test": []}
    for r in rows:
        if r["key"] not in results:
            continue
        i = by_key[r["key"]]
        rec = {"image": ctx.rel(results[r["key"]].path), "text": r["text"]}
        rec.update(dict(zip(labels, r["labels"], strict=True)))
        if subject_column in table.columns:
            rec["subject_id"] = table[subject_column].iat[i]
        rec.update({c: table[c].iat[i] for c in id_cols})
        splits[r["split"]].append(rec)
    info = DatasetInfo(
        name="generic",
        task="multilabel",
        classes=labels,
        class_names=labels,
        label_values=label_values(uncertain, blank),
        has_text=True,
    )
    return Prepared(
        splits={k: pd.DataFrame(v, columns=columns) for k, v in splits.items()},
        info=info,
        group_column="subject_id" if subject_column in table.columns else None,
    )
