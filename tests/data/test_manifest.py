"""read_manifest validation: every problem is named (column, line, value, paths)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from prepare_fixtures import write_png

from medpeft.data.manifest import (
    DatasetInfo,
    read_dataset_info,
    read_manifest,
    write_dataset_info,
    write_manifest,
)
from medpeft.errors import DataError


def _manifest(tmp_path, rows, info=None):
    for r in rows:
        if r["image"].startswith("img/"):
            write_png(tmp_path / r["image"], size=(20, 10))
    path = write_manifest(pd.DataFrame(rows), tmp_path / "test.csv")
    if info:
        write_dataset_info(tmp_path, info)
    return path


INFO = DatasetInfo(
    name="x", task="binary", classes=["Neg", "Pos"], class_names=["neg", "pos"], positive_class="Pos"
)


def test_valid_manifest_roundtrip(tmp_path):
    rows = [
        {
            "image": "img/a.png",
            "Neg": 1,
            "Pos": 0,
            "boxes": [],
            "width": 20,
            "height": 10,
            "subject_id": "007",
        },
        {
            "image": "img/b.png",
            "Neg": 0,
            "Pos": 1,
            "boxes": [[1, 2, 3, 4]],
            "width": 20,
            "height": 10,
            "subject_id": "008",
        },
    ]
    df = read_manifest(_manifest(tmp_path, rows, INFO))
    assert df["Pos"].tolist() == [0.0, 1.0]
    assert df["boxes"].tolist() == [[], [[1.0, 2.0, 3.0, 4.0]]]
    assert df["subject_id"].tolist() == ["007", "008"]  # leading zeros survive
    assert df["image"].iloc[0] == str(tmp_path / "img/a.png")
    assert read_dataset_info(tmp_path).positive_class == "Pos"


def test_missing_column(tmp_path):
    path = _manifest(tmp_path, [{"image": "img/a.png", "Neg": 1}], INFO)
    with pytest.raises(DataError, match=r"lacks column\(s\) 'Pos'"):
        read_manifest(path)


def test_missing_images_counted_and_listed(tmp_path):
    rows = [{"image": f"gone/{i}.png", "Neg": 1, "Pos": 0} for i in range(7)]
    with pytest.raises(DataError, match=r"7 of 7 'image' files are missing: .*gone/0\.png.*, \.\.\."):
        read_manifest(_manifest(tmp_path, rows, INFO))


def test_label_outside_allowed_set(tmp_path):
    rows = [{"image": "img/a.png", "Neg": 1, "Pos": 0}, {"image": "img/b.png", "Neg": 0, "Pos": 2}]
    with pytest.raises(DataError, match=r"line 3, column 'Pos': value '2' is not one of \{0, 1\}"):
        read_manifest(_manifest(tmp_path, rows, INFO))


def test_blank_label_only_when_allowed(tmp_path):
    rows = [{"image": "img/a.png", "Neg": "", "Pos": 1}]
    path = _manifest(tmp_path, rows)
    with pytest.raises(DataError, match=r"line 2, column 'Neg': value '' is not one of"):
        read_manifest(path, label_columns=["Neg", "Pos"])
    df = read_manifest(path, label_columns=["Neg", "Pos"], label_values=[0, 1, -1, None])
    assert df["Neg"].isna().all()


def test_boxes_outside_or_negative(tmp_path):
    rows = [{"image": "img/a.png", "Neg": 0, "Pos": 1, "boxes": [[15, 0, 10, 5]], "width": 20, "height": 10}]
    with pytest.raises(DataError, match=r"line 2: box .* lies outside the 20x10 image"):
        read_manifest(_manifest(tmp_path, rows, INFO))
    rows[0]["boxes"] = [[1, 1, -3, 2]]
    with pytest.raises(DataError, match=r"line 2: box .* non-positive size"):
        read_manifest(_manifest(tmp_path, rows, INFO))


def test_mask_size_mismatch(tmp_path):
    write_png(tmp_path / "m.png", size=(10, 10))
    rows = [{"image": "img/a.png", "mask": "m.png", "Neg": 1, "Pos": 0}]
    path = _manifest(tmp_path, rows, INFO)
    read_manifest(path)  # sizes not checked by default
    with pytest.raises(DataError, match=r"line 2: mask m\.png is 10x10 but image img/a\.png is 20x10"):
        read_manifest(path, check_mask_sizes=True)


def test_bad_dataset_json(tmp_path):
    (tmp_path / "dataset.json").write_text(
        json.dumps({"name": "x", "task": "ranking", "classes": [], "class_names": []})
    )
    with pytest.raises(DataError, match="task must be one of"):
        read_dataset_info(tmp_path)
