"""Raster primitives shared by the synthetic renderers: smooth noise, blur, soft shapes, boxes.

Pure numpy + PIL (no scipy), vectorised over the whole image, because every synthetic image is
drawn from these and ``synth`` must write dozens of images per second on a laptop CPU.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised pixel-centre coordinates ``(u, v)`` in [0, 1] (u across, v down), float32."""
    u = (np.arange(width, dtype=np.float32) + 0.5) / width
    v = (np.arange(height, dtype=np.float32) + 0.5) / height
    return np.broadcast_to(u[None, :], (height, width)), np.broadcast_to(v[:, None], (height, width))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function (via tanh: bounded, no overflow); used for soft, anti-aliased region edges."""
    return 0.5 + 0.5 * np.tanh(0.5 * np.asarray(x, dtype=np.float32))


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: float) -> np.ndarray:
    """Zero-mean, unit-ish smooth noise with about ``cells`` blobs across the larger side.

    Drawn at low resolution and upsampled bicubically, which is far cheaper than blurring.
    """
    scale = max(height, width) / max(cells, 1.0)
    gh, gw = max(2, int(np.ceil(height / scale)) + 2), max(2, int(np.ceil(width / scale)) + 2)
    low = rng.standard_normal((gh, gw)).astype(np.float32)
    up = Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(up, dtype=np.float32)


def box_blur(a: np.ndarray, radius: int, passes: int = 2) -> np.ndarray:
    """Separable box blur by cumulative sums (``passes`` boxes approximate a Gaussian)."""
    if radius < 1:
        return a.astype(np.float32, copy=True)
    out = a.astype(np.float32, copy=True)
    k = 2 * radius + 1
    for _ in range(passes):
        for axis in (0, 1):
            pad = [(0, 0), (0, 0)]
            pad[axis] = (radius + 1, radius)
            c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis, dtype=np.float32)
            if axis == 0:
                out = (c[k:, :] - c[:-k, :]) / k
            else:
                out = (c[:, k:] - c[:, :-k]) / k
    return out


def ellipse_field(
    u: np.ndarray, v: np.ndarray, cx: float, cy: float, rx: float, ry: float, angle: float = 0.0
) -> np.ndarray:
    """Normalised elliptical radius: < 1 inside the ellipse, 1 on its edge (angle in radians)."""
    du, dv = u - cx, v - cy
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        du, dv = c * du + s * dv, -s * du + c * dv
    return np.sqrt((du / rx) ** 2 + (dv / ry) ** 2)


def soft_ellipse(
    u: np.ndarray, v: np.ndarray, cx: float, cy: float, rx: float, ry: float, edge: float, angle: float = 0.0
) -> np.ndarray:
    """Anti-aliased filled ellipse in [0, 1]; ``edge`` is the edge width in normalised units."""
    r = ellipse_field(u, v, cx, cy, rx, ry, angle)
    return sigmoid((1.0 - r) * min(rx, ry) / max(edge, 1e-6))


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight ``(x, y, width, height)`` pixel box of a boolean mask, or None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    y0, y1 = int(rows[0]), int(rows[-1])
    x0, x1 = int(cols[0]), int(cols[-1])
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1
