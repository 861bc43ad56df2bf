"""prepare rsna: patient-level stratified split, boxes per patient rescaled to the cache, bad boxes named."""

from __future__ import annotations

import pandas as pd
import pytest
from prepare_fixtures import make_rsna

from medpeft.data.manifest import read_dataset_info, read_manifest
from medpeft.data.prepare import prepare
from medpeft.errors import DataError

POS = {f"pos{i}": [[4, 8, 10, 6]] for i in range(6)}
POS["pos0"] = [[4, 8, 10, 6], [20, 2, 8, 8]]  # two boxes on two rows: one manifest row
NEG = {f"neg{i}": [] for i in range(6)}


def _run(raw, out, **kw):
    return prepare("rsna", raw, out, seed=kw.pop("seed", 0), progress=False, **kw)


def _all(out):
    return {s: read_manifest(out / f"{s}.csv") for s in ("train", "validate", "test")}


def test_split_boxes_and_cache(tmp_path):
    raw = make_rsna(tmp_path / "raw", {**POS, **NEG})
    out = tmp_path / "out"
    summary = _run(raw, out, image_size=16)
    splits = _all(out)
    assert summary["kept"] == {"train": 8, "validate": 2, "test": 2}  # 4/1/1 per class
    ids = [set(df["subject_id"]) for df in splits.values()]
    assert sum(map(len, ids)) == 12 and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for df in splits.values():
        assert set(df["Pneumonia"]) == {0.0, 1.0}
        assert (df["Pneumonia"] + df["No Finding"] == 1).all()
    rows = pd.concat(splits.values()).set_index("subject_id")
    assert rows.loc["pos0", "boxes"] == [[2.0, 4.0, 5.0, 3.0], [10.0, 1.0, 4.0, 4.0]]  # 32 px -> 16 px
    assert rows.loc["pos3", "boxes"] == [[2.0, 4.0, 5.0, 3.0]]
    assert rows.loc["neg2", "boxes"] == []
    assert (rows["width"] == "16").all()
    info = read_dataset_info(out)
    assert info.task == "binary" and info.positive_class == "Pneumonia" and info.has_boxes


def test_without_cache_boxes_in_dicom_pixels(tmp_path):
    raw = make_rsna(tmp_path / "raw", {**POS, **NEG})
    _run(raw, tmp_path / "out")
    rows = pd.concat(_all(tmp_path / "out").values()).set_index("subject_id")
    assert rows.loc["pos0", "boxes"] == [[4.0, 8.0, 10.0, 6.0], [20.0, 2.0, 8.0, 8.0]]
    assert rows.loc["pos0", "image"].endswith("stage_2_train_images/pos0.dcm")


def test_seed_changes_split_but_is_reproducible(tmp_path):
    raw = make_rsna(tmp_path / "raw", {**POS, **NEG})
    a = _run(raw, tmp_path / "a", seed=1)
    b = _run(raw, tmp_path / "b", seed=1)
    assert a["kept"] == b["kept"]
    for s in ("train", "validate", "test"):
        assert (tmp_path / "a" / f"{s}.csv").read_text() == (tmp_path / "b" / f"{s}.csv").read_text()


