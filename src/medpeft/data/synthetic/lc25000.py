"""Synthetic LC25000 (lung and colon histopathology, five classes by folder).

Layout written (under ``out``)::

    lung_colon_image_set/lung_image_sets/{lung_aca,lung_n,lung_scc}/{lungaca,lungn,lungscc}{i}.jpeg
    lung_colon_image_set/colon_image_sets/{colon_aca,colon_n}/{colonca,colonn}{i}.jpeg

(768x768 RGB JPEGs in the real data, ``image_size`` here; ``i`` counts from 1 per class.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from medpeft.data.labels import LC25000_CLASSES, LC25000_FILE_STEMS, LC25000_GROUPS
from medpeft.data.synthetic.output import Advance, image_rng
from medpeft.data.synthetic.pathology import render_lc25000

STREAM = 6
ROOT = "lung_colon_image_set"


def total_images(n: int) -> int:
    """Number of JPEG files for ``n`` images per class."""
    return n * len(LC25000_CLASSES)


def write(out: Path, n: int, seed: int, image_size: int, advance: Advance) -> dict[str, Any]:
    """Write ``n`` tiles per class."""
    truth: dict[str, Any] = {}
    for c, klass in enumerate(LC25000_CLASSES):
        folder = out / ROOT / LC25000_GROUPS[klass] / klass
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            rng = image_rng(seed, STREAM, c * 1_000_000 + i)
            name = f"{LC25000_FILE_STEMS[klass]}{i}.jpeg"
            Image.fromarray(render_lc25000(rng, klass, image_size)).save(folder / name, quality=92)
            advance(1)
            rel = f"{ROOT}/{LC25000_GROUPS[klass]}/{klass}/{name}"
            truth[rel] = {"id": name, "labels": {"class": klass}, "boxes": [], "mask": None}
    return {
        "counts": {"images": n * len(LC25000_CLASSES), **{k: n for k in LC25000_CLASSES}},
        "paths": {"images": ROOT},
        "truth": truth,
    }
