"""Label vectors for synthetic studies, and which drawn findings a label vector implies.

Labels follow the CheXpert labeler's conventions: 1.0 positive, 0.0 explicitly negative
("no effusion"), -1.0 uncertain ("possible consolidation") and blank (None: not mentioned).
Positives co-occur as they do clinically (edema with cardiomegaly and effusion, pneumonia with
consolidation, "Lung Opacity" as the parent of the parenchymal findings), so that a model trained
on the synthetic reports meets the same confounders as on real ones.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from medpeft.data.labels import CHEXPERT_LABELS, NIH_LABELS

LabelValue = float | None

#: Probability that a finding is positive in a synthetic MIMIC-CXR / CheXpert study.
CHEXPERT_PREVALENCE: dict[str, float] = {
    "Enlarged Cardiomediastinum": 0.04,
    "Cardiomegaly": 0.18,
    "Lung Opacity": 0.06,
    "Lung Lesion": 0.05,
    "Edema": 0.12,
    "Consolidation": 0.08,
    "Pneumonia": 0.08,
    "Atelectasis": 0.18,
    "Pneumothorax": 0.07,
    "Pleural Effusion": 0.2,
    "Pleural Other": 0.02,
    "Fracture": 0.03,
    "Support Devices": 0.18,
}

#: Probability that a non-positive finding is explicitly negated (0.0) in the report.
CHEXPERT_NEGATION: dict[str, float] = {
    "Enlarged Cardiomediastinum": 0.15,
    "Cardiomegaly": 0.3,
    "Lung Opacity": 0.05,
    "Lung Lesion": 0.05,
    "Edema": 0.3,
    "Consolidation": 0.55,
    "Pneumonia": 0.2,
    "Atelectasis": 0.05,
    "Pneumothorax": 0.6,
    "Pleural Effusion": 0.6,
    "Pleural Other": 0.02,
    "Fracture": 0.05,
    "Support Devices": 0.02,
}

#: Probability that a non-positive finding is reported as uncertain (-1.0).
CHEXPERT_UNCERTAIN: dict[str, float] = {
    "Enlarged Cardiomediastinum": 0.02,
    "Cardiomegaly": 0.03,
    "Lung Opacity": 0.01,
    "Lung Lesion": 0.01,
    "Edema": 0.04,
    "Consolidation": 0.04,
    "Pneumonia": 0.06,
    "Atelectasis": 0.06,
    "Pneumothorax": 0.01,
    "Pleural Effusion": 0.04,
    "Pleural Other": 0.01,
    "Fracture": 0.01,
    "Support Devices": 0.0,
}

#: Renderer finding(s) for each CheXpert observation ("Lung Lesion" is a nodule or a mass).
CHEXPERT_TO_FINDINGS: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": ("enlarged_cardiomediastinum",),
    "Cardiomegaly": ("cardiomegaly",),
    "Lung Opacity": ("lung_opacity",),
    "Lung Lesion": ("nodule", "mass"),
    "Edema": ("edema",),
    "Consolidation": ("consolidation",),
    "Pneumonia": ("pneumonia",),
    "Atelectasis": ("atelectasis",),
    "Pneumothorax": ("pneumothorax",),
    "Pleural Effusion": ("effusion",),
    "Pleural Other": ("pleural_thickening",),
    "Fracture": ("fracture",),
    "Support Devices": ("support_devices",),
}

#: Renderer finding for each NIH ChestX-ray14 label.
NIH_TO_FINDING: dict[str, str] = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Effusion": "effusion",
    "Infiltration": "infiltration",
    "Mass": "mass",
    "Nodule": "nodule",
    "Pneumonia": "pneumonia",
    "Pneumothorax": "pneumothorax",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Emphysema": "emphysema",
    "Fibrosis": "fibrosis",
    "Pleural_Thickening": "pleural_thickening",
    "Hernia": "hernia",
}

NIH_PREVALENCE: dict[str, float] = {
    "Atelectasis": 0.1,
    "Cardiomegaly": 0.05,
    "Effusion": 0.12,
    "Infiltration": 0.15,
    "Mass": 0.05,
    "Nodule": 0.06,
    "Pneumonia": 0.03,
    "Pneumothorax": 0.05,
    "Consolidation": 0.04,
    "Edema": 0.03,
    "Emphysema": 0.03,
    "Fibrosis": 0.03,
    "Pleural_Thickening": 0.04,
    "Hernia": 0.01,
}

_PARENCHYMAL = ("Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis")


def sample_chexpert_labels(rng: np.random.Generator, allow_uncertain: bool = True) -> dict[str, LabelValue]:
    """A CheXpert-style label vector (name -> 1.0 / 0.0 / -1.0 / None) with realistic co-occurrence."""
    positive = {name: bool(rng.random() < p) for name, p in CHEXPERT_PREVALENCE.items()}
    if positive["Edema"]:
        positive["Cardiomegaly"] |= bool(rng.random() < 0.35)
        positive["Pleural Effusion"] |= bool(rng.random() < 0.35)
    if positive["Pneumonia"]:
        positive["Consolidation"] |= bool(rng.random() < 0.3)
    if any(positive[name] for name in _PARENCHYMAL):
        positive["Lung Opacity"] |= bool(rng.random() < 0.6)
    labels: dict[str, LabelValue] = {}
    for name in CHEXPERT_LABELS[1:]:
        if positive[name]:
            labels[name] = 1.0
            continue
        r = rng.random()
        if allow_uncertain and r < CHEXPERT_UNCERTAIN[name]:
            labels[name] = -1.0
        elif r < CHEXPERT_UNCERTAIN[name] + CHEXPERT_NEGATION[name]:
            labels[name] = 0.0
        else:
            labels[name] = None
    abnormal = any(labels[n] in (1.0, -1.0) for n in CHEXPERT_LABELS[1:] if n != "Support Devices")
    labels = {"No Finding": None if abnormal else (1.0 if rng.random() < 0.9 else None), **labels}
    return {name: labels[name] for name in CHEXPERT_LABELS}


def single_finding_labels(
    rng: np.random.Generator, finding: str, blank_rate: float = 0.4
) -> dict[str, LabelValue]:
    """Labels with exactly one positive CheXpert observation and the others 0.0 or blank (never -1)."""
    if finding not in CHEXPERT_LABELS[1:]:
        raise ValueError(f"unknown CheXpert observation {finding!r}")
    labels: dict[str, LabelValue] = {"No Finding": None}
    for name in CHEXPERT_LABELS[1:]:
        labels[name] = 1.0 if name == finding else (None if rng.random() < blank_rate else 0.0)
    return labels


def chexpert_findings(rng: np.random.Generator, labels: Mapping[str, LabelValue]) -> dict[str, float]:
    """Renderer findings for a CheXpert label vector: positives drawn fully, uncertain ones faint half the time.

    A lone "Lung Opacity" (no parenchymal child positive) is drawn as a faint patch; otherwise its
    children already draw the opacity.
    """
    drawn: dict[str, float] = {}
    for name, targets in CHEXPERT_TO_FINDINGS.items():
        value = labels.get(name)
        strength = 1.0 if value == 1.0 else (0.6 if value == -1.0 and rng.random() < 0.5 else 0.0)
        if not strength:
            continue
        if name == "Lung Opacity" and any(labels.get(child) == 1.0 for child in _PARENCHYMAL):
            continue
        target = targets[0] if len(targets) == 1 else str(rng.choice(targets, p=[0.6, 0.4]))
        drawn[target] = max(drawn.get(target, 0.0), strength)
    return drawn


def sample_nih_labels(rng: np.random.Generator) -> list[str]:
    """NIH findings of one image (empty list = "No Finding"), about half the images normal."""
    if rng.random() < 0.5:
        return []
    chosen = [name for name in NIH_LABELS if rng.random() < NIH_PREVALENCE[name] * 2.0]
    if not chosen:
        p = np.array([NIH_PREVALENCE[n] for n in NIH_LABELS])
        chosen = [str(rng.choice(NIH_LABELS, p=p / p.sum()))]
    return sorted(chosen)


def nih_findings(labels: list[str]) -> dict[str, float]:
    """Renderer findings for NIH labels (all drawn at full strength)."""
    return {NIH_TO_FINDING[name]: 1.0 for name in labels}


def _site_name(box: tuple[int, int, int, int], height: int, width: int) -> str:
    x, y, w, h = box
    cx, cy = (x + w / 2) / width, (y + h / 2) / height
    side = "right" if cx < 0.5 else "left"  # radiographs are displayed with the patient's right on the left
    if cy < 0.4:
        return f"{side} upper lobe"
    if cy < 0.55:
        return f"{side} perihilar region" if side == "right" or cy < 0.5 else "lingula"
    return f"{side} lower lobe" if cy < 0.7 else f"{side} lung base"


def chexpert_sites(regions: list, height: int, width: int) -> dict[str, list[str]]:
    """Anatomical site phrases of drawn regions, per CheXpert observation, so reports say where."""
    reverse = {f: name for name, targets in CHEXPERT_TO_FINDINGS.items() for f in targets}
    sites: dict[str, list[str]] = {}
    for region in regions:
        name = reverse.get(region.finding)
        if name is None:
            continue
        sites.setdefault(name, []).append(_site_name(region.box, height, width))
        if region.finding in ("consolidation", "pneumonia", "nodule", "mass", "atelectasis"):
            sites.setdefault("Lung Opacity", []).append(_site_name(region.box, height, width))
    return sites
