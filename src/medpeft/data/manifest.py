"""Manifests: the CSV contract between ``prepare`` and ``train``/``eval``/``finetune``.

``prepare`` writes, in its ``--out`` folder, one CSV per split (``train.csv``, ``validate.csv``,
``test.csv`` as the dataset has them, plus ``train_fraction_F.csv`` subsets), a ``dataset.json``
that says how to score the task, and a ``prepare_summary.json`` that says what was kept and dropped.

Manifest columns:

* ``image`` (required): path of the image, relative to the manifest's folder (absolute paths allowed).
* ``text``: the report text, where the dataset has one.
* one column per class/label (``DatasetInfo.classes``); values in ``DatasetInfo.label_values``
  (``0``/``1``; ``-1`` for kept uncertain labels; empty for kept blanks).
* ``subject_id``, ``study_id``, ``image_id`` where known (read as strings: leading zeros survive).
* ``mask`` (segmentation): path of a PNG mask of the same size as the image (0 background, 255 foreground).
* ``boxes`` (detection): a JSON list of ``[x, y, w, h]`` boxes in **pixel coordinates of the image the
  ``image`` column points at** (the resized cache when ``--image-size`` was given), ``[]`` for none.
* ``width``, ``height``: size of that image, so boxes can be checked without opening it.

A manifest is validated when read, so a broken file fails at load time with a message that names
the column, the row (file line number) or the missing files, not deep inside a DataLoader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medpeft.errors import DataError

DATASET_INFO = "dataset.json"
SUMMARY = "prepare_summary.json"
SPLITS = ("train", "validate", "test")
TASKS = ("multiclass", "binary", "multilabel")
ID_COLUMNS = ("subject_id", "study_id", "image_id")
_SHOW = 5  # how many example paths an error lists


@dataclass
class DatasetInfo:
    """What ``eval`` needs to score a prepared dataset (stored as ``dataset.json``).

    ``classes`` are the manifest's label columns; ``class_names`` their display names (what a prompt
    says). Multiclass and binary tasks store one-hot columns (exactly one 1 per row), multilabel any
    number of 1s. ``positive_class`` names the positive column of a binary task.
    """

    name: str
    task: str
    classes: list[str]
    class_names: list[str]
    label_values: list[float | None] = field(default_factory=lambda: [0, 1])
    splits: dict[str, str] = field(default_factory=dict)
    fractions: dict[str, str] = field(default_factory=dict)
    positive_class: str | None = None
    has_text: bool = False
    has_mask: bool = False
    has_boxes: bool = False
    image_size: int | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"dataset {self.name!r}: task must be one of {TASKS}, got {self.task!r}")
        if len(self.classes) != len(self.class_names):
            raise DataError(
                f"dataset {self.name!r}: {len(self.classes)} classes but {len(self.class_names)} names"
            )


def write_dataset_info(out_dir: Path, info: DatasetInfo) -> Path:
    """Write ``dataset.json`` into ``out_dir``."""
    path = Path(out_dir) / DATASET_INFO
    path.write_text(json.dumps(asdict(info), indent=2) + "\n")
    return path


def read_dataset_info(manifest_dir: Path) -> DatasetInfo:
    """Read ``dataset.json`` from a prepared folder."""
    path = Path(manifest_dir) / DATASET_INFO
    if not path.is_file():
        raise DataError(f"{path} not found: prepare the dataset with 'medpeft prepare' first")
    try:
        raw = json.loads(path.read_text())
        return DatasetInfo(**raw)
    except (json.JSONDecodeError, TypeError) as err:
        raise DataError(f"{path} is not a valid dataset description: {err}") from err


def write_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    """Write ``prepare_summary.json`` (kept/dropped counts and reasons) into ``out_dir``."""
    path = Path(out_dir) / SUMMARY
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return path


def write_manifest(df: pd.DataFrame, path: Path) -> Path:
    """Write one split's manifest CSV; boxes lists are stored as JSON text."""
    if "image" not in df.columns:
        raise DataError(f"manifest for {path} has no 'image' column")
    df = df.copy()
    if "boxes" in df.columns:
        df["boxes"] = [b if isinstance(b, str) else json.dumps(b) for b in df["boxes"]]
    df.to_csv(path, index=False)
    return Path(path)


