"""Radiology report text written from a CheXpert label vector, in MIMIC-CXR's free-text style.

A positive label is stated ("Moderate right pleural effusion."), a 0.0 label is negated
("No pleural effusion."), a -1.0 label is hedged ("Possible consolidation.") and a blank label is
not mentioned, mirroring how the CheXpert labeler turns reports into labels. Wording, sentence
order and section layout vary (``FINDINGS:``/``IMPRESSION:`` upper-case headers, sometimes extra
``INDICATION:``/``COMPARISON:`` sections, sometimes only one section, a few with neither) so that
section parsing and text encoders meet the variety of real reports.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np

from medpeft.data.labels import CHEXPERT_LABELS

LabelValue = float | None

_POSITIVE: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": (
        "The cardiomediastinal silhouette is enlarged.",
        "Widening of the mediastinum is noted.",
        "The mediastinal contours are widened.",
    ),
    "Cardiomegaly": (
        "The heart is enlarged.",
        "There is cardiomegaly.",
        "Moderate cardiomegaly is present.",
        "The cardiac silhouette is enlarged.",
    ),
    "Lung Opacity": (
        "There is an opacity in the {site}.",
        "Hazy opacity is seen in the {site}.",
        "Increased opacity projects over the {site}.",
    ),
    "Lung Lesion": (
        "There is a nodular opacity in the {site}.",
        "A {size} nodule is seen in the {site}.",
        "A mass is present in the {site}.",
    ),
    "Edema": (
        "There is pulmonary edema.",
        "Mild pulmonary vascular congestion and interstitial edema.",
        "Moderate pulmonary edema is present.",
        "Perihilar haziness consistent with edema.",
    ),
    "Consolidation": (
        "There is consolidation in the {site}.",
        "Focal consolidation is seen in the {site}.",
        "Patchy consolidation in the {site}.",
    ),
    "Pneumonia": (
        "Findings are concerning for pneumonia in the {site}.",
        "Opacity in the {site} consistent with pneumonia.",
        "{Site} pneumonia.",
    ),
    "Atelectasis": (
        "Plate-like atelectasis in the {site}.",
        "There is atelectasis at the {site}.",
        "Linear opacity in the {site} likely reflects atelectasis.",
        "Bibasilar atelectasis.",
    ),
    "Pneumothorax": (
        "There is a {size} {side} pneumothorax.",
        "A {side} apical pneumothorax is present.",
        "{Side} pneumothorax is seen.",
    ),
    "Pleural Effusion": (
        "There is a {size} {side} pleural effusion.",
        "{Side} pleural effusion is present.",
        "Blunting of the {side} costophrenic angle consistent with a small effusion.",
        "Layering {side} pleural effusion.",
    ),
    "Pleural Other": (
        "Pleural thickening along the {side} lateral chest wall.",
        "There is {side} pleural thickening.",
    ),
    "Fracture": (
        "There is a healing {side} rib fracture.",
        "Old {side} rib fracture is noted.",
    ),
    "Support Devices": (
        "Endotracheal tube terminates approximately {cm} cm above the carina.",
        "A right internal jugular central venous catheter terminates in the SVC.",
        "Left chest wall pacemaker with leads in the right atrium and ventricle.",
        "Nasogastric tube courses below the diaphragm.",
        "Monitoring leads are in place.",
    ),
}

_NEGATIVE: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": ("The mediastinal contours are normal.", "Normal mediastinal silhouette."),
    "Cardiomegaly": ("The heart size is normal.", "No cardiomegaly.", "Heart size is within normal limits."),
    "Lung Opacity": ("No focal opacity.", "The lungs are clear."),
    "Lung Lesion": ("No pulmonary nodules or masses.", "No suspicious pulmonary nodule."),
    "Edema": ("No pulmonary edema.", "There is no evidence of pulmonary edema.", "No vascular congestion."),
    "Consolidation": (
        "No focal consolidation.",
        "There is no consolidation.",
        "No focal airspace consolidation.",
    ),
    "Pneumonia": ("No evidence of pneumonia.", "No findings to suggest pneumonia."),
    "Atelectasis": ("No atelectasis.",),
    "Pneumothorax": ("No pneumothorax.", "There is no pneumothorax.", "No pneumothorax is seen."),
    "Pleural Effusion": ("No pleural effusion.", "There is no pleural effusion.", "No effusion."),
    "Pleural Other": ("No pleural thickening.",),
    "Fracture": ("No acute osseous abnormality.", "No displaced rib fracture."),
    "Support Devices": ("No lines or tubes.",),
}

_UNCERTAIN: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": ("The mediastinum may be slightly widened.",),
    "Cardiomegaly": ("The heart is possibly mildly enlarged.", "Borderline cardiomegaly."),
    "Lung Opacity": ("Possible opacity in the {site}.",),
    "Lung Lesion": ("A possible nodule in the {site}.", "Questionable nodular opacity in the {site}."),
    "Edema": ("Possible mild pulmonary edema.", "Cannot exclude mild interstitial edema."),
    "Consolidation": ("Possible consolidation in the {site}.", "Opacity may reflect consolidation."),
    "Pneumonia": (
        "Pneumonia cannot be excluded.",
        "Possible early pneumonia in the {site}.",
        "Opacity may represent atelectasis or pneumonia.",
    ),
    "Atelectasis": (
        "Possible atelectasis in the {site}.",
        "Likely atelectasis, although infection is not excluded.",
    ),
    "Pneumothorax": ("A tiny {side} apical pneumothorax cannot be excluded.",),
    "Pleural Effusion": ("Possible small {side} pleural effusion.", "Trace effusion is not excluded."),
    "Pleural Other": ("Possible pleural thickening.",),
    "Fracture": ("Possible {side} rib fracture.",),
    "Support Devices": ("Possible overlying monitoring device.",),
}

_SITES = (
    "right lower lobe",
    "left lower lobe",
    "right upper lobe",
    "left upper lobe",
    "right middle lobe",
    "lingula",
    "right lung base",
    "left lung base",
    "bilateral lower lobes",
    "right perihilar region",
)
_SIDES = ("right", "left", "bilateral")
_SIZES = ("small", "moderate", "large", "tiny")
_NORMAL_IMPRESSIONS = (
    "No acute cardiopulmonary process.",
    "No acute intrathoracic abnormality.",
    "Normal chest radiograph.",
    "No evidence of acute disease.",
)
_NORMAL_FINDINGS = (
    "The lungs are clear.",
    "Lungs are well expanded and clear.",
    "The cardiomediastinal and hilar contours are normal.",
    "No acute osseous abnormalities.",
)
_INDICATIONS = (
    "___-year-old with cough and fever.",
    "___ with shortness of breath, evaluate for pneumonia.",
    "History: ___ with chest pain.",
    "Evaluate for interval change.",
    "___F with new onset dyspnea // eval for edema.",
    "Status post line placement, assess position.",
)
_COMPARISONS = (
    "None.",
    "___.",
    "Chest radiograph from ___.",
    "Prior study from ___ is available for comparison.",
)
_TECHNIQUES = (
    "Chest PA and lateral.",
    "Single portable AP view of the chest.",
    "PA and lateral views of the chest.",
)


def _fill(rng: np.random.Generator, template: str, sites: Sequence[str] | None) -> str:
    site = str(rng.choice(sites)) if sites else str(rng.choice(_SITES))
    side = (
        "right"
        if "right" in site
        else ("left" if "left" in site or site == "lingula" else str(rng.choice(_SIDES)))
    )
    values = {
        "site": site,
        "Site": site[:1].upper() + site[1:],
        "side": side,
        "Side": side.capitalize(),
        "size": str(rng.choice(_SIZES)),
        "cm": str(int(rng.integers(2, 7))),
    }
    return template.format(**values)


def _wrap(text: str, rng: np.random.Generator) -> str:
    width = int(rng.integers(66, 80))
    return "\n".join(" " + line for line in textwrap.wrap(text, width=width))


def _findings_sentences(
    rng: np.random.Generator, labels: Mapping[str, LabelValue], sites: Mapping[str, Sequence[str]]
) -> tuple[list[str], list[str]]:
    """(FINDINGS sentences, IMPRESSION sentences) for the mentioned labels."""
    findings: list[str] = []
    impression: list[str] = []
    names = [n for n in CHEXPERT_LABELS[1:] if labels.get(n) is not None]
    order = list(rng.permutation(len(names)))
    # Support devices are conventionally described first.
    names = sorted((names[i] for i in order), key=lambda n: n != "Support Devices")
    negated: list[str] = []
    for name in names:
        value = labels[name]
        if value == 1.0:
            sentence = _fill(rng, str(rng.choice(_POSITIVE[name])), sites.get(name))
            findings.append(sentence)
            if name != "Support Devices" or rng.random() < 0.3:
                impression.append(sentence)
        elif value == -1.0:
            sentence = _fill(rng, str(rng.choice(_UNCERTAIN[name])), sites.get(name))
            findings.append(sentence)
            impression.append(sentence)
        else:
            negated.append(name)
    # Merge the classic "No pleural effusion or pneumothorax." pair when both are negated.
    if "Pleural Effusion" in negated and "Pneumothorax" in negated and rng.random() < 0.6:
        negated = [n for n in negated if n not in ("Pleural Effusion", "Pneumothorax")]
        findings.append(
            str(rng.choice(("No pleural effusion or pneumothorax.", "There is no effusion or pneumothorax.")))
        )
    for name in negated:
        findings.append(str(rng.choice(_NEGATIVE[name])))
    return findings, impression


def write_report(
    rng: np.random.Generator,
    labels: Mapping[str, LabelValue],
    view: str = "PA",
    sites: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """A free-text report for one study; ``sites`` optionally names where positives were drawn."""
    sites = sites or {}
    findings, impression = _findings_sentences(rng, labels, sites)
    normal = labels.get("No Finding") == 1.0 or not impression
    if normal:
        impression = [str(rng.choice(_NORMAL_IMPRESSIONS))]
        if len(findings) < 2:
            findings = [str(rng.choice(_NORMAL_FINDINGS)), *findings]
    layout = str(rng.choice(["both", "impression", "findings", "none"], p=[0.64, 0.15, 0.14, 0.07]))
    parts: list[str] = []
    if rng.random() < 0.9:
        parts.append(" " * 33 + "FINAL REPORT")
    if rng.random() < 0.7:
        exam = "CHEST (PA AND LAT)" if view in ("PA", "LATERAL", "LL") else "CHEST (PORTABLE AP)"
        parts.append(f" EXAMINATION:  {exam}")
    if rng.random() < 0.6:
        parts.append(f" INDICATION:  {rng.choice(_INDICATIONS)}")
    if rng.random() < 0.3:
        parts.append(f" TECHNIQUE:  {rng.choice(_TECHNIQUES)}")
    if rng.random() < 0.5:
        parts.append(f" COMPARISON:  {rng.choice(_COMPARISONS)}")
    inline = rng.random() < 0.3  # "FINDINGS: text" on one line vs header then blank line
    if layout in ("both", "findings"):
        parts.append(_section("FINDINGS", " ".join(findings), inline, rng))
    if layout == "impression":  # the only section must carry every mention, negations included
        stated = set(impression)
        impression = impression + [f for f in findings if f not in stated and f not in _NORMAL_FINDINGS]
    if layout in ("both", "impression"):
        parts.append(_section("IMPRESSION", " ".join(impression), inline, rng))
    if layout == "none":
        parts.append(_wrap(" ".join(findings + impression), rng))
    return "\n \n".join(parts) + "\n"


def _section(header: str, text: str, inline: bool, rng: np.random.Generator) -> str:
    if inline:
        return _wrap(f"{header}: {text}", rng)
    return f" {header}: \n \n{_wrap(text, rng)}"


def report_corpus(n: int, seed: int = 0) -> list[str]:
    """``n`` synthetic reports from sampled label vectors (e.g. to train a small WordPiece tokenizer)."""
    from medpeft.data.synthetic.findings import sample_chexpert_labels

    out = []
    for i in range(n):
        rng = np.random.default_rng((seed, 7919, i))
        labels = sample_chexpert_labels(rng)
        out.append(write_report(rng, labels, view=str(rng.choice(["PA", "AP"]))))
    return out
