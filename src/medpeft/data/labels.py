"""Label and dataset names shared by the readers, the synthetic writers and the evaluation.

One place for these strings so that a CSV column, a prompt and a manifest column never drift
apart by a typo ("Pleural Effusion" vs "Effusion").
"""

from __future__ import annotations

#: The 14 CheXpert observations in the column order of CheXpert's ``train.csv`` and of
#: MIMIC-CXR-JPG's ``mimic-cxr-2.0.0-chexpert.csv``; also the label columns of chest X-ray manifests.
CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: The five "competition" classes of CheXpert 5x200 (GLoRIA/MedCLIP zero-shot benchmark).
CHEXPERT_5X200_CLASSES: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)

#: The other CheXpert findings that must be 0 in a 5x200 row (besides the other four classes);
#: "No Finding" is not constrained.
CHEXPERT_5X200_EXCLUDED: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Lung Lesion",
    "Lung Opacity",
    "Pneumonia",
    "Pneumothorax",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: The 14 findings of NIH ChestX-ray14, spelled as in ``Data_Entry_2017.csv``'s ``Finding Labels``.
NIH_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)

#: What ``Finding Labels`` holds for an NIH image without any of the 14 findings.
NIH_NO_FINDING = "No Finding"

#: LC25000 class folders, in the order used for class indices.
LC25000_CLASSES: tuple[str, ...] = ("lung_aca", "lung_n", "lung_scc", "colon_aca", "colon_n")

#: The LC25000 parent folder of each class folder (under ``lung_colon_image_set/``).
LC25000_GROUPS: dict[str, str] = {
    "lung_aca": "lung_image_sets",
    "lung_n": "lung_image_sets",
    "lung_scc": "lung_image_sets",
    "colon_aca": "colon_image_sets",
    "colon_n": "colon_image_sets",
}

#: LC25000 file-name stem of each class ("lungaca1.jpeg", "colonn1.jpeg", ...).
LC25000_FILE_STEMS: dict[str, str] = {
    "lung_aca": "lungaca",
    "lung_n": "lungn",
    "lung_scc": "lungscc",
    "colon_aca": "colonca",
    "colon_n": "colonn",
}

#: MHIST's ``Majority Vote Label`` values: hyperplastic polyp, sessile serrated adenoma.
MHIST_CLASSES: tuple[str, ...] = ("HP", "SSA")
