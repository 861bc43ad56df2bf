"""What the demo's generalist is told about each pre-training image: its kind, and what looks abnormal where,
in a layperson's words.

Why lay words: the generalist stands in for a model that has seen many images with loose descriptions,
not radiology reports. ``"an abnormal chest x-ray: a dense patch, no hazy lungs"`` gives its image tower
a reason to see local lesions (so adaptation has features to build on). A fraction of mentions
(``named_fraction``) use the finding's name instead, so the text tower has met the words the zero-shot
prompts use: LoRA alone cannot adapt a model to a word it has never seen (its frozen token embedding
stays random; tried: the 5-class CheXpert set then stays at chance). Negated mentions are named too
("no pneumothorax"), as in PubMed captions: reports say "no pneumothorax" far more often than
"pneumothorax", and with names only in positive mentions the adapted models' SIIM AUROC swung between
0.25 and 0.68 over seeds 0-2. Captions with modality words only ("a chest x-ray") were tried first: the
tiny image tower then learns nothing about lesions in the time the demo has, and adaptation has nothing
to align.
"""

from __future__ import annotations

import numpy as np

from medpeft.data.synthetic.cxr import RenderedCxr

CXR_NOUNS: tuple[str, ...] = (
    "chest x-ray",
    "chest radiograph",
    "chest film",
    "radiograph of the chest",
    "x-ray image of the thorax",
)
HISTOLOGY_CAPTIONS: tuple[str, ...] = (
    "a histology tile",
    "an H&E stained tissue slide",
    "a microscopy image of tissue",
    "a histopathology image",
    "a stained tissue section under the microscope",
)
#: How a layperson would describe each drawn finding: what it looks like, never what it is called.
LAY_TERMS: dict[str, str] = {
    "consolidation": "a dense patch",
    "pneumonia": "a dense patch",
    "lung_opacity": "a faint patch",
    "infiltration": "faint spots",
    "nodule": "a small round spot",
    "mass": "a large round shadow",
    "edema": "hazy lungs",
    "atelectasis": "a thin white band",
    "effusion": "a white lung base",
    "pneumothorax": "a dark rim without lung markings",
    "cardiomegaly": "a large heart shadow",
    "enlarged_cardiomediastinum": "a wide central shadow",
    "pleural_thickening": "a band along the chest wall",
    "fracture": "an irregular rib",
}
#: The radiological name of each drawn finding, which a caption uses instead of the lay words for a
#: fraction of mentions (``named_fraction``): the generalist has met the words, loosely, as BiomedCLIP
#: has met them in PubMed captions, without being taught the reports' vocabulary and negations.
NAMES: dict[str, str] = {
    "consolidation": "consolidation",
    "pneumonia": "pneumonia",
    "lung_opacity": "lung opacity",
    "infiltration": "infiltration",
    "nodule": "nodule",
    "mass": "mass",
    "edema": "edema",
    "atelectasis": "atelectasis",
    "effusion": "pleural effusion",
    "pneumothorax": "pneumothorax",
    "cardiomegaly": "cardiomegaly",
    "enlarged_cardiomediastinum": "enlarged cardiomediastinum",
    "pleural_thickening": "pleural thickening",
    "fracture": "fracture",
}
#: Lay terms whose absence a caption may state ("no dense patch"), so the text tower learns negation
#: (it does not change the caption's meaning label).
NEGATABLE: tuple[str, ...] = (
    "a dense patch",
    "a small round spot",
    "hazy lungs",
    "a thin white band",
    "a white lung base",
    "a dark rim without lung markings",
    "a large heart shadow",
)
#: At most this many things are described per image (keeps captions short and the text tower cheap).
MAX_PHRASES = 3


#: The name a negated lay term takes when a negation is worded with the finding's name ("no pneumothorax").
#: "a dense patch" draws both consolidation and pneumonia; its absence is worded "no consolidation".
_NAME_OF: dict[str, str] = {
    lay: NAMES[f] for f, lay in LAY_TERMS.items() if lay in NEGATABLE and f != "pneumonia"
}


def _bare(phrase: str) -> str:
    """ "a dense patch" -> "dense patch" (for "no dense patch")."""
    return phrase.removeprefix("an ").removeprefix("a ")


def cxr_caption(
    rng: np.random.Generator, picture: RenderedCxr, named_fraction: float = 0.0
) -> tuple[str, str]:
    """(caption, meaning): the kind of radiograph and, for frontal ones, lay words for what is drawn.

    The meaning (view + the set of lay terms) is what the contrastive loss compares: captions worded
    differently but saying the same thing are not pushed apart.
    """
    noun = str(rng.choice(CXR_NOUNS))
    if picture.view == "lateral":
        return f"a lateral {noun}", "lateral"
    terms = sorted({LAY_TERMS[f] for f in picture.findings if f in LAY_TERMS})
    devices = "support_devices" in picture.findings
    tail = " with tubes and wires" if devices else ""
    shown = [terms[i] for i in rng.permutation(len(terms))[:MAX_PHRASES]]
    if named_fraction > 0:
        names = {LAY_TERMS[f]: NAMES[f] for f in picture.findings if f in LAY_TERMS}
        worded = [names[t] if rng.random() < named_fraction else t for t in shown]
    else:
        worded = shown
    absent = [t for t in NEGATABLE if t not in terms]
    negated = [
        f"no {_bare(_NAME_OF[t] if named_fraction > 0 and rng.random() < named_fraction else t)}"
        for t in (absent[i] for i in rng.permutation(len(absent))[: int(rng.integers(0, 3))])
    ]
    phrases = worded + negated
    listed = "" if not phrases else ": " + ", ".join(phrases)
    if not shown:
        return f"a normal {noun}{tail}{listed}", f"normal{tail}"
    return f"an abnormal {noun}{tail}{listed}", f"abnormal{tail}: " + ", ".join(sorted(shown))


def histology_caption(rng: np.random.Generator) -> tuple[str, str]:
    return str(rng.choice(HISTOLOGY_CAPTIONS)), "histology"
