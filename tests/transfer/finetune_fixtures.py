"""Tiny prepared SIIM/RSNA-style folders: grey noise images, a bright blob on positives, masks and boxes.

The blob is what the lesion is: easy enough for the tiny backbone to learn in seconds, so a test can
tell a trained head from an untrained one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = {"train": 0, "validate": 1, "test": 2}


def _image(
    rng: np.random.Generator, size: int, positive: bool
) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    yy, xx = np.mgrid[0:size, 0:size]
    base = rng.normal(90, 12, (size, size)) + 20 * np.sin(xx / size * np.pi)
    mask = np.zeros((size, size), dtype=bool)
    boxes: list[list[int]] = []
    if positive:
        rx, ry = rng.uniform(0.10, 0.18, 2) * size
        cx = rng.uniform(rx + 2, size - rx - 2)
        cy = rng.uniform(ry + 2, size - ry - 2)
        mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
        base = base + mask * 110
        ys, xs = np.nonzero(mask)
        boxes = [[int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]]
    return np.clip(base, 0, 255).astype(np.uint8), mask, boxes


def make_dataset(
    root: Path, *, n: dict[str, int] | None = None, size: int = 64, seed: int = 0, positive_rate: float = 0.6
) -> Path:
    """Write ``root/{train,validate,test}.csv`` with ``image``, ``mask``, ``boxes``, ``width``, ``height``."""
    n = n or {"train": 48, "validate": 16, "test": 16}
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for split, count in n.items():
        rng = np.random.default_rng((seed, SPLITS[split]))
        lines = ["image,mask,boxes,width,height"]
        for i in range(count):
            positive = i % 5 != 0 if positive_rate > 0.5 else i % 2 == 0
            img, mask, boxes = _image(rng, size, positive)
            name = f"{split}_{i:03d}"
            Image.fromarray(img, mode="L").save(root / "images" / f"{name}.png")
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(root / "masks" / f"{name}.png")
            lines.append(f'images/{name}.png,masks/{name}.png,"{json.dumps(boxes)}",{size},{size}')
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root
