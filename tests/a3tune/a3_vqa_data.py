"""A tiny synthetic VQA set in the conversation-manifest format, with weak labels (not a test module).

Each image is dark with (or without) a bright square on the left or the right half; the questions' answers
follow from the image ("is there a square ?" → yes/no, "where is the square ?" → left/right) and the weak mask of
a sample is its square (stored 256² as ``medpeft weak-labels`` writes them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medpeft.a3tune.weak_labels.store import FORMAT, INDEX_FILE, MASKS_FILE, write_npz
from medpeft.data.conversations import make_sample, write_conversations
from medpeft.io import write_json

SIZE = 64


def square_box(side: str, rng: np.random.Generator, size: int = SIZE) -> tuple[int, int, int]:
    s = size // 4
    x0 = int(rng.integers(2, size // 2 - s - 1)) + (size // 2 if side == "right" else 0)
    y0 = int(rng.integers(2, size - s - 2))
    return x0, y0, s


def write_vqa(
    root: Path, n: dict[str, int], seed: int = 0, weak: bool = True, lesion: bool = False
) -> tuple[Path, Path | None]:
    """Write ``root/data/{split}.jsonl`` + images (+ ``root/weak`` weak labels of every split's samples)."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    (data / "images").mkdir(parents=True, exist_ok=True)
    masks: dict[str, np.ndarray] = {}
    for split, count in n.items():
        samples = []
        for i in range(count):
            sid = f"{split}-{i}"
            kind = i % 3  # 0: where (has square), 1: is there (yes), 2: is there (no)
            side = "left" if rng.random() < 0.5 else "right"
            img = np.full((SIZE, SIZE), 20, dtype=np.uint8)
            img += rng.integers(0, 10, size=img.shape, dtype=np.uint8)
            has = kind != 2
            mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
            if has:
                x0, y0, s = square_box(side, rng)
                img[y0 : y0 + s, x0 : x0 + s] = 230
                mask[y0 : y0 + s, x0 : x0 + s] = 1
            Image.fromarray(img).save(data / "images" / f"{sid}.png")
            extra = {}
            if lesion and has:
                Image.fromarray(mask * 255).save(data / "images" / f"{sid}_mask.png")
                extra["lesion_mask"] = f"images/{sid}_mask.png"
            if kind == 0:
                q, a, t = "where is the square ?", side, "open"
            else:
                q, a, t = "is there a square ?", "yes" if has else "no", "closed"
            samples.append(
                make_sample(sid, f"images/{sid}.png", q, a, t, split=split, dataset="synthetic", **extra)
            )
            if has:
                big = np.kron(mask, np.ones((256 // SIZE, 256 // SIZE), dtype=np.uint8))
                masks[sid] = big[None]
        write_conversations(data / f"{split}.jsonl", samples)
    if not weak:
        return data, None
    return data, write_weak(root / "weak", masks)


def write_weak(folder: Path, masks: dict[str, np.ndarray], size: int = 256) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_npz(folder / MASKS_FILE, masks)
    index = {
        "format": FORMAT,
        "settings": {"size": size},
        "samples": {k: {"k": int(v.shape[0])} for k, v in masks.items()},
    }
    write_json(folder / INDEX_FILE, index)
    return folder