def test_fractions_nested_and_reproducible(tmp_path):
    pos = {f"p{i:03d}": [[1, 1, 5, 5]] for i in range(40)}
    neg = {f"n{i:03d}": [] for i in range(40)}
    raw = make_rsna(tmp_path / "raw", {**pos, **neg}, size=(16, 16))
    fractions = [0.1, 0.5, 1.0]
    summary = _run(raw, tmp_path / "out", fractions=fractions, verify_images=False)
    sets = [
        set(read_manifest(tmp_path / "out" / f"train_fraction_{f:g}.csv")["subject_id"]) for f in fractions
    ]
    assert sets[0] < sets[1] < sets[2] == set(read_manifest(tmp_path / "out/train.csv")["subject_id"])
    assert summary["fractions"] == {
        "train_fraction_0.1.csv": 6,
        "train_fraction_0.5.csv": 28,
        "train_fraction_1.csv": 56,
    }
    assert set(read_manifest(tmp_path / "out/train_fraction_0.1.csv")["Pneumonia"]) == {0.0, 1.0}
    again = _run(raw, tmp_path / "again", fractions=[0.5], verify_images=False)
    assert again["fractions"] == {"train_fraction_0.5.csv": 28}
    assert (tmp_path / "again/train_fraction_0.5.csv").read_text() == (
        tmp_path / "out/train_fraction_0.5.csv"
    ).read_text()
    assert read_dataset_info(tmp_path / "out").fractions["0.1"] == "train_fraction_0.1.csv"


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([25, 8, 10, 6], r"line \d+ \(patientId pos1\): box \[25, 8, 10, 6\] lies outside the 32x32 image"),
        ([4, 8, -10, 6], r"line \d+ \(patientId pos1\): box has a negative or zero size \(width -10"),
        ([4, 8, 10, 0], r"line \d+ \(patientId pos1\): box has a negative or zero size"),
        ([-1, 8, 10, 6], r"line \d+ \(patientId pos1\): box lies outside the image \(x -1"),
    ],
)
def test_bad_boxes(tmp_path, box, message):
    raw = make_rsna(tmp_path / "raw", {**POS, "pos1": [box], **NEG})
    with pytest.raises(DataError, match=message):
        _run(raw, tmp_path / "out")


def test_bad_target_and_missing_dicom(tmp_path):
    raw = make_rsna(tmp_path / "raw", {**POS, **NEG})
    (raw / "stage_2_train_images/neg3.dcm").unlink()
    with pytest.raises(DataError, match=r"image of patientId neg3 not found"):
        _run(raw, tmp_path / "out")
    assert _run(raw, tmp_path / "out", on_missing="skip")["dropped"] == {"images: DICOM missing": 1}
    csv = raw / "stage_2_train_labels.csv"
    csv.write_text(csv.read_text().replace(",0\n", ",2\n", 1))
    with pytest.raises(
        DataError, match=r"stage_2_train_labels\.csv line \d+ \(patientId neg\d\): Target '2' is not 0 or 1"
    ):
        _run(raw, tmp_path / "out2")


def test_too_few_for_both_classes(tmp_path):
    raw = make_rsna(tmp_path / "raw", {**POS, "neg0": [], "neg1": []})
    with pytest.raises(DataError, match=r"class 0 has only 2 patient\(s\); at least 3 are needed"):
        _run(raw, tmp_path / "out")


def test_undecodable_dicom_error_or_skip(tmp_path, monkeypatch):
    """A JPEG 2000 DICOM where no decoder is installed (simulated: Pillow may decode it here)."""
    import numpy as np
    from prepare_fixtures import write_dicom
    from pydicom.uid import JPEG2000Lossless

    from medpeft.data import images

    raw = make_rsna(tmp_path / "raw", {**POS, **NEG})
    bad = write_dicom(
        raw / "stage_2_train_images/neg4.dcm",
        np.zeros((32, 32), np.uint16),
        transfer_syntax=JPEG2000Lossless,
        encapsulated=b"\x00" * 16,
    )
    real = images.missing_decoder_packages
    monkeypatch.setattr(
        images,
        "missing_decoder_packages",
        lambda uid: ["pip install pylibjpeg pylibjpeg-openjpeg"] if uid == JPEG2000Lossless else real(uid),
    )
    with pytest.raises(
        DataError, match=rf"{bad}: .*'JPEG 2000 Image Compression \(Lossless Only\)'.*pylibjpeg-openjpeg"
    ):
        _run(raw, tmp_path / "out")
    summary = _run(raw, tmp_path / "out", on_bad_image="skip")
    assert summary["dropped"] == {"unreadable image": 1} and summary["kept_total"] == 11
