"""Stored masks ``[K, 256, 256]`` → a Llava model's image-token grid ``[K, g, g]`` (A3TUNE.md §A.4).

``mode="official"`` is the authors' nearest-neighbour chain, bit for bit: ``ToPILImage()`` →
``Resize(n_px=224, NEAREST)`` → ``CenterCrop(224)`` → ``Resize(g, NEAREST)`` → ``ToTensor()[0]`` (on
binary masks torchvision's float→PIL conversion and back is lossless). It is computed here as one gather
with the index maps PIL's NEAREST resize uses (read off PIL itself on an index ramp), for all K masks at once;
the tests compare it with the torchvision chain on random masks.

``mode="aligned"`` follows the *model's* image processor instead: the stored masks live on a squashed
256² copy of the original image, so they are first stretched back to the original aspect
(``image_size=(W, H)``), then put through the processor's geometry — ``"crop"`` (CLIP: shortest side to
``n_px``, centre crop, LLaVA-1.5 default), ``"pad"`` (LLaVA ``pad_to_square``: centred padding to a square,
then resize) or ``"resize"`` (squash) — with nearest-exact sampling, and each token gets the fraction of its
``n_px/g`` patch the mask covers (``threshold`` binarises it). ``processor`` (a CLIP/Llava image processor)
sets ``n_px`` and the geometry from its own ``size``/``crop_size``/``do_center_crop``/``do_pad``.
Grids: 24×24 for LLaVA-1.5-336, 16×16 for v1-224.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

GRID_MODES = ("official", "aligned")
GEOMETRIES = ("crop", "pad", "resize")


def pil_nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """The source index PIL's NEAREST resize takes for each of ``n_out`` outputs along an ``n_in`` axis."""
    from PIL import Image

    ramp = Image.fromarray(np.arange(n_in, dtype=np.float32)[None, :], mode="F")
    return np.asarray(ramp.resize((n_out, 1), Image.Resampling.NEAREST), dtype=np.float32)[0].astype(np.int64)


def _short_side_size(h: int, w: int, size: int) -> tuple[int, int]:
    """torchvision ``Resize(int)``: the shorter side becomes ``size``, the longer ``int(size * long / short)``."""
    if h <= w:
        return size, int(size * w / h)
    return int(size * h / w), size


def _official_axis(n: int, resized: int, n_px: int, grid: int) -> np.ndarray:
    first = pil_nearest_index(n, resized)
    start = int(round((resized - n_px) / 2.0))
    second = pil_nearest_index(n_px, grid)
    return first[start + second]


def official_grid(masks: np.ndarray, grid: int, n_px: int = 224) -> np.ndarray:
    """The authors' chain (module docstring) on ``[K, H, W]`` masks → float32 ``[K, grid, grid]``."""
    k, h, w = masks.shape
    rh, rw = _short_side_size(h, w, n_px)
    rows = _official_axis(h, rh, n_px, grid)
    cols = _official_axis(w, rw, n_px, grid)
    return (np.asarray(masks) != 0)[:, rows[:, None], cols[None, :]].astype(np.float32)


def processor_geometry(processor: Any) -> tuple[int, str]:
    """``(n_px, geometry)`` of a CLIP/Llava image processor."""
    size = dict(getattr(processor, "size", None) or {})
    crop = dict(getattr(processor, "crop_size", None) or {})
    if getattr(processor, "do_center_crop", False) and crop:
        n_px, geometry = int(crop.get("height") or crop.get("shortest_edge")), "crop"
    else:
        n_px = int(size.get("shortest_edge") or size.get("height"))
        geometry = "resize"
    if getattr(processor, "do_pad", False):
        geometry = "pad"
    return n_px, geometry


def aligned_grid(
    masks: np.ndarray, grid: int, n_px: int, image_size: tuple[int, int] | None, geometry: str
) -> np.ndarray:
    """Per-token mask coverage in the processor's frame (module docstring) → float32 ``[K, grid, grid]``."""
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    if n_px % grid:
        raise ValueError(f"n_px={n_px} is not a multiple of grid={grid}")
    x = torch.as_tensor(np.asarray(masks) != 0, dtype=torch.float32)[:, None]
    w0, h0 = image_size if image_size is not None else (x.shape[-1], x.shape[-2])
    if geometry == "resize":
        frame = F.interpolate(x, size=(n_px, n_px), mode="nearest-exact")
    elif geometry == "crop":
        rh, rw = _short_side_size(h0, w0, n_px)
        frame = F.interpolate(x, size=(rh, rw), mode="nearest-exact")
        top, left = int(round((rh - n_px) / 2.0)), int(round((rw - n_px) / 2.0))
        frame = frame[..., top : top + n_px, left : left + n_px]
    else:
        side = max(h0, w0)
        rh, rw = max(1, round(h0 * n_px / side)), max(1, round(w0 * n_px / side))
        inner = F.interpolate(x, size=(rh, rw), mode="nearest-exact")
        top, left = (n_px - rh) // 2, (n_px - rw) // 2
        frame = torch.zeros(x.shape[0], 1, n_px, n_px)
        frame[..., top : top + rh, left : left + rw] = inner
    return F.avg_pool2d(frame, n_px // grid)[:, 0].numpy()


def to_token_grid(
    masks: np.ndarray | torch.Tensor,
    grid: int = 24,
    *,
    mode: str = "aligned",
    n_px: int | None = None,
    image_size: tuple[int, int] | None = None,
    geometry: str = "crop",
    processor: Any = None,
    threshold: float | None = None,
) -> torch.Tensor:
    """Masks ``[K, H, W]`` → float ``[K, grid, grid]`` in the token raster order (see module docstring).

    ``official``: ``n_px`` defaults to the authors' 224 (also for LLaVA-1.5). ``aligned``: ``n_px`` from
    ``processor`` or else ``14 * grid`` (ViT-L/14: 336 for 24, 224 for 16); ``image_size`` is the original
    ``(width, height)`` of the image the masks were made from (default: the masks' own size).
    """
    arr = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if arr.ndim != 3:
        raise ValueError(f"masks must be [K, H, W], got shape {arr.shape}")
    if mode == "official":
        out = official_grid(arr, grid, n_px or 224)
    elif mode == "aligned":
        if processor is not None:
            n_px, geometry = processor_geometry(processor)
        out = aligned_grid(arr, grid, n_px or 14 * grid, image_size, geometry)
    else:
        raise ValueError(f"mode must be one of {GRID_MODES}, got {mode!r}")
    tensor = torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
    if threshold is not None:
        tensor = (tensor >= threshold).float()
    return tensor
