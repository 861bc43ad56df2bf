"""The dataset registry: ONE entry per dataset, read by every command, help text and default.

An entry names the dataset and its aliases, the module that prepares its raw layout, the module that
writes a synthetic copy of that layout, the synthetic defaults, and, for zero-shot evaluation sets, the
task, the label columns, the class names and the template set. Adding a dataset is adding an entry here
(and its two modules); nothing else keeps a list.

``kind`` says what ``prepare`` writes: ``"image-label"`` datasets get manifest CSVs (``manifest.py``),
``"vqa"`` and ``"report"`` datasets (A³Tune) get the conversation manifest (``conversations.py``).
``weak_label_k`` is A³Tune's default number of SAM mask crops kept per image (8 for VQA, 4 for reports).
"""

from __future__ import annotations

from dataclasses import dataclass

from medpeft.data.labels import CHEXPERT_5X200_CLASSES, LC25000_CLASSES, MHIST_CLASSES, NIH_LABELS
from medpeft.errors import ConfigError


@dataclass(frozen=True)
class ZeroShotSpec:
    """What zero-shot classification of a dataset needs (the templates by set name, see prompts.py)."""

    task: str  # "multiclass" | "binary" | "multilabel"
    label_keys: tuple[str, ...]
    class_names: tuple[str, ...]
    template_set: str


KINDS = ("image-label", "vqa", "report")
#: A³Tune's weak-label top-K by kind (A3TUNE.md: K = 8 for the VQA sets, 4 for report generation).
WEAK_LABEL_K = {"vqa": 8, "report": 4}


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    description: str
    preparer: str  # module under medpeft.data.prepare with build(ctx, **options)
    writer: str  # module under medpeft.data.synthetic with write(...)
    synth_n: int  # default synthetic size (images; per class for chexpert-5x200 and lc25000)
    synth_image_size: int  # default synthetic image height in pixels
    aliases: tuple[str, ...] = ()
    zero_shot: ZeroShotSpec | None = None
    kind: str = "image-label"  # "image-label" | "vqa" | "report" (see the module docstring)
    weak_label_k: int | None = None  # A³Tune's SAM top-K; None for image-label datasets

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"dataset {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def is_conversation(self) -> bool:
        """True for the A³Tune datasets that ``prepare`` writes as conversation manifests."""
        return self.kind in ("vqa", "report")


_CXR = "chest-xray"
_HISTO = "histopathology"

REGISTRY: dict[str, DatasetEntry] = {
    e.name: e
    for e in (
        DatasetEntry(
            "mimic-cxr", "MIMIC-CXR-JPG image-report pairs (training)", "mimic_cxr", "mimic_cxr", 64, 256,
            aliases=("mimic", "mimic-cxr-jpg"), weak_label_k=WEAK_LABEL_K["report"],
        ),
        DatasetEntry(
            "chexpert-5x200", "CheXpert 5x200 (5 findings, zero-shot)", "chexpert_5x200", "chexpert", 20, 256,
            aliases=("chexpert",),
            zero_shot=ZeroShotSpec("multiclass", CHEXPERT_5X200_CLASSES, CHEXPERT_5X200_CLASSES, _CXR),
        ),
        DatasetEntry(
            "rsna", "RSNA Pneumonia (binary; boxes for detection)", "rsna", "rsna", 64, 256,
            aliases=("rsna-pneumonia",),
            zero_shot=ZeroShotSpec("binary", ("0", "1"), ("No Finding", "pneumonia"), _CXR),
        ),
        DatasetEntry(
            "siim", "SIIM-ACR Pneumothorax (binary; masks for segmentation)", "siim", "siim", 64, 256,
            aliases=("siim-acr",),
            zero_shot=ZeroShotSpec("binary", ("0", "1"), ("No Finding", "pneumothorax"), _CXR),
        ),
        DatasetEntry(
            "nih-cxr14", "NIH ChestX-ray14 (14 findings, multi-label)", "nih_cxr14", "nih_cxr14", 64, 256,
            aliases=("nih", "chestx-ray14"),
            zero_shot=ZeroShotSpec(
                "multilabel", NIH_LABELS, tuple(key.replace("_", " ") for key in NIH_LABELS), _CXR
            ),
        ),
        DatasetEntry(
            "lc25000", "LC25000 lung and colon histopathology (5 classes)", "lc25000", "lc25000", 20, 256,
            zero_shot=ZeroShotSpec(
                "multiclass",
                LC25000_CLASSES,
                (
                    "lung adenocarcinoma",
                    "benign lung tissue",
                    "lung squamous cell carcinoma",
                    "colon adenocarcinoma",
                    "benign colonic tissue",
                ),
                _HISTO,
            ),
        ),
        DatasetEntry(
            "mhist", "MHIST colorectal polyps (HP vs SSA)", "mhist", "mhist", 64, 224,
            zero_shot=ZeroShotSpec(
                "binary", MHIST_CLASSES, ("hyperplastic polyp", "sessile serrated adenoma"), _HISTO
            ),
        ),
        DatasetEntry(
            "slake", "SLAKE 1.0 medical VQA (English subset)", "slake", "slake", 64, 256,
            aliases=("slake1.0", "slake-1.0"), kind="vqa", weak_label_k=WEAK_LABEL_K["vqa"],
        ),
        DatasetEntry(
            "vqa-rad", "VQA-RAD radiology VQA", "vqa_rad", "vqa_rad", 64, 256,
            aliases=("vqarad", "vqa_rad"), kind="vqa", weak_label_k=WEAK_LABEL_K["vqa"],
        ),
        DatasetEntry(
            "pathvqa", "PathVQA pathology VQA (parquet release)", "pathvqa", "pathvqa", 64, 224,
            aliases=("path-vqa", "pvqa"), kind="vqa", weak_label_k=WEAK_LABEL_K["vqa"],
        ),
        DatasetEntry(
            "iu-xray", "IU-Xray (Open-i) chest X-ray report generation", "iu_xray", "iu_xray", 64, 256,
            aliases=("iu", "openi", "indiana"), kind="report", weak_label_k=WEAK_LABEL_K["report"],
        ),
    )
}  # fmt: skip

#: Dataset names accepted by ``prepare``, ``eval`` and ``synth``, in registry order.
DATASETS: tuple[str, ...] = tuple(REGISTRY)
#: Other spellings users type (``synth chexpert`` writes CheXpert's ``train.csv`` layout).
DATASET_ALIASES: dict[str, str] = {alias: e.name for e in REGISTRY.values() for alias in e.aliases}
#: The datasets zero-shot evaluation supports.
ZERO_SHOT_DATASETS: tuple[str, ...] = tuple(n for n, e in REGISTRY.items() if e.zero_shot is not None)
#: The A³Tune conversation datasets (VQA and report generation), written as conversation manifests.
CONVERSATION_DATASETS: tuple[str, ...] = tuple(n for n, e in REGISTRY.items() if e.is_conversation)


def resolve_dataset(name: str) -> str:
    """The canonical dataset name for ``name`` (case-insensitive, aliases allowed); ``ConfigError`` names
    the valid choices, so a typo is one clear line on the CLI."""
    key = name.strip().lower().replace("_", "-")
    key = DATASET_ALIASES.get(key, key)
    if key not in REGISTRY:
        aliases = ", ".join(sorted(DATASET_ALIASES))
        raise ConfigError(
            f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)} (aliases: {aliases})"
        )
    return key


def dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of ``name`` (aliases allowed)."""
    return REGISTRY[resolve_dataset(name)]
