"""Mask proposers: one interface from an image to candidate masks, and the weight-free ``regions`` proposer.

A proposer maps an RGB ``uint8`` image ``[H, W, 3]`` to a list of :class:`Mask` at the image's own size.
Boxes follow segment_anything's XYWH convention exactly (``x, y`` = the first mask column/row,
``w = x_max - x``, ``h = y_max - y`` with ``x_max``/``y_max`` the *last* mask column/row), because the
authors' filters (``w <= 12``, ``x + w > 253``) and crops (``image[y:y+h, x:x+w]``) are written against it.

``make_proposer`` builds any of the three backends by name:

* ``"sam"``: segment_anything's ``SamAutomaticMaskGenerator`` (:mod:`.sam_proposer`);
* ``"hf-sam"``: transformers' ``SamModel`` with medpeft's own automatic-mask loop (:mod:`.hf_sam_proposer`);
* ``"regions"``: scikit-image felzenszwalb segments, deterministic and weight-free (this module), for
  synthetic data, tests and the demo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

PROPOSERS = ("sam", "hf-sam", "regions")


@dataclass(frozen=True)
class AmgSettings:
    """Automatic-mask-generation settings; the defaults are the authors' (A³Tune ``hyper_params_tuning``)."""

    points_per_side: int = 8
    points_per_batch: int = 128
    pred_iou_thresh: float = 0.5
    stability_score_thresh: float = 0.5
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.8
    crop_n_layers: int = 1
    crop_n_points_downscale_factor: int = 2
    crop_nms_thresh: float = 0.8
    crop_overlap_ratio: float = 512 / 1500
    min_mask_region_area: int = 200

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Mask:
    """One proposal: a boolean mask at the image's size, its SAM-convention XYWH box and quality scores."""

    seg: np.ndarray  # bool [H, W]
    bbox: tuple[int, int, int, int]  # XYWH, segment_anything convention (see module docstring)
    area: int
    predicted_iou: float = 1.0
    stability_score: float = 1.0


class MaskProposer(Protocol):
    """Anything with ``propose(image_rgb_uint8) -> list[Mask]`` and a ``describe()`` for the index."""

    def propose(self, image: np.ndarray) -> list[Mask]: ...

    def describe(self) -> dict[str, Any]: ...


def mask_bbox(seg: np.ndarray) -> tuple[int, int, int, int]:
    """segment_anything's XYWH box of a boolean mask (``[0, 0, 0, 0]`` for an empty one)."""
    rows = np.flatnonzero(seg.any(axis=1))
    cols = np.flatnonzero(seg.any(axis=0))
    if rows.size == 0:
        return (0, 0, 0, 0)
    x0, x1, y0, y1 = int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])
    return (x0, y0, x1 - x0, y1 - y0)


def make_mask(seg: np.ndarray, predicted_iou: float = 1.0, stability_score: float = 1.0) -> Mask:
    seg = np.asarray(seg, dtype=bool)
    return Mask(seg, mask_bbox(seg), int(seg.sum()), float(predicted_iou), float(stability_score))


def check_image(image: np.ndarray) -> np.ndarray:
    """The proposers' input contract: a ``uint8`` ``[H, W, 3]`` array."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")
    return image


class RegionProposer:
    """Weight-free proposals: every felzenszwalb segment at several scales (scikit-image), deterministic.

    Several scales give nested candidates of different sizes, as SAM's multimask output does. Segments
    smaller than ``min_area`` are dropped; duplicates across scales are kept once (first scale wins).
    """

    name = "regions"

    def __init__(
        self, scales: tuple[float, ...] = (50.0, 150.0, 400.0), sigma: float = 0.8, min_area: int = 200
    ) -> None:
        self.scales = tuple(float(s) for s in scales)
        self.sigma = float(sigma)
        self.min_area = int(min_area)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scales": list(self.scales),
            "sigma": self.sigma,
            "min_area": self.min_area,
        }

    def propose(self, image: np.ndarray) -> list[Mask]:
        from skimage.segmentation import felzenszwalb

        image = check_image(image)
        masks: list[Mask] = []
        seen: set[bytes] = set()
        for scale in self.scales:
            labels = felzenszwalb(image, scale=scale, sigma=self.sigma, min_size=max(1, self.min_area // 4))
            counts = np.bincount(labels.ravel())
            for label in np.flatnonzero(counts >= self.min_area):
                seg = labels == label
                key = np.packbits(seg).tobytes()
                if key in seen:
                    continue
                seen.add(key)
                masks.append(make_mask(seg))
        return masks
