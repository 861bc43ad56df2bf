"""Synthetic SIIM-ACR Pneumothorax Segmentation data.

Layout written (under ``out``)::

    train-rle.csv      header "ImageId, EncodedPixels" (with the space); " -1" for no
                       pneumothorax; one row per pneumothorax component (so several rows for
                       some images), in the relative column-major RLE of ``medpeft.data.rle``
    dicom-images-train/<StudyInstanceUID>/<SeriesInstanceUID>/<ImageId>.dcm

Masks are in the DICOM's pixel grid (1024x1024 in the real data, ``image_size`` here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medpeft.data.rle import rle_encode
from medpeft.data.synthetic.cxr import render_frontal
from medpeft.data.synthetic.dicom import make_uid, sample_encoding, write_dicom
from medpeft.data.synthetic.output import Advance, image_rng, save_mask

STREAM = 4
IMAGES = "dicom-images-train"
HEADER = "ImageId, EncodedPixels"
_OTHER = ("effusion", "support_devices", "atelectasis", "cardiomegaly", "nodule")


def total_images(n: int) -> int:
    """Number of DICOM files for ``n`` images."""
    return n


def write(out: Path, n: int, seed: int, image_size: int, advance: Advance) -> dict[str, Any]:
    """Write ``n`` DICOMs (about 30 % with pneumothorax) and ``train-rle.csv``."""
    lines = [HEADER]
    truth: dict[str, Any] = {}
    positives = rows_multi = 0
    for index in range(n):
        rng = image_rng(seed, STREAM, index)
        positive = rng.random() < 0.3
        drawn: dict[str, float] = {"pneumothorax": 1.0} if positive else {}
        if rng.random() < 0.25:
            drawn[str(rng.choice(_OTHER))] = 1.0
        if positive and rng.random() < 0.3:
            drawn["support_devices"] = 1.0  # chest drains and lines are common in pneumothorax cases
        rendered = render_frontal(rng, image_size, image_size, drawn)
        study, series, image_id = make_uid(rng, 2), make_uid(rng, 3), make_uid(rng, 4)
        encoding = sample_encoding(rng)
        rel = f"{IMAGES}/{study}/{series}/{image_id}.dcm"
        write_dicom(
            out / rel,
            rendered.image,
            encoding,
            rng,
            patient_id=str(uuid_like(rng)),
            study_uid=study,
            series_uid=series,
            sop_uid=image_id,
            sex=str(rng.choice(["M", "F"])),
            age=int(rng.integers(18, 90)),
            view=str(rng.choice(["PA", "AP"])),
            pixel_spacing_mm=0.168 * 1024 / image_size,
            study_date="19010101",
        )
        advance(1)
        components = [r.mask for r in rendered.regions if r.finding == "pneumothorax"]
        union = np.zeros((image_size, image_size), dtype=bool)
        if components:
            positives += 1
            rows_multi += len(components) > 1
            for mask in components:
                union |= mask
                lines.append(f"{image_id}, {rle_encode(mask)}")
        else:
            lines.append(f"{image_id}, -1")
        truth[rel] = {
            "id": image_id,
            "labels": {"Pneumothorax": int(bool(components))},
            "findings": rendered.findings,
            "boxes": [
                {
                    "finding": "pneumothorax",
                    "x": r.box[0],
                    "y": r.box[1],
                    "width": r.box[2],
                    "height": r.box[3],
                }
                for r in rendered.regions
                if r.finding == "pneumothorax"
            ],
            "components": len(components),
            "mask": save_mask(out, f"siim/{image_id}", union) if components else None,
            "encoding": {"bits_stored": encoding.bits_stored, "photometric": encoding.photometric},
        }
    (out / "train-rle.csv").write_text("\n".join(lines) + "\n")
    return {
        "counts": {
            "images": n,
            "positive": positives,
            "negative": n - positives,
            "multi_component": rows_multi,
            "rows": len(lines) - 1,
        },
        "paths": {"rle_csv": "train-rle.csv", "images": IMAGES},
        "truth": truth,
    }


def uuid_like(rng: np.random.Generator) -> str:
    """An anonymised patient id in the style of the SIIM archive (a UUID)."""
    return rng.bytes(16).hex()
