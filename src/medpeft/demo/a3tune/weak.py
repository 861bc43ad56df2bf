"""Weak labels for the adaptation split: ``regions`` (superpixel) proposals scored against each question.

The scorer is the ``tiny`` CLIP preset with random weights, so the ranking of the regions carries no
information about the question (measured: the top region rarely hits the lesion); the demo reports how
much of the weak masks overlaps the true lesions (``weak_label_hit_rate``) so this is visible, not hidden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PROPOSER = "regions"
SCORER = "tiny"


def weak_label_samples(prepared: Path, split: str) -> list[Any]:
    """The split's conversation samples as weak-label ``Sample`` rows (id, image, question, organ)."""
    from medpeft.a3tune.weak_labels.samples import Sample
    from medpeft.data.conversations import read_conversations

    path = prepared / f"{split}.jsonl"
    return [
        Sample(
            id=s.id,
            image=prepared / s.image,
            question=s.question,
            dataset=s.dataset,
            location=s.organ,
            modality=s.modality,
            row=i + 1,
            source=str(path),
        )  # fmt: skip
        for i, s in enumerate(read_conversations(path))
    ]


def make_weak_labels(prepared: Path, out: Path, top_k: int, seed: int, progress: bool) -> dict[str, Any]:
    """``medpeft weak-labels --proposer regions --scorer tiny`` on the train split; returns its summary."""
    from medpeft.a3tune.weak_labels.pipeline import generate_weak_labels

    return generate_weak_labels(
        weak_label_samples(prepared, "train"),
        out,
        proposer=PROPOSER,
        scorer=SCORER,
        top_k=top_k,
        seed=seed,
        progress=progress,
    )


def hit_rate(prepared: Path, weak: Path) -> dict[str, float | int]:
    """Share of the train samples with a true lesion whose first (best-scored) weak mask overlaps it, and the
    mean fraction of the union of weak masks that lies inside the lesion (both on the 256x256 frame)."""
    from PIL import Image

    from medpeft.data.conversations import read_conversations

    with np.load(weak / "masks.npz", allow_pickle=False) as store:
        masks = {k: store[k] for k in store.files}
    hits, inside, n = 0, [], 0
    for s in read_conversations(prepared / "train.jsonl"):
        if not s.lesion_mask or s.id not in masks or masks[s.id].shape[0] == 0:
            continue
        lesion = Image.open(prepared / s.lesion_mask).convert("L").resize((256, 256), Image.NEAREST)
        truth = np.asarray(lesion) > 127
        weak_masks = masks[s.id].astype(bool)
        n += 1
        hits += int((weak_masks[0] & truth).any())
        union = weak_masks.any(axis=0)
        inside.append(float((union & truth).sum() / max(int(union.sum()), 1)))
    return {
        "n_with_lesion": n,
        "top1_hit_rate": hits / n if n else float("nan"),
        "mean_inside_fraction": float(np.mean(inside)) if inside else float("nan"),
    }
