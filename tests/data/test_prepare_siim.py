"""prepare siim: merged column-major RLE masks, split by ImageId with both classes, errors name the ImageId."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from prepare_fixtures import make_siim

from medpeft.data.manifest import read_dataset_info, read_manifest
from medpeft.data.prepare import prepare
from medpeft.data.rle import rle_encode
from medpeft.errors import DataError

W, H = 32, 24


def _mask(x0, y0, x1, y1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


# ImageId -> RLE rows; "img0" has two rows (two components) that must be merged
IMAGES = {
    "img0": [rle_encode(_mask(2, 2, 6, 5)), rle_encode(_mask(20, 10, 25, 20))],
    "img1": [rle_encode(_mask(0, 0, 3, 3))],
    "img2": ["3 4"],  # hand-decoded below: column-major pixels 3..6
    **{f"neg{i}": [] for i in range(6)},
}


def _run(raw, out, **kw):
    return prepare("siim", raw, out, seed=0, progress=False, **kw)


def _rows(out):
    return pd.concat([read_manifest(out / f"{s}.csv") for s in ("train", "validate", "test")]).set_index(
        "image_id"
    )


def test_masks_labels_split(tmp_path):
    raw = make_siim(tmp_path / "raw", IMAGES, size=(W, H))
    summary = _run(raw, tmp_path / "out")
    assert summary["kept"] == {"train": 5, "validate": 2, "test": 2}  # pos 1/1/1, neg 4/1/1
    rows = _rows(tmp_path / "out")
    assert rows.index.is_unique and len(rows) == 9
    for s in ("train", "validate", "test"):
        assert set(read_manifest(tmp_path / "out" / f"{s}.csv")["Pneumothorax"]) == {0.0, 1.0}
    mask0 = np.asarray(Image.open(rows.loc["img0", "mask"])) > 0
    assert np.array_equal(mask0, _mask(2, 2, 6, 5) | _mask(20, 10, 25, 20))
    mask2 = np.asarray(Image.open(rows.loc["img2", "mask"])) > 0
    expected = np.zeros((H, W), bool)
    expected[3:7, 0] = True  # offset 3, run 4 down the first column (column-major)
    assert np.array_equal(mask2, expected)
    assert not (np.asarray(Image.open(rows.loc["neg3", "mask"])) > 0).any()
    assert rows.loc["img1", "Pneumothorax"] == 1 and rows.loc["neg0", "Pneumothorax"] == 0
    info = read_dataset_info(tmp_path / "out")
    assert info.has_mask and info.positive_class == "Pneumothorax"


def test_cache_resizes_masks_with_nearest(tmp_path):
    raw = make_siim(tmp_path / "raw", IMAGES, size=(W, H))
    _run(raw, tmp_path / "out", image_size=12)
    rows = _rows(tmp_path / "out")
    mask = Image.open(rows.loc["img0", "mask"])
    assert mask.size == Image.open(rows.loc["img0", "image"]).size == (16, 12)
    assert set(np.unique(np.asarray(mask))) == {0, 255}
    read_manifest(tmp_path / "out/train.csv", check_mask_sizes=True)


def test_rle_longer_than_image(tmp_path):
    raw = make_siim(tmp_path / "raw", {**IMAGES, "img1": [f"0 {W * H + 5}"]}, size=(W, H))
    with pytest.raises(
        DataError, match=r"train-rle\.csv line 4 \(ImageId img1\): run-length encoding runs past the end"
    ):
        _run(raw, tmp_path / "out")


def test_mask_image_size_mismatch(tmp_path):
    raw = make_siim(tmp_path / "raw", IMAGES, size=(W, H))
    with pytest.raises(
        DataError,
        match=r"ImageId img0: mask/image size mismatch: the RLE grid is 1024x1024 but the DICOM .* is 32x24",
    ):
        _run(raw, tmp_path / "out", mask_size=1024)


def test_missing_dicom_and_fractions_by_image(tmp_path):
    raw = make_siim(tmp_path / "raw", IMAGES, size=(W, H))
    (raw / "extra.dcm").write_bytes(b"")  # outside dicom-images-train: ignored
    lines = (raw / "train-rle.csv").read_text() + "ghost, -1\n"
    (raw / "train-rle.csv").write_text(lines)
    with pytest.raises(DataError, match=r"train-rle\.csv line 12: no DICOM for ImageId ghost"):
        _run(raw, tmp_path / "out")
    summary = _run(raw, tmp_path / "out", on_missing="skip", fractions=[0.5, 1.0])
    assert summary["dropped"] == {"images: DICOM missing": 1}
    half = set(read_manifest(tmp_path / "out/train_fraction_0.5.csv")["image_id"])
    assert half < set(read_manifest(tmp_path / "out/train_fraction_1.csv")["image_id"])
