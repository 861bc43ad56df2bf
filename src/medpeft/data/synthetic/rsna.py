"""Synthetic RSNA Pneumonia Detection Challenge (stage 2) data.

Layout written (under ``out``)::

    stage_2_train_labels.csv          patientId,x,y,width,height,Target; one row per box,
                                      negatives have empty x/y/width/height and Target 0
    stage_2_detailed_class_info.csv   patientId,class ("Lung Opacity", "Normal",
                                      "No Lung Opacity / Not Normal"), one row per label row
    stage_2_train_images/{patientId}.dcm

Boxes are in the pixel coordinates of the DICOM (1024x1024 in the real data, ``image_size`` here)
and enclose each drawn opacity with a small annotator margin. "Not Normal" negatives carry other
findings (cardiomegaly, effusion, nodules, devices) but no pneumonia-like opacity.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpeft.data.synthetic.cxr import render_frontal
from medpeft.data.synthetic.dicom import make_uid, sample_encoding, write_dicom
from medpeft.data.synthetic.output import Advance, image_rng, save_mask

STREAM = 3
IMAGES = "stage_2_train_images"
_OTHER = ("cardiomegaly", "effusion", "nodule", "support_devices", "pleural_thickening", "fracture")


def total_images(n: int) -> int:
    """Number of DICOM files for ``n`` patients."""
    return n


def write(out: Path, n: int, seed: int, image_size: int, advance: Advance) -> dict[str, Any]:
    """Write ``n`` patients (about 35 % with opacities) as DICOMs plus the label CSVs."""
    label_rows: list[dict[str, Any]] = []
    class_rows: list[dict[str, Any]] = []
    truth: dict[str, Any] = {}
    counts = {"Lung Opacity": 0, "Normal": 0, "No Lung Opacity / Not Normal": 0}
    for index in range(n):
        rng = image_rng(seed, STREAM, index)
        pid = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        r = rng.random()
        if r < 0.35:
            klass, drawn = "Lung Opacity", {"pneumonia": 1.0}
            if rng.random() < 0.15:
                drawn["support_devices"] = 1.0
        elif r < 0.7:
            klass = "No Lung Opacity / Not Normal"
            drawn = {str(f): 1.0 for f in rng.choice(_OTHER, size=int(rng.integers(1, 3)), replace=False)}
        else:
            klass, drawn = "Normal", {}
        counts[klass] += 1
        rendered = render_frontal(rng, image_size, image_size, drawn)
        encoding = sample_encoding(rng)
        view = str(rng.choice(["PA", "AP"], p=[0.55, 0.45]))
        rel = f"{IMAGES}/{pid}.dcm"
        write_dicom(
            out / rel,
            rendered.image,
            encoding,
            rng,
            patient_id=pid,
            study_uid=make_uid(rng, 2),
            series_uid=make_uid(rng, 3),
            sop_uid=make_uid(rng, 4),
            sex=str(rng.choice(["M", "F"])),
            age=int(rng.integers(18, 90)),
            view=view,
            pixel_spacing_mm=0.143 * 1024 / image_size,
            study_date="19010101",
        )
        advance(1)
        boxes = []
        opacity = np.zeros((image_size, image_size), dtype=bool)
        for region in rendered.regions:
            if region.finding != "pneumonia":
                continue
            opacity |= region.mask
            x, y, w, h = region.box
            margin = int(rng.integers(1, max(2, image_size // 64) + 1))
            x0, y0 = max(0, x - margin), max(0, y - margin)
            x1, y1 = min(image_size, x + w + margin), min(image_size, y + h + margin)
            boxes.append((float(x0), float(y0), float(x1 - x0), float(y1 - y0)))
        if klass == "Lung Opacity" and not boxes:  # pragma: no cover - the renderer always draws a patch
            raise RuntimeError("pneumonia rendered without a region")
        if boxes:
            for x, y, w, h in boxes:
                label_rows.append({"patientId": pid, "x": x, "y": y, "width": w, "height": h, "Target": 1})
                class_rows.append({"patientId": pid, "class": klass})
        else:
            label_rows.append(
                {"patientId": pid, "x": None, "y": None, "width": None, "height": None, "Target": 0}
            )
            class_rows.append({"patientId": pid, "class": klass})
        truth[rel] = {
            "id": pid,
            "labels": {"Target": int(bool(boxes)), "class": klass},
            "findings": rendered.findings,
            "boxes": [
                {"finding": "pneumonia", "x": b[0], "y": b[1], "width": b[2], "height": b[3]} for b in boxes
            ],
            "mask": save_mask(out, f"rsna/{pid}", opacity) if boxes else None,
            "encoding": {"bits_stored": encoding.bits_stored, "photometric": encoding.photometric},
        }
    pd.DataFrame(label_rows, columns=["patientId", "x", "y", "width", "height", "Target"]).to_csv(
        out / "stage_2_train_labels.csv", index=False
    )
    pd.DataFrame(class_rows, columns=["patientId", "class"]).to_csv(
        out / "stage_2_detailed_class_info.csv", index=False
    )
    return {
        "counts": {"patients": n, "boxes": sum(1 for r in label_rows if r["Target"] == 1), **counts},
        "paths": {
            "labels_csv": "stage_2_train_labels.csv",
            "class_info_csv": "stage_2_detailed_class_info.csv",
            "images": IMAGES,
        },
        "truth": truth,
    }
