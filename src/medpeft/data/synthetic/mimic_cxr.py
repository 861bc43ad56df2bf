"""Synthetic MIMIC-CXR-JPG 2.x: JPEG tree, split/chexpert/metadata CSVs and free-text reports.

Layout written (all under ``out``)::

    files/p{subject[:2]}/p{subject}/s{study}/{dicom_id}.jpg
    files/p{subject[:2]}/p{subject}/s{study}.txt          report with FINDINGS:/IMPRESSION: sections
    mimic-cxr-2.0.0-split.csv       dicom_id,study_id,subject_id,split (train/validate/test, per subject)
    mimic-cxr-2.0.0-chexpert.csv    subject_id,study_id + 14 labels (1.0, 0.0, -1.0, blank)
    mimic-cxr-2.0.0-metadata.csv    dicom_id,subject_id,study_id,...,ViewPosition,Rows,Columns,...

Subjects have several studies; a study has a frontal image, often a lateral one too (LL or
LATERAL), occasionally two frontals or only a lateral, as in the real archive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpeft.data.labels import CHEXPERT_LABELS
from medpeft.data.synthetic.cxr import render_frontal, render_lateral
from medpeft.data.synthetic.findings import chexpert_findings, chexpert_sites, sample_chexpert_labels
from medpeft.data.synthetic.output import Advance, box_records, image_rng, labels_json, save_gray
from medpeft.data.synthetic.reports import write_report

STREAM = 1

_VIEW_MEANING = {
    "PA": "postero-anterior",
    "AP": "antero-posterior",
    "LATERAL": "lateral",
    "LL": "left lateral",
}


def total_images(n: int) -> int:
    """Number of image files written for ``n`` (exactly ``n``)."""
    return n


def _dicom_id(rng: np.random.Generator) -> str:
    return "-".join(rng.bytes(4).hex() for _ in range(5))


def _study_views(rng: np.random.Generator) -> list[str]:
    r = rng.random()
    frontal = "PA" if rng.random() < 0.6 else "AP"
    if r < 0.5:
        return [frontal]
    if r < 0.9:
        return [frontal, str(rng.choice(["LATERAL", "LL"], p=[0.6, 0.4]))]
    if r < 0.96:
        return ["AP", "AP"]
    return [str(rng.choice(["LATERAL", "LL"]))]


def _assign_splits(subjects: list[int], rng: np.random.Generator) -> dict[int, str]:
    """Patient-level split, about 80/10/10, with every split non-empty when there are >= 3 subjects."""
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    n = len(order)
    n_test = max(1, round(0.1 * n)) if n >= 3 else 0
    n_val = max(1, round(0.1 * n)) if n >= 3 else 0
    split = {}
    for i, s in enumerate(order):
        split[s] = "test" if i < n_test else ("validate" if i < n_test + n_val else "train")
    return split


def write(out: Path, n: int, seed: int, image_size: int, advance: Advance) -> dict[str, Any]:
    """Write ``n`` images (with their studies, reports and CSVs) under ``out``."""
    plan_rng = image_rng(seed, STREAM, -1)
    subject_ids: list[int] = []
    studies: list[dict[str, Any]] = []
    used_subjects: set[int] = set()
    used_studies: set[int] = set()
    images_planned = 0
    while images_planned < n:
        subject = int(plan_rng.integers(10_000_000, 19_999_999))
        if subject in used_subjects:
            continue
        used_subjects.add(subject)
        subject_ids.append(subject)
        for _ in range(int(plan_rng.choice([1, 2, 3, 4], p=[0.4, 0.3, 0.2, 0.1]))):
            study = int(plan_rng.integers(50_000_000, 59_999_999))
            while study in used_studies:
                study = int(plan_rng.integers(50_000_000, 59_999_999))
            used_studies.add(study)
            views = _study_views(plan_rng)[: n - images_planned]
            studies.append({"subject_id": subject, "study_id": study, "views": views})
            images_planned += len(views)
            if images_planned >= n:
                break
    splits = _assign_splits(subject_ids, plan_rng)

    split_rows, label_rows, meta_rows = [], [], []
    truth: dict[str, Any] = {}
    for index, st in enumerate(studies):
        rng = image_rng(seed, STREAM, index)
        subject, study = st["subject_id"], st["study_id"]
        labels = sample_chexpert_labels(rng)
        drawn = chexpert_findings(rng, labels)
        folder = Path("files") / f"p{str(subject)[:2]}" / f"p{subject}"
        date = f"{int(rng.integers(2110, 2200))}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
        time = f"{int(rng.integers(0, 24)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}.{int(rng.integers(0, 999)):03d}"
        sites: dict[str, list[str]] = {}
        for view in st["views"]:
            height = image_size
            width = (
                int(round(image_size * rng.uniform(0.82, 1.0) / 2) * 2)
                if view != "AP"
                else int(round(image_size * rng.uniform(0.95, 1.2) / 2) * 2)
            )
            frontal = view in ("PA", "AP")
            rendered = (render_frontal if frontal else render_lateral)(rng, height, width, drawn)
            if frontal and not sites:
                sites = chexpert_sites(rendered.regions, height, width)
            dicom_id = _dicom_id(rng)
            rel = folder / f"s{study}" / f"{dicom_id}.jpg"
            save_gray(out / rel, rendered.image)
            advance(1)
            split_rows.append(
                {"dicom_id": dicom_id, "study_id": study, "subject_id": subject, "split": splits[subject]}
            )
            meta_rows.append(
                {
                    "dicom_id": dicom_id,
                    "subject_id": subject,
                    "study_id": study,
                    "PerformedProcedureStepDescription": "CHEST (PA AND LAT)"
                    if view != "AP"
                    else "CHEST (PORTABLE AP)",
                    "ViewPosition": view,
                    "Rows": height,
                    "Columns": width,
                    "StudyDate": date,
                    "StudyTime": time,
                    "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)"
                    if view != "AP"
                    else "CHEST (PORTABLE AP)",
                    "ViewCodeSequence_CodeMeaning": _VIEW_MEANING[view],
                    "PatientOrientationCodeSequence_CodeMeaning": "Erect" if view != "AP" else "Recumbent",
                }
            )
            truth[rel.as_posix()] = {
                "id": dicom_id,
                "subject_id": subject,
                "study_id": study,
                "view": view,
                "labels": labels_json(labels),
                "findings": rendered.findings,
                "boxes": box_records(rendered.regions),
                "mask": None,
            }
        report = write_report(rng, labels, view=st["views"][0], sites=sites)
        (out / folder).mkdir(parents=True, exist_ok=True)
        (out / folder / f"s{study}.txt").write_text(report)
        label_rows.append({"subject_id": subject, "study_id": study, **labels})

    pd.DataFrame(split_rows, columns=["dicom_id", "study_id", "subject_id", "split"]).to_csv(
        out / "mimic-cxr-2.0.0-split.csv", index=False
    )
    chexpert = pd.DataFrame(label_rows, columns=["subject_id", "study_id", *CHEXPERT_LABELS])
    chexpert.sort_values(["subject_id", "study_id"]).to_csv(out / "mimic-cxr-2.0.0-chexpert.csv", index=False)
    pd.DataFrame(meta_rows).to_csv(out / "mimic-cxr-2.0.0-metadata.csv", index=False)
    views = pd.Series([m["ViewPosition"] for m in meta_rows]).value_counts().to_dict()
    return {
        "counts": {
            "images": len(meta_rows),
            "studies": len(studies),
            "subjects": len(subject_ids),
            "views": {str(k): int(v) for k, v in sorted(views.items())},
            "splits": {
                k: int(v)
                for k, v in sorted(pd.Series([r["split"] for r in split_rows]).value_counts().items())
            },
        },
        "paths": {
            "split_csv": "mimic-cxr-2.0.0-split.csv",
            "chexpert_csv": "mimic-cxr-2.0.0-chexpert.csv",
            "metadata_csv": "mimic-cxr-2.0.0-metadata.csv",
            "images": "files",
            "reports": "files",
        },
        "truth": truth,
    }
