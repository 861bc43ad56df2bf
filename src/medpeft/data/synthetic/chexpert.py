"""Synthetic CheXpert (v1.0-small layout), rich enough to draw a 5x200-style evaluation set.

Layout written (under ``out``)::

    CheXpert-v1.0-small/train.csv
        Path,Sex,Age,Frontal/Lateral,AP/PA,<14 labels>   (Path relative to ``out``, e.g.
        CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg; labels 1.0/0.0/-1.0/blank)
    CheXpert-v1.0-small/train/patientNNNNN/studyK/view{1,2}_{frontal,lateral}.jpg

For each of the five 5x200 classes there are ``n`` frontal rows in which that class is 1.0 and
the other four plus the eight other findings are 0.0 or blank (never -1.0), so a reader can draw
up to ``n`` per class. Some of those studies also get a lateral view (which the 5x200 selection
must drop), and ``n`` further rows carry mixed, uncertain or normal labels (which it must skip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpeft.data.labels import CHEXPERT_5X200_CLASSES, CHEXPERT_LABELS
from medpeft.data.synthetic.cxr import render_frontal, render_lateral
from medpeft.data.synthetic.findings import chexpert_findings, sample_chexpert_labels, single_finding_labels
from medpeft.data.synthetic.output import Advance, box_records, image_rng, labels_json, save_gray

STREAM = 2
ROOT = "CheXpert-v1.0-small"
LATERAL_FRACTION = 0.25


def total_images(n: int) -> int:
    """Upper bound on the number of image files for ``n`` per class (for progress bars)."""
    return 6 * n + int(np.ceil(6 * n * LATERAL_FRACTION)) + 1


def write(out: Path, n: int, seed: int, image_size: int, advance: Advance) -> dict[str, Any]:
    """Write ``n`` clean frontal studies per 5x200 class plus ``n`` mixed studies."""
    plan_rng = image_rng(seed, STREAM, -1)
    kinds = [c for c in CHEXPERT_5X200_CLASSES for _ in range(n)] + ["mixed"] * n
    order = plan_rng.permutation(len(kinds))
    rows: list[dict[str, Any]] = []
    truth: dict[str, Any] = {}
    patient = 0
    study_no = 0
    for index, k in enumerate(order):
        kind = kinds[k]
        rng = image_rng(seed, STREAM, index)
        if patient == 0 or study_no >= int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])):
            patient += 1
            study_no = 0
            sex = str(rng.choice(["Male", "Female"], p=[0.55, 0.45])) if rng.random() > 0.01 else "Unknown"
            age = int(rng.integers(18, 91))
        study_no += 1
        if kind == "mixed":
            labels = sample_chexpert_labels(rng)
        else:
            labels = single_finding_labels(rng, kind)
        drawn = chexpert_findings(rng, labels)
        folder = f"{ROOT}/train/patient{patient:05d}/study{study_no}"
        views = ["frontal"] + (["lateral"] if rng.random() < LATERAL_FRACTION else [])
        for view_no, view in enumerate(views, start=1):
            height = image_size
            width = int(round(image_size * rng.uniform(0.8, 0.95) / 2) * 2)
            if view == "frontal":
                rendered = render_frontal(rng, height, width, drawn)
                ap_pa = str(rng.choice(["AP", "PA"], p=[0.7, 0.3]))
            else:
                rendered = render_lateral(rng, height, width, drawn)
                ap_pa = ""
            rel = f"{folder}/view{view_no}_{view}.jpg"
            save_gray(out / rel, rendered.image)
            advance(1)
            rows.append(
                {
                    "Path": rel,
                    "Sex": sex,
                    "Age": age,
                    "Frontal/Lateral": view.capitalize(),
                    "AP/PA": ap_pa,
                    **labels,
                }
            )
            truth[rel] = {
                "id": rel,
                "kind": kind,
                "view": view,
                "labels": labels_json(labels),
                "findings": rendered.findings,
                "boxes": box_records(rendered.regions),
                "mask": None,
            }
    frame = pd.DataFrame(rows, columns=["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS])
    csv = out / ROOT / "train.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(csv, index=False)
    frontal = frame[frame["Frontal/Lateral"] == "Frontal"]
    return {
        "counts": {
            "images": len(frame),
            "frontal": len(frontal),
            "lateral": int((frame["Frontal/Lateral"] == "Lateral").sum()),
            "patients": patient,
            "clean_per_class": n,
            "mixed": n,
        },
        "paths": {"train_csv": f"{ROOT}/train.csv", "images": f"{ROOT}/train"},
        "truth": truth,
    }
