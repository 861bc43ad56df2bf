"""Weak labels for the adaptation split: ``regions`` (superpixel) proposals scored against each question.

The scorer is ``medpeft demo``'s tiny CLIP (``scorer.py``), trained on whole captioned radiographs: like the
authors' BiomedCLIP it never saw these images, but unlike BiomedCLIP it never saw crops or question-style
text either, so its ranking of the regions is weak. The demo reports how much of the weak masks overlaps the
true lesions (``hit_rate``) so this is visible, not hidden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medpeft.demo.a3tune.true_masks import lesion_frame

PROPOSER = "regions"


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


def make_weak_labels(prepared: Path, out: Path, scorer: Path, top_k: int, seed: int,
                     progress: bool) -> dict[str, Any]:  # fmt: skip
    """``medpeft weak-labels --proposer regions --scorer FOLDER`` on the train split; returns its summary."""
    from medpeft.a3tune.weak_labels.pipeline import generate_weak_labels

    return generate_weak_labels(
        weak_label_samples(prepared, "train"),
        out,
        proposer=PROPOSER,
        scorer=str(scorer),
        top_k=top_k,
        seed=seed,
        progress=progress,
    )


def hit_rate(prepared: Path, weak: Path) -> dict[str, float | int]:
    """Share of the train samples with a true lesion whose first (best-scored) weak mask overlaps it, and the
    mean fraction of the union of weak masks that lies inside the lesion (both on the 256x256 frame)."""
    from medpeft.data.conversations import read_conversations

    with np.load(weak / "masks.npz", allow_pickle=False) as store:
        masks = {k: store[k] for k in store.files}
    hits, inside, n = 0, [], 0
    for s in read_conversations(prepared / "train.jsonl"):
        if not s.lesion_mask or s.id not in masks or masks[s.id].shape[0] == 0:
            continue
        truth = lesion_frame(prepared / s.lesion_mask)
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
