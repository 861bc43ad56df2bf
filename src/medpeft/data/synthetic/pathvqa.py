"""Synthetic PathVQA in its public parquet release (Hugging Face ``flaviagiammarino/path-vqa``).

Layout written (under ``out``)::

    data/train-00000-of-00001.parquet        columns image {bytes, path}, question, answer
    data/validation-00000-of-00001.parquet
    data/test-00000-of-00001.parquet

Images are LC25000-like tiles (``pathology.render_lc25000``) embedded as JPEG bytes in every row, as the
release does; the image's class answers its questions: "Is this <organ> tissue?" yes, "Is this <other
organ> tissue?" no (closed, balanced), "What organ is this tissue from?" and "What does this image show?"
(open). Images are split 70/15/15. No pickles are written: the real pickles are never read.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from medpeft.data.labels import LC25000_CLASSES
from medpeft.data.synthetic.output import Advance, image_rng
from medpeft.data.synthetic.pathology import render_lc25000
from medpeft.data.synthetic.vqa import image_splits

STREAM = 10
SPLITS = {"train": "train", "validate": "validation", "test": "test"}
SHOWS = {
    "lung_aca": "lung adenocarcinoma",
    "lung_n": "benign lung tissue",
    "lung_scc": "lung squamous cell carcinoma",
    "colon_aca": "colon adenocarcinoma",
    "colon_n": "benign colonic tissue",
}


def total_images(n: int) -> int:
    """Number of distinct images for ``n`` (exactly ``n``)."""
    return n


def qa_pairs(klass: str) -> list[tuple[str, str]]:
    """The questions a tile of LC25000 class ``klass`` answers (see the module docstring)."""
    organ = klass.split("_")[0]
    other = "colon" if organ == "lung" else "lung"
    return [
        (f"Is this {organ} tissue?", "yes"),
        (f"Is this {other} tissue?", "no"),
        ("What organ is this tissue from?", organ),
        ("What does this image show?", SHOWS[klass]),
    ]


def write(out: Path, n: int, seed: int, image_size: int, advance: Advance) -> dict[str, Any]:
    """Write ``n`` tiles and their questions as the three parquet files."""
    plan = image_rng(seed, STREAM, -1)
    splits = image_splits(n, plan, tuple(SPLITS), (0.7, 0.15, 0.15))
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    truth: dict[str, Any] = {}
    for index in range(n):
        rng = image_rng(seed, STREAM, index)
        klass = str(rng.choice(LC25000_CLASSES))
        buffer = io.BytesIO()
        Image.fromarray(render_lc25000(rng, klass, image_size)).save(buffer, format="JPEG", quality=92)
        advance(1)
        name = f"{SPLITS[splits[index]]}_{index:05d}.jpg"
        for question, answer in qa_pairs(klass):
            rows[splits[index]].append(
                {"image": {"bytes": buffer.getvalue(), "path": name}, "question": question, "answer": answer}
            )
        truth[name] = {"id": name, "split": splits[index], "class": klass, "lesion_mask": None}
    (out / "data").mkdir(parents=True, exist_ok=True)
    for split, hf in SPLITS.items():
        frame = pd.DataFrame(rows[split], columns=["image", "question", "answer"])
        frame.to_parquet(out / "data" / f"{hf}-00000-of-00001.parquet", index=False, engine="pyarrow")
    return {
        "counts": {"images": n, "questions": sum(len(r) for r in rows.values())}
        | {f"{s}_images": splits.count(s) for s in SPLITS},
        "paths": {s: f"data/{hf}-00000-of-00001.parquet" for s, hf in SPLITS.items()},
        "truth": truth,
    }
