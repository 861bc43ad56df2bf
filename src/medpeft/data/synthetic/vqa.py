"""Questions a synthetic chest X-ray can answer: from its known finding and the lesion's drawn location.

Each image is normal or shows exactly ONE localised finding (so "What abnormality is seen?" has one
answer). Questions per image (answers follow from the truth, never from the pixels):

* abnormal, finding F at site S: "Is there a F?" -> yes; "Is there a G?" (G another finding) -> no;
  "What abnormality is seen?" -> F; "Where is the F?" -> S.
* normal: "Is there a G?" -> no; "Is this chest X-ray normal?" -> yes.

Closed answers are therefore exactly balanced (one yes and one no per image). The site is the lung the
lesion's mask lies in, in the patient's frame (radiographs show the patient's right on the image left):
"right lung", "left lung" or "both lungs".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medpeft.data.synthetic.cxr import RenderedCxr, render_frontal

#: Renderer finding -> the words a question uses. All are drawn as a local region with a mask.
VQA_FINDINGS: dict[str, str] = {
    "pneumothorax": "pneumothorax",
    "effusion": "pleural effusion",
    "nodule": "nodule",
    "mass": "mass",
    "consolidation": "consolidation",
}
NORMAL_RATE = 0.5


@dataclass(frozen=True)
class QA:
    """One question about an image, its answer and whether it is closed (yes/no) or open."""

    question: str
    answer: str
    closed: bool
    kind: str  # "presence" | "normal" | "abnormality" | "location"


@dataclass
class CxrCase:
    """A rendered image with its one finding (None: normal), the lesion mask and its site."""

    rendered: RenderedCxr
    finding: str | None
    mask: np.ndarray | None
    site: str | None


def lesion_site(mask: np.ndarray) -> str:
    """ "right lung" / "left lung" / "both lungs" from where the mask's pixels lie (patient's frame)."""
    width = mask.shape[1]
    cols = np.nonzero(mask.any(axis=0))[0]
    image_left, image_right = bool((cols < width / 2).any()), bool((cols >= width / 2).any())
    if image_left and image_right:
        left_share = float(mask[:, : width // 2].sum()) / float(mask.sum())
        if 0.1 < left_share < 0.9:
            return "both lungs"
        image_left = left_share >= 0.9
    return "right lung" if image_left else "left lung"


def sample_finding(rng: np.random.Generator) -> str | None:
    """None (normal) with probability ``NORMAL_RATE``, else one of ``VQA_FINDINGS`` uniformly."""
    return None if rng.random() < NORMAL_RATE else str(rng.choice(list(VQA_FINDINGS)))


def render_case(rng: np.random.Generator, size: int, finding: str | None) -> CxrCase:
    """A frontal radiograph showing ``finding`` (one of ``VQA_FINDINGS``), or a normal one for None."""
    for _ in range(8):  # a region can, rarely, fall outside the visible lung: draw again
        rendered = render_frontal(rng, size, size, {finding: 1.0} if finding else {})
        if finding is None:
            return CxrCase(rendered, None, None, None)
        mask = rendered.mask(finding)
        if mask.any():
            return CxrCase(rendered, finding, mask, lesion_site(mask))
    raise RuntimeError(f"could not draw a visible {finding} in 8 attempts")


def questions(case: CxrCase, rng: np.random.Generator, yes: str = "yes", no: str = "no") -> list[QA]:
    """The questions of the module docstring, answerable from ``case``'s truth."""
    others = [f for f in VQA_FINDINGS if f != case.finding]
    other = VQA_FINDINGS[str(rng.choice(others))]
    if case.finding is None:
        return [
            QA(f"Is there a {other} in this image?", no, True, "presence"),
            QA("Is this chest X-ray normal?", yes, True, "normal"),
        ]
    name = VQA_FINDINGS[case.finding]
    return [
        QA(f"Is there a {name} in this image?", yes, True, "presence"),
        QA(f"Is there a {other} in this image?", no, True, "presence"),
        QA("What abnormality is seen?", name, False, "abnormality"),
        QA(f"Where is the {name}?", str(case.site), False, "location"),
    ]


def image_splits(
    n: int, rng: np.random.Generator, names: tuple[str, ...], fractions: tuple[float, ...]
) -> list[str]:
    """A split name per image: a seeded permutation cut by ``fractions``, every split non-empty when n allows."""
    counts = [int(round(f * n)) for f in fractions]
    for i in range(1, len(counts)):  # evaluation splits get at least one image
        if n >= len(counts) and counts[i] == 0:
            counts[i] = 1
    counts[0] = n - sum(counts[1:])
    labels = [name for name, c in zip(names, counts, strict=True) for _ in range(c)]
    return [labels[j] for j in rng.permutation(n)]


def case_truth(case: CxrCase, mask_rel: str | None) -> dict:
    """The sidecar record of a case: its finding, site, lesion mask and boxes."""
    return {
        "finding": case.finding,
        "findings": case.rendered.findings,
        "site": case.site,
        "lesion_mask": mask_rel,
        "boxes": [
            {"finding": r.finding, "x": r.box[0], "y": r.box[1], "width": r.box[2], "height": r.box[3]}
            for r in case.rendered.regions
        ],
    }
