"""`synthesize()` writes each dataset's real raw layout, read back by the real readers.

Each dataset is written once per module (small n, small images) and checked with pydicom,
PIL and pandas against the documented columns and value sets; localisation is checked against
the ground-truth sidecar.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from medpeft.data.labels import (
    CHEXPERT_5X200_CLASSES,
    CHEXPERT_5X200_EXCLUDED,
    CHEXPERT_LABELS,
    LC25000_CLASSES,
    NIH_LABELS,
)
from medpeft.data.rle import merge_rles
from medpeft.data.synthetic import synthesize

SIZE = 128


def _write(tmp_path_factory, dataset: str, n: int, size: int = SIZE, seed: int = 0) -> Path:
    out = tmp_path_factory.mktemp(dataset.replace("-", "_")) / "raw"
    synthesize(dataset, out, n=n, seed=seed, image_size=size)
    return out


def _truth(root: Path) -> dict:
    return json.loads((root / "synthetic_truth.json").read_text())["images"]


def _display(ds: pydicom.Dataset) -> np.ndarray:
    """What a viewer shows, in [0, 1] with bright = dense: apply the VOI window, undo MONOCHROME1."""
    a = ds.pixel_array.astype(np.float64)
    if "WindowCenter" in ds:
        c, w = float(ds.WindowCenter), float(ds.WindowWidth)
        a = np.clip((a - (c - w / 2)) / w, 0.0, 1.0)
    else:
        a = a / (2 ** int(ds.BitsStored) - 1)
    return 1.0 - a if ds.PhotometricInterpretation == "MONOCHROME1" else a


def _zscore(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / a.std()


# ----------------------------------------------------------------------------- MIMIC-CXR


@pytest.fixture(scope="module")
def mimic(tmp_path_factory) -> Path:
    return _write(tmp_path_factory, "mimic-cxr", n=30)


def test_mimic_csvs_have_the_documented_columns_and_values(mimic):
    split = pd.read_csv(mimic / "mimic-cxr-2.0.0-split.csv")
    labels = pd.read_csv(mimic / "mimic-cxr-2.0.0-chexpert.csv")
    meta = pd.read_csv(mimic / "mimic-cxr-2.0.0-metadata.csv")
    assert list(split.columns) == ["dicom_id", "study_id", "subject_id", "split"]
    assert list(labels.columns) == ["subject_id", "study_id", *CHEXPERT_LABELS]
    assert {"dicom_id", "subject_id", "study_id", "ViewPosition", "Rows", "Columns"} <= set(meta.columns)
    assert set(split["split"]) == {"train", "validate", "test"}
    assert split.groupby("subject_id")["split"].nunique().max() == 1  # patient-level split
    values = labels[list(CHEXPERT_LABELS)].to_numpy().ravel()
    assert set(values[~np.isnan(values)]) <= {1.0, 0.0, -1.0}
    assert np.isnan(values).any() and (values == -1.0).any() and (values == 1.0).any()
    assert set(meta["ViewPosition"]) & {"LL", "LATERAL"} and set(meta["ViewPosition"]) & {"PA", "AP"}
    assert set(split["dicom_id"]) == set(meta["dicom_id"])
    assert labels.groupby("subject_id")["study_id"].nunique().max() > 1  # several studies per subject
    assert meta.groupby("study_id")["dicom_id"].nunique().max() == 2  # e.g. PA + lateral


def test_mimic_images_and_reports_are_where_the_layout_says(mimic):
    meta = pd.read_csv(mimic / "mimic-cxr-2.0.0-metadata.csv", dtype={"subject_id": str, "study_id": str})
    for row in meta.itertuples():
        folder = mimic / "files" / f"p{row.subject_id[:2]}" / f"p{row.subject_id}"
        with Image.open(folder / f"s{row.study_id}" / f"{row.dicom_id}.jpg") as img:
            assert img.format == "JPEG" and img.mode == "L"
            assert img.size == (row.Columns, row.Rows)
        assert (folder / f"s{row.study_id}.txt").is_file()
    reports = [p.read_text() for p in (mimic / "files").rglob("s*.txt")]
    assert len(reports) == meta["study_id"].nunique()
    assert any("FINDINGS:" in r and "IMPRESSION:" in r for r in reports)


def test_mimic_reports_agree_with_labels(mimic):
    labels = pd.read_csv(mimic / "mimic-cxr-2.0.0-chexpert.csv", dtype={"subject_id": str, "study_id": str})
    checked = 0
    for row in labels.itertuples(index=False):
        values = dict(zip(labels.columns, row, strict=True))
        text = (
            mimic / "files" / f"p{row.subject_id[:2]}" / f"p{row.subject_id}" / f"s{row.study_id}.txt"
        ).read_text()
        text = " ".join(text.lower().split())
        if values["Pleural Effusion"] == 0.0:
            assert "no pleural effusion" in text or "no effusion" in text or "no pleural effusion or" in text
            checked += 1
        if values["Cardiomegaly"] == 1.0:
            assert any(
                w in text for w in ("cardiomegaly", "heart is enlarged", "cardiac silhouette is enlarged")
            )
            checked += 1
    assert checked > 0


def test_mimic_truth_records_drawn_findings_for_positive_frontal_images(mimic):
    truth = _truth(mimic)
    frontal_positive = [
        t for t in truth.values() if t["view"] in ("PA", "AP") and t["labels"]["Pleural Effusion"] == 1.0
    ]
    assert frontal_positive
    for t in frontal_positive:
        assert "effusion" in t["findings"]
        assert any(b["finding"] == "effusion" for b in t["boxes"])


# ----------------------------------------------------------------------------- CheXpert


@pytest.fixture(scope="module")
def chexpert(tmp_path_factory) -> Path:
    return _write(tmp_path_factory, "chexpert", n=4)


def test_chexpert_train_csv_layout(chexpert):
    frame = pd.read_csv(chexpert / "CheXpert-v1.0-small" / "train.csv")
    assert list(frame.columns) == ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS]
    assert (
        frame["Path"]
        .str.match(r"^CheXpert-v1\.0-small/train/patient\d{5}/study\d+/view\d_(frontal|lateral)\.jpg$")
        .all()
    )
    assert set(frame["Frontal/Lateral"]) == {"Frontal", "Lateral"}
    assert set(frame.loc[frame["Frontal/Lateral"] == "Frontal", "AP/PA"]) <= {"AP", "PA"}
    assert frame.loc[frame["Frontal/Lateral"] == "Lateral", "AP/PA"].isna().all()
    values = frame[list(CHEXPERT_LABELS)].to_numpy().ravel()
    assert set(values[~np.isnan(values)]) <= {1.0, 0.0, -1.0}
    for path in frame["Path"]:
        with Image.open(chexpert / path) as img:
            assert img.mode == "L"


def test_chexpert_5x200_style_selection_finds_n_per_class(chexpert):
    frame = pd.read_csv(chexpert / "CheXpert-v1.0-small" / "train.csv")
    frontal = frame[frame["Frontal/Lateral"] == "Frontal"].fillna(0)
    for klass in CHEXPERT_5X200_CLASSES:
        others = [c for c in CHEXPERT_5X200_CLASSES if c != klass] + list(CHEXPERT_5X200_EXCLUDED)
        chosen = frontal[(frontal[klass] == 1) & (frontal[others] == 0).all(axis=1)]
        assert len(chosen) >= 4, klass
    assert (frame[list(CHEXPERT_LABELS)] == -1.0).any().any()  # mixed rows carry uncertainty


# ----------------------------------------------------------------------------- RSNA


@pytest.fixture(scope="module")
def rsna(tmp_path_factory) -> Path:
    return _write(tmp_path_factory, "rsna", n=24)


def test_rsna_labels_csv_layout(rsna):
    frame = pd.read_csv(rsna / "stage_2_train_labels.csv")
    assert list(frame.columns) == ["patientId", "x", "y", "width", "height", "Target"]
    neg, pos = frame[frame["Target"] == 0], frame[frame["Target"] == 1]
    assert len(neg) and len(pos)
    assert neg[["x", "y", "width", "height"]].isna().all().all()
    assert pos[["x", "y", "width", "height"]].notna().all().all()
    assert pos.groupby("patientId").size().max() >= 2  # several boxes for some patients
    assert frame.groupby("patientId")["Target"].nunique().max() == 1
    info = pd.read_csv(rsna / "stage_2_detailed_class_info.csv")
    assert list(info.columns) == ["patientId", "class"] and len(info) == len(frame)
    assert set(info["class"]) == {"Lung Opacity", "Normal", "No Lung Opacity / Not Normal"}


def test_rsna_dicoms_read_back_with_mixed_encodings(rsna):
    frame = pd.read_csv(rsna / "stage_2_train_labels.csv")
    encodings = set()
    for pid in frame["patientId"].unique():
        ds = pydicom.dcmread(rsna / "stage_2_train_images" / f"{pid}.dcm")
        assert ds.PatientID == pid
        assert (ds.Rows, ds.Columns) == (SIZE, SIZE)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.pixel_array.shape == (SIZE, SIZE)
        encodings.add((int(ds.BitsStored), ds.PhotometricInterpretation))
        if ds.BitsAllocated == 16:
            assert "WindowCenter" in ds and "WindowWidth" in ds
    assert (8, "MONOCHROME2") in encodings
    assert {b for b, _ in encodings} & {12, 16}
    assert "MONOCHROME1" in {p for _, p in encodings}


def test_rsna_boxes_land_on_the_drawn_opacities(rsna):
    frame = pd.read_csv(rsna / "stage_2_train_labels.csv")
    truth = _truth(rsna)
    images = {
        pid: _zscore(_display(pydicom.dcmread(rsna / "stage_2_train_images" / f"{pid}.dcm")))
        for pid in frame["patientId"].unique()
    }
    negatives = np.stack([images[p] for p in frame.loc[frame["Target"] == 0, "patientId"].unique()])
    baseline = negatives.mean(axis=0)  # what each location looks like without opacity
    contrasts = []
    for pid, rows in frame[frame["Target"] == 1].groupby("patientId"):
        inside = np.zeros((SIZE, SIZE), dtype=bool)
        for r in rows.itertuples():
            box = np.zeros_like(inside)
            box[int(r.y) : int(r.y + r.height), int(r.x) : int(r.x + r.width)] = True
            inside |= box
            contrasts.append(images[pid][box].mean() - baseline[box].mean())
        mask = np.asarray(Image.open(rsna / truth[f"stage_2_train_images/{pid}.dcm"]["mask"])) > 0
        assert mask.any() and mask[inside].sum() == mask.sum()  # every opacity pixel is inside a box
    assert min(contrasts) > 0.2 and np.mean(contrasts) > 0.6  # boxes are brighter than usual there


# ----------------------------------------------------------------------------- SIIM-ACR


@pytest.fixture(scope="module")
def siim(tmp_path_factory) -> Path:
    return _write(tmp_path_factory, "siim", n=24)


def test_siim_rle_csv_layout(siim):
    text = (siim / "train-rle.csv").read_text()
    assert text.splitlines()[0] == "ImageId, EncodedPixels"
    frame = pd.read_csv(siim / "train-rle.csv")
    assert list(frame.columns) == ["ImageId", " EncodedPixels"]
    assert (frame[" EncodedPixels"] == " -1").any()
    assert frame.groupby("ImageId").size().max() >= 2  # one row per pneumothorax component


def test_siim_dicoms_live_under_study_and_series_uids(siim):
    frame = pd.read_csv(siim / "train-rle.csv")
    paths = {p.stem: p for p in (siim / "dicom-images-train").rglob("*.dcm")}
    assert set(paths) == set(frame["ImageId"])
    for image_id, path in paths.items():
        ds = pydicom.dcmread(path)
        assert ds.SOPInstanceUID == image_id
        assert path.parent.name == ds.SeriesInstanceUID and path.parent.parent.name == ds.StudyInstanceUID
        assert ds.pixel_array.shape == (SIZE, SIZE)


def test_siim_rle_rows_decode_to_exactly_the_drawn_masks(siim):
    frame = pd.read_csv(siim / "train-rle.csv")
    truth = {t["id"]: t for t in _truth(siim).values()}
    positives = 0
    for image_id, rows in frame.groupby("ImageId"):
        merged = merge_rles(rows[" EncodedPixels"], SIZE, SIZE)
        record = truth[image_id]
        assert len(rows) == max(1, record["components"])
        if record["mask"] is None:
            assert not merged.any()
        else:
            positives += 1
            drawn = np.asarray(Image.open(siim / record["mask"])) > 0
            assert np.array_equal(merged, drawn)
    assert positives >= 3


def test_siim_pneumothorax_is_darker_than_that_region_usually_is(siim):
    frame = pd.read_csv(siim / "train-rle.csv")
    paths = {p.stem: p for p in (siim / "dicom-images-train").rglob("*.dcm")}
    images = {i: _zscore(_display(pydicom.dcmread(p))) for i, p in paths.items()}
    negative_ids = frame.loc[frame[" EncodedPixels"] == " -1", "ImageId"].unique()
    baseline = np.stack([images[i] for i in negative_ids]).mean(axis=0)
    for image_id, rows in frame[frame[" EncodedPixels"] != " -1"].groupby("ImageId"):
        mask = merge_rles(rows[" EncodedPixels"], SIZE, SIZE)
        assert images[image_id][mask].mean() < baseline[mask].mean()


# ----------------------------------------------------------------------------- NIH ChestX-ray14


@pytest.fixture(scope="module")
def nih(tmp_path_factory) -> Path:
    return _write(tmp_path_factory, "nih-cxr14", n=24)


def test_nih_layout(nih):
    frame = pd.read_csv(nih / "Data_Entry_2017.csv")
    assert list(frame.columns) == [
        "Image Index",
        "Finding Labels",
        "Follow-up #",
        "Patient ID",
        "Patient Age",
        "Patient Gender",
        "View Position",
        "OriginalImage[Width",
        "Height]",
        "OriginalImagePixelSpacing[x",
        "y]",
    ]
    for labels in frame["Finding Labels"]:
        assert labels == "No Finding" or set(labels.split("|")) <= set(NIH_LABELS)
    assert (frame["Finding Labels"] == "No Finding").any() and frame["Finding Labels"].str.contains(
        "|", regex=False
    ).any()
    train_val = (nih / "train_val_list.txt").read_text().split()
    test = (nih / "test_list.txt").read_text().split()
    assert sorted(train_val + test) == sorted(frame["Image Index"]) and test
    patient = frame.set_index("Image Index")["Patient ID"]
    assert not set(patient[train_val]) & set(patient[test])  # patient-disjoint
    for name in frame["Image Index"]:
        with Image.open(nih / "images" / name) as img:
            assert img.format == "PNG" and img.size == (SIZE, SIZE) and img.mode in ("L", "RGBA")
    boxes = pd.read_csv(nih / "BBox_List_2017.csv")
    assert list(boxes.columns[:3]) == ["Image Index", "Finding Label", "Bbox [x"]


# ----------------------------------------------------------------------------- histopathology


def test_lc25000_layout(tmp_path_factory):
    root = _write(tmp_path_factory, "lc25000", n=2, size=96)
    stems = {
        "lung_aca": "lungaca",
        "lung_n": "lungn",
        "lung_scc": "lungscc",
        "colon_aca": "colonca",
        "colon_n": "colonn",
    }
    for klass in LC25000_CLASSES:
        group = "lung_image_sets" if klass.startswith("lung") else "colon_image_sets"
        files = sorted((root / "lung_colon_image_set" / group / klass).iterdir())
        assert [f.name for f in files] == [f"{stems[klass]}1.jpeg", f"{stems[klass]}2.jpeg"]
        with Image.open(files[0]) as img:
            assert img.format == "JPEG" and img.mode == "RGB" and img.size == (96, 96)


def test_mhist_layout(tmp_path_factory):
    root = _write(tmp_path_factory, "mhist", n=12, size=96)
    frame = pd.read_csv(root / "annotations.csv")
    assert list(frame.columns) == [
        "Image Name",
        "Majority Vote Label",
        "Number of Annotators who Selected SSA (Out of 7)",
        "Partition",
    ]
    assert set(frame["Majority Vote Label"]) == {"HP", "SSA"}
    assert set(frame["Partition"]) <= {"train", "test"}
    votes = frame["Number of Annotators who Selected SSA (Out of 7)"]
    assert ((votes >= 4) == (frame["Majority Vote Label"] == "SSA")).all() and votes.between(0, 7).all()
    for name in frame["Image Name"]:
        with Image.open(root / "images" / name) as img:
            assert img.format == "PNG" and img.mode == "RGB" and img.size == (96, 96)
