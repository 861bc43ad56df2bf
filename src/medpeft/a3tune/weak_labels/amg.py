"""Automatic-mask-generation geometry and clean-up, as segment_anything defines them, for the ``hf-sam`` loop.

transformers' mask-generation pipeline cannot run the authors' settings (one crop layer with point
downscale 2 crashes it, and it has no per-crop NMS or small-region clean-up), so medpeft drives
``SamModel`` itself. These helpers reproduce segment_anything 1.0's ``utils/amg.py`` semantics (crop boxes,
point grids, stability score, crop-edge test, hole/island removal) on torch/numpy/scipy primitives; the
tests check them against segment_anything and transformers where those define the same quantity.
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import torch


def crop_boxes(
    im_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """XYXY crop boxes and their layer index: the whole image, then ``(2**(i+1))**2`` overlapping crops per
    layer ``i`` (segment_anything ``generate_crop_boxes``)."""
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes, layers = [[0, 0, im_w, im_h]], [0]
    for i_layer in range(n_layers):
        n = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n))
        crop_w = int(math.ceil((overlap * (n - 1) + im_w) / n))
        crop_h = int(math.ceil((overlap * (n - 1) + im_h) / n))
        xs = [int((crop_w - overlap) * i) for i in range(n)]
        ys = [int((crop_h - overlap) * i) for i in range(n)]
        for x0, y0 in product(xs, ys):
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layers.append(i_layer + 1)
    return boxes, layers


def point_grid(n_per_side: int) -> np.ndarray:
    """``n**2`` points evenly spaced in [0, 1]², x varying fastest (segment_anything ``build_point_grid``)."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def layer_point_grids(n_per_side: int, n_layers: int, downscale: int) -> list[np.ndarray]:
    """One grid per crop layer, ``int(n / downscale**i)`` points per side in layer ``i``."""
    return [point_grid(int(n_per_side / (downscale**i))) for i in range(n_layers + 1)]


def stability_score(logits: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """IoU of the masks thresholded at ``threshold ± offset`` (one always contains the other)."""
    inter = (logits > (mask_threshold + offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    union = (logits > (mask_threshold - offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    return inter / union


def boxes_xyxy(masks: torch.Tensor) -> torch.Tensor:
    """Inclusive XYXY boxes of non-empty boolean masks ``[N, H, W]`` (torchvision ``masks_to_boxes``)."""
    from torchvision.ops import masks_to_boxes

    if masks.shape[0] == 0:
        return torch.zeros(0, 4, device=masks.device)
    return masks_to_boxes(masks).round().to(torch.int64)


def near_crop_edge(
    boxes: torch.Tensor, crop_box: list[int], orig_box: list[int], atol: float = 20.0
) -> torch.Tensor:
    """Boxes (crop frame) within ``atol`` of a crop edge that is not also an image edge."""
    crop = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    orig = torch.as_tensor(orig_box, dtype=torch.float, device=boxes.device)
    x0, y0 = crop_box[0], crop_box[1]
    shifted = (boxes + torch.tensor([[x0, y0, x0, y0]], device=boxes.device)).float()
    near_crop = torch.isclose(shifted, crop[None, :], atol=atol, rtol=0)
    near_image = torch.isclose(shifted, orig[None, :], atol=atol, rtol=0)
    return torch.any(near_crop & ~near_image, dim=1)


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) smaller than ``area_thresh``, with
    8-connectivity; returns the mask and whether it changed (segment_anything semantics, scipy labelling)."""
    from scipy import ndimage

    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    holes = mode == "holes"
    working = holes ^ mask
    regions, n_labels = ndimage.label(working, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(regions.ravel(), minlength=n_labels + 1)[1:]
    small = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small:
        return mask, False
    fill = [0, *small]
    if not holes:
        fill = [i for i in range(n_labels + 1) if i not in fill]
        if not fill:
            fill = [int(np.argmax(sizes)) + 1]
    return np.isin(regions, fill), True
