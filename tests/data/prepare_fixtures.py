"""Tiny hand-built raw layouts whose correct manifests are known by reading them (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from medpeft.data.labels import CHEXPERT_LABELS


def write_png(path: Path, size: tuple[int, int] = (40, 30), value: int = 100, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def write_jpeg(path: Path, size: tuple[int, int] = (40, 30), value: int = 100, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(path, format="JPEG")
    return path


REPORT_FULL = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ year old woman with cough.

 COMPARISON:  None.

 FINDINGS:

 The heart is   enlarged.
 Mild  pulmonary edema.

 IMPRESSION:

 Cardiomegaly with mild edema.
"""

REPORT_IMPRESSION_ONLY = """ INDICATION: Dyspnea.

 impression :   Small   right pleural effusion.
"""

REPORT_NO_SECTIONS = """ INDICATION: Follow-up.

 COMPARISON: Prior study.

 NOTIFICATION: Discussed with the team.
"""

REPORT_FINDINGS_BETWEEN = """ EXAMINATION: CHEST PORTABLE

 Findings: Lungs are clear.

 TECHNIQUE: Single AP view.

 RECOMMENDATION(S): None.
"""

# (subject, study, split, [(dicom, view)], report, {label: value})
MIMIC_STUDIES = [
    (
        "10000001",
        "50000001",
        "train",
        [("d1", "PA"), ("d2", "LATERAL")],
        REPORT_FULL,
        {"Cardiomegaly": "1.0", "Edema": "-1.0"},
    ),
    (
        "10000002",
        "50000002",
        "validate",
        [("d3", "AP")],
        REPORT_IMPRESSION_ONLY,
        {"Pleural Effusion": "1.0", "Atelectasis": "0.0"},
    ),
    ("10000003", "50000003", "test", [("d4", "PA")], REPORT_NO_SECTIONS, {"Edema": "1.0"}),
    ("10000003", "50000004", "test", [("d5", "PA")], REPORT_FINDINGS_BETWEEN, {"No Finding": "1.0"}),
]


def make_mimic(
    root: Path, studies=MIMIC_STUDIES, *, shuffle_labels: bool = True, extra_label_rows=()
) -> Path:
    """A MIMIC-CXR-JPG tree; the CheXpert CSV rows are written in reverse order (join must be by study)."""
    split_rows, meta_rows, label_rows = [], [], []
    for k, (subject, study, split, images, report, labels) in enumerate(studies):
        sdir = root / "files" / f"p{subject[:2]}" / f"p{subject}"
        (sdir).mkdir(parents=True, exist_ok=True)
        (sdir / f"s{study}.txt").write_text(report)
        for j, (dicom, view) in enumerate(images):
            write_jpeg(sdir / f"s{study}" / f"{dicom}.jpg", value=10 * k + j)
            split_rows.append({"dicom_id": dicom, "study_id": study, "subject_id": subject, "split": split})
            meta_rows.append(
                {"dicom_id": dicom, "subject_id": subject, "study_id": study, "ViewPosition": view}
            )
        row = {"subject_id": subject, "study_id": study}
        row.update({c: labels.get(c, "") for c in CHEXPERT_LABELS})
        label_rows.append(row)
    label_rows.extend(extra_label_rows)
    if shuffle_labels:
        label_rows = label_rows[::-1]
    pd.DataFrame(split_rows).to_csv(root / "mimic-cxr-2.0.0-split.csv", index=False)
    pd.DataFrame(meta_rows).to_csv(root / "mimic-cxr-2.0.0-metadata.csv", index=False)
    pd.DataFrame(label_rows, columns=["subject_id", "study_id", *CHEXPERT_LABELS]).to_csv(
        root / "mimic-cxr-2.0.0-chexpert.csv", index=False
    )
    return root


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    transfer_syntax: str | None = None,
    encapsulated: bytes | None = None,
    with_pixels: bool = True,
) -> Path:
    """A minimal DICOM; ``encapsulated`` writes those bytes as one compressed frame (for decoder tests)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = path.stem
    ds.Modality = "CR"
    if with_pixels and encapsulated is None:
        ds.set_pixel_data(
            pixels, photometric_interpretation=photometric, bits_stored=pixels.dtype.itemsize * 8
        )
    else:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 0
        if encapsulated is not None:
            ds.PixelData = encapsulate([encapsulated])
            ds["PixelData"].VR = "OB"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = f"{window[0]:g}", f"{window[1]:g}"
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = f"{rescale[0]:g}", f"{rescale[1]:g}"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_rsna(root: Path, patients: dict[str, list[list[float]]], size: tuple[int, int] = (32, 32)) -> Path:
    """RSNA layout: one CSV row per box (negatives: one row with empty box fields), one DICOM per patient."""
    rows = []
    for k, (pid, boxes) in enumerate(patients.items()):
        write_dicom(
            root / "stage_2_train_images" / f"{pid}.dcm",
            (np.arange(size[0] * size[1]).reshape(size[1], size[0]) % 251 + k).astype(np.uint16),
        )
        if not boxes:
            rows.append({"patientId": pid, "x": "", "y": "", "width": "", "height": "", "Target": "0"})
        for x, y, w, h in boxes:
            rows.append({"patientId": pid, "x": x, "y": y, "width": w, "height": h, "Target": "1"})
    pd.DataFrame(rows).to_csv(root / "stage_2_train_labels.csv", index=False)
    return root


def make_siim(root: Path, images: dict[str, list[str]], size: tuple[int, int] = (32, 24)) -> Path:
    """SIIM layout: ``train-rle.csv`` with the header's space and " -1" rows; DICOMs under study/series folders."""
    lines = ["ImageId, EncodedPixels"]
    for k, (image_id, rles) in enumerate(images.items()):
        folder = root / "dicom-images-train" / f"1.2.3.{k}" / f"1.2.3.{k}.1"
        write_dicom(folder / f"{image_id}.dcm", np.full((size[1], size[0]), 40 + k, dtype=np.uint16))
        for rle in rles or [" -1"]:
            lines.append(f"{image_id},{rle}")
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    return root
