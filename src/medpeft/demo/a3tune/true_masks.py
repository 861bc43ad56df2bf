"""A weak-label folder made of the TRUE lesion masks: the demo's reference for what A³Tune does with perfect labels.

The synthetic data know where each lesion is, so the demo can also train A³Tune on a store where every
training question about an image with a lesion gets that lesion's mask (K = 1) and the other questions get
none (no alignment term, as a sample without weak labels). It separates the two halves of the method: how
well the attention follows its supervision, and how good the weak labels are. Same format and frame (256²)
as ``medpeft weak-labels`` writes, so ``train_a3tune`` reads it unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medpeft.a3tune.weak_labels.proposers import mask_bbox
from medpeft.a3tune.weak_labels.store import FORMAT, write_store

FRAME = 256
SOURCE = "true lesion masks"


def lesion_frame(path: Path, size: int = FRAME) -> np.ndarray:
    """A lesion mask PNG as ``bool [size, size]`` (nearest-neighbour squash, the weak labels' frame)."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("L").resize((size, size), Image.Resampling.NEAREST)) > 127


def write_true_mask_labels(prepared: Path, out: Path, split: str = "train") -> Path:
    """Write ``out/masks.npz`` + ``out/index.json`` from the lesion masks of ``prepared``'s ``split``."""
    from medpeft.data.conversations import read_conversations

    arrays: dict[str, np.ndarray] = {}
    entries: dict[str, dict] = {}
    for sample in read_conversations(prepared / f"{split}.jsonl"):
        if not sample.lesion_mask:
            continue
        seg = lesion_frame(prepared / sample.lesion_mask)
        arrays[sample.id] = seg[None].astype(np.uint8)
        entries[sample.id] = {"k": 1, "boxes": [list(mask_bbox(seg))], "areas": [int(seg.sum())],
                              "query": sample.question}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    index = {"format": FORMAT, "settings": {"source": SOURCE, "size": FRAME, "split": split},
             "samples": entries, "n_skipped": 0, "skipped": [], "complete": True}  # fmt: skip
    write_store(out, index, arrays)
    return out
