"""A PNG contact sheet: each row one image, then its top-K masks (tinted, box drawn, score written).

Drawn with PIL only (no display needed) and written atomically through :mod:`medpeft.io`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medpeft.a3tune.weak_labels.samples import Sample
from medpeft.a3tune.weak_labels.store import read_index, read_masks
from medpeft.io import write_bytes

PREVIEW_FILE = "preview.png"
TINT = np.array([255, 64, 32], dtype=np.float32)


def draw_row(image: np.ndarray, masks: np.ndarray, entry: dict, title: str, tile: int = 160) -> Any:
    from PIL import Image, ImageDraw

    k = masks.shape[0]
    row = Image.new("RGB", (tile * (k + 1), tile + 14), "white")
    draw = ImageDraw.Draw(row)
    scale = tile / image.shape[1]
    row.paste(Image.fromarray(image).resize((tile, tile)), (0, 14))
    draw.text((2, 1), title[:28], fill="black")
    for j in range(k):
        m = masks[j].astype(bool)[..., None]
        tinted = np.where(m, 0.55 * image + 0.45 * TINT, 0.6 * image).clip(0, 255).astype(np.uint8)
        x0 = tile * (j + 1)
        row.paste(Image.fromarray(tinted).resize((tile, tile)), (x0, 14))
        bx, by, bw, bh = entry["boxes"][j]
        draw.rectangle(
            [x0 + bx * scale, 14 + by * scale, x0 + (bx + bw) * scale, 14 + (by + bh) * scale], outline="red"
        )
        draw.text((x0 + 2, 1), f"#{j + 1} {entry['scores'][j]:.2f}", fill="black")
    return row


def write_preview(out: str | Path, items: Sequence[tuple[Sample, np.ndarray]], tile: int = 160) -> Path:
    """``out/preview.png`` for ``(sample, image)`` pairs already labelled in ``out``."""
    from PIL import Image

    out = Path(out)
    index = read_index(out) or {"samples": {}}
    ids = [s.id for s, _ in items]
    masks = read_masks(out, ids)
    rows = [draw_row(img, masks[s.id], index["samples"][s.id], s.id, tile) for s, img in items]
    width = max((r.width for r in rows), default=tile)
    sheet = Image.new("RGB", (width, sum(r.height for r in rows) or tile), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return write_bytes(out / PREVIEW_FILE, buf.getvalue())
