"""Masked crops (A3TUNE.md §A.3): the image with pixels outside the mask set to 0, cut to the mask's box.

The cut is ``image[y:y+h, x:x+w]`` with segment_anything's XYWH, exactly as the authors slice, so the
crop has the box's shape ``(h, w)`` (a degenerate box is widened to one pixel so a crop is never empty).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medpeft.a3tune.weak_labels.proposers import Mask


def masked_crop(image: np.ndarray, mask: Mask) -> np.ndarray:
    """One crop ``[h, w, C]`` (``uint8``) of ``image`` ``[H, W, C]``."""
    x, y, w, h = mask.bbox
    masked = image * mask.seg[..., None].astype(image.dtype)
    return np.ascontiguousarray(masked[y : y + max(h, 1), x : x + max(w, 1)])


def masked_crops(image: np.ndarray, masks: Sequence[Mask]) -> list[np.ndarray]:
    """One crop per mask, in order."""
    return [masked_crop(image, m) for m in masks]