def _fmt_value(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "blank"
    return str(int(v)) if float(v).is_integer() else str(v)


def _parse_label(raw: str) -> float | None:
    """'1', '1.0', '-1' -> float; '' -> None (blank); anything else raises ValueError."""
    text = raw.strip()
    if text == "":
        return None
    value = float(text)
    if math.isnan(value):
        return None
    return value


def parse_boxes(text: str, *, where: str = "") -> list[list[float]]:
    """Parse a ``boxes`` cell (JSON list of ``[x, y, w, h]``) and check each box has positive size."""
    try:
        boxes = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: 'boxes' is not valid JSON ({err}): {text[:80]!r}") from err
    if not isinstance(boxes, list):
        raise DataError(f"{where}: 'boxes' must be a JSON list of [x, y, w, h], got {text[:80]!r}")
    out = []
    for box in boxes:
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            raise DataError(f"{where}: each box must be [x, y, w, h] numbers, got {box!r}")
        x, y, w, h = (float(v) for v in box)
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise DataError(f"{where}: box {box!r} has a negative position or a non-positive size")
        out.append([x, y, w, h])
    return out


def _missing_files(df: pd.DataFrame, column: str, base: Path, path: Path) -> None:
    resolved = [_resolve(base, p) for p in df[column]]
    missing = [str(p) for p in resolved if not p.is_file()]
    if missing:
        shown = ", ".join(missing[:_SHOW]) + (", ..." if len(missing) > _SHOW else "")
        raise DataError(f"manifest {path}: {len(missing)} of {len(df)} '{column}' files are missing: {shown}")


def _resolve(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p


def read_manifest(
    path: str | Path,
    *,
    label_columns: Sequence[str] | None = None,
    label_values: Iterable[float | None] | None = None,
    required_columns: Sequence[str] = (),
    check_files: bool = True,
    check_mask_sizes: bool = False,
    resolve_paths: bool = True,
) -> pd.DataFrame:
    """Read and validate a manifest CSV.

    ``label_columns``/``label_values`` default to ``dataset.json`` beside the manifest (none when it
    is absent: then only ``image`` and ``required_columns`` are checked). Raises ``DataError`` for
    missing columns, missing image/mask files (count and first paths), label values outside the
    allowed set (line, column, value) and malformed boxes. Returned label columns are floats (NaN for
    kept blanks); ``boxes`` become lists; with ``resolve_paths`` the ``image``/``mask`` columns
    become absolute paths.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}")
    base = path.parent
    info = None
    if (base / DATASET_INFO).is_file():
        info = read_dataset_info(base)
    if label_columns is None:
        label_columns = list(info.classes) if info else []
    if label_values is None:
        label_values = info.label_values if info else [0, 1]
    allowed = {None if v is None else float(v) for v in label_values}

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as err:
        raise DataError(f"manifest {path} is empty") from err
    except pd.errors.ParserError as err:
        raise DataError(f"manifest {path} is not a readable CSV: {err}") from err
    needed = ["image", *required_columns, *label_columns]
    missing_cols = [c for c in dict.fromkeys(needed) if c not in df.columns]
    if missing_cols:
        raise DataError(
            f"manifest {path} lacks column(s) {', '.join(repr(c) for c in missing_cols)} "
            f"(it has: {', '.join(df.columns)})"
        )
    if len(df) == 0:
        raise DataError(f"manifest {path} has no rows")
    empty = df.index[df["image"].str.strip() == ""]
    if len(empty):
        raise DataError(f"manifest {path} line {empty[0] + 2}: empty 'image'")

    for col in label_columns:
        values = []
        for i, raw in enumerate(df[col]):
            try:
                v = _parse_label(raw)
            except ValueError:
                v = raw
            if v not in allowed:
                raise DataError(
                    f"manifest {path} line {i + 2}, column {col!r}: value {raw!r} is not one of "
                    f"{{{', '.join(_fmt_value(a) for a in sorted(allowed, key=lambda a: (a is None, a)))}}}"
                )
            values.append(math.nan if v is None else v)
        df[col] = pd.array(values, dtype="float64")

    if "boxes" in df.columns:
        parsed = []
        has_size = "width" in df.columns and "height" in df.columns
        for i, text in enumerate(df["boxes"]):
            where = f"manifest {path} line {i + 2}"
            boxes = parse_boxes(text, where=where)
            if has_size and boxes:
                w, h = float(df["width"].iat[i]), float(df["height"].iat[i])
                for x, y, bw, bh in boxes:
                    if x + bw > w + 1e-6 or y + bh > h + 1e-6:
                        raise DataError(f"{where}: box {[x, y, bw, bh]} lies outside the {w:g}x{h:g} image")
            parsed.append(boxes)
        df["boxes"] = parsed

    if check_files:
        _missing_files(df, "image", base, path)
        if "mask" in df.columns:
            _missing_files(df[df["mask"] != ""], "mask", base, path)
    if check_mask_sizes and "mask" in df.columns:
        from medpeft.data.images import image_size

        for i, (img, mask) in enumerate(zip(df["image"], df["mask"], strict=True)):
            if not mask:
                continue
            isz, msz = image_size(_resolve(base, img)), image_size(_resolve(base, mask))
            if isz != msz:
                raise DataError(
                    f"manifest {path} line {i + 2}: mask {mask} is {msz[0]}x{msz[1]} "
                    f"but image {img} is {isz[0]}x{isz[1]}"
                )
    if resolve_paths:
        df["image"] = [str(_resolve(base, p)) for p in df["image"]]
        if "mask" in df.columns:
            df["mask"] = [str(_resolve(base, p)) if p else "" for p in df["mask"]]
    return df


def manifest_paths(manifest_dir: Path) -> dict[str, Path]:
    """The split manifests that exist in a prepared folder, by split name."""
    manifest_dir = Path(manifest_dir)
    return {s: manifest_dir / f"{s}.csv" for s in SPLITS if (manifest_dir / f"{s}.csv").is_file()}
