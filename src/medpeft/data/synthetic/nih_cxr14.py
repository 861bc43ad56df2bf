"""Synthetic NIH ChestX-ray14.

Layout written (under ``out``)::

    Data_Entry_2017.csv   Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,
                          Patient Gender,View Position,OriginalImage[Width,Height],
                          OriginalImagePixelSpacing[x,y]      (the header's inner commas are
                          real: pandas reads 11 columns, e.g. "OriginalImage[Width" and "Height]")
    BBox_List_2017.csv    Image Index,Finding Label,Bbox [x,y,w,h],,,   for some positive images
    train_val_list.txt, test_list.txt   image names, patient-disjoint
    images/{patient:08d}_{follow-up:03d}.png

``Finding Labels`` joins findings with "|" (alphabetically) or says "No Finding". As in the real
archive a few PNGs are stored as RGBA rather than grey, so readers must convert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medpeft.data.labels import NIH_LABELS, NIH_NO_FINDING
from medpeft.data.synthetic.cxr import render_frontal
from medpeft.data.synthetic.findings import NIH_TO_FINDING, nih_findings, sample_nih_labels
from medpeft.data.synthetic.output import Advance, image_rng, save_gray, to_uint8

STREAM = 5
HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
_BBOX_FINDINGS = NIH_LABELS[:8]  # the eight findings of BBox_List_2017.csv lead the official list
_BBOX_NAMES = {"Infiltration": "Infiltrate"}  # BBox_List_2017.csv spells it this way


def total_images(n: int) -> int:
    """Number of PNG files for ``n`` images."""
    return n


def write(out: Path, n: int, seed: int, image_size: int, advance: Advance) -> dict[str, Any]:
    """Write ``n`` PNG images from patients with one to four follow-ups, and the list files."""
    plan_rng = image_rng(seed, STREAM, -1)
    plan: list[tuple[int, int]] = []
    patient = 0
    while len(plan) < n:
        patient += int(plan_rng.integers(1, 4))
        for follow_up in range(int(plan_rng.choice([1, 2, 3, 4], p=[0.5, 0.25, 0.15, 0.1]))):
            if len(plan) < n:
                plan.append((patient, follow_up))
    patients = sorted({p for p, _ in plan})
    shuffled = [patients[i] for i in plan_rng.permutation(len(patients))]
    n_test = max(1, round(0.2 * len(patients))) if len(patients) >= 2 else 0
    test_patients = set(shuffled[:n_test])

    entries = [HEADER]
    bbox_lines = [BBOX_HEADER]
    train_val: list[str] = []
    test: list[str] = []
    truth: dict[str, Any] = {}
    demographics: dict[int, tuple[int, str]] = {}
    for index, (pid, follow_up) in enumerate(plan):
        rng = image_rng(seed, STREAM, index)
        if pid not in demographics:
            demographics[pid] = (int(rng.integers(12, 90)), str(rng.choice(["M", "F"])))
        age, sex = demographics[pid]
        labels = sample_nih_labels(rng)
        rendered = render_frontal(rng, image_size, image_size, nih_findings(labels))
        name = f"{pid:08d}_{follow_up:03d}.png"
        rel = f"images/{name}"
        if rng.random() < 0.05:
            grey = to_uint8(rendered.image)
            rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1)
            (out / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgba).save(out / rel)
        else:
            save_gray(out / rel, rendered.image)
        advance(1)
        view = str(rng.choice(["PA", "AP"], p=[0.6, 0.4]))
        width, height = int(rng.integers(2000, 3000)), int(rng.integers(2000, 3000))
        spacing = float(rng.choice([0.143, 0.139, 0.168]))
        finding_labels = "|".join(labels) if labels else NIH_NO_FINDING
        entries.append(
            f"{name},{finding_labels},{follow_up},{pid},{age + follow_up // 3},{sex},{view},{width},{height},"
            f"{spacing},{spacing}"
        )
        (test if pid in test_patients else train_val).append(name)
        boxes = []
        for label in labels:
            regions = [r for r in rendered.regions if r.finding == NIH_TO_FINDING[label]]
            boxes += [
                {"finding": label, "x": r.box[0], "y": r.box[1], "width": r.box[2], "height": r.box[3]}
                for r in regions
            ]
            if regions and label in _BBOX_FINDINGS and index % 3 == 0:
                # One box per finding, in the PNG's pixel grid (1024x1024 real, image_size here).
                x, y, w, h = (float(v) for v in max(regions, key=lambda r: r.box[2] * r.box[3]).box)
                bbox_lines.append(f"{name},{_BBOX_NAMES.get(label, label)},{x},{y},{w},{h},,,")
        truth[rel] = {
            "id": name,
            "patient_id": pid,
            "labels": {"Finding Labels": finding_labels},
            "findings": rendered.findings,
            "boxes": boxes,
            "mask": None,
        }
    (out / "Data_Entry_2017.csv").write_text("\n".join(entries) + "\n")
    (out / "BBox_List_2017.csv").write_text("\n".join(bbox_lines) + "\n")
    (out / "train_val_list.txt").write_text("".join(f"{x}\n" for x in sorted(train_val)))
    (out / "test_list.txt").write_text("".join(f"{x}\n" for x in sorted(test)))
    return {
        "counts": {
            "images": n,
            "patients": len(patients),
            "train_val": len(train_val),
            "test": len(test),
            "no_finding": sum(1 for t in truth.values() if t["labels"]["Finding Labels"] == NIH_NO_FINDING),
        },
        "paths": {
            "data_entry_csv": "Data_Entry_2017.csv",
            "bbox_csv": "BBox_List_2017.csv",
            "train_val_list": "train_val_list.txt",
            "test_list": "test_list.txt",
            "images": "images",
        },
        "truth": truth,
    }
