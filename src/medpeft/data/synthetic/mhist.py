"""Synthetic MHIST (colorectal polyps: hyperplastic polyp vs sessile serrated adenoma).

Layout written (under ``out``)::

    annotations.csv   Image Name,Majority Vote Label,Number of Annotators who Selected SSA (Out of 7),Partition
    images/MHIST_{code}.png     (224x224 RGB in the real data, ``image_size`` here)

About 70 % HP as in the real set; the annotator count agrees with the majority label (4-7 for
SSA, 0-3 for HP); Partition is train (about 70 %) or test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from medpeft.data.synthetic.output import Advance, image_rng
from medpeft.data.synthetic.pathology import render_mhist

STREAM = 7
COLUMNS = [
    "Image Name",
    "Majority Vote Label",
    "Number of Annotators who Selected SSA (Out of 7)",
    "Partition",
]


def total_images(n: int) -> int:
    """Number of PNG files for ``n`` images."""
    return n


def _code(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[(i // 676) % 26] + letters[(i // 26) % 26] + letters[i % 26]


def write(out: Path, n: int, seed: int, image_size: int, advance: Advance) -> dict[str, Any]:
    """Write ``n`` tiles and ``annotations.csv``."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    truth: dict[str, Any] = {}
    for i in range(n):
        rng = image_rng(seed, STREAM, i)
        label = "SSA" if rng.random() < 0.3 else "HP"
        votes = int(rng.integers(4, 8)) if label == "SSA" else int(rng.integers(0, 4))
        partition = "train" if rng.random() < 0.7 else "test"
        name = f"MHIST_{_code(i)}.png"
        Image.fromarray(render_mhist(rng, label, image_size)).save(out / "images" / name)
        advance(1)
        rows.append(dict(zip(COLUMNS, [name, label, votes, partition], strict=True)))
        truth[f"images/{name}"] = {
            "id": name,
            "labels": {"Majority Vote Label": label},
            "boxes": [],
            "mask": None,
        }
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.to_csv(out / "annotations.csv", index=False)
    return {
        "counts": {
            "images": n,
            **{k: int(v) for k, v in sorted(frame["Majority Vote Label"].value_counts().items())},
            **{k: int(v) for k, v in sorted(frame["Partition"].value_counts().items())},
        },
        "paths": {"annotations_csv": "annotations.csv", "images": "images"},
        "truth": truth,
    }
