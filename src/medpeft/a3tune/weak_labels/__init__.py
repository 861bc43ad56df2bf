"""A³Tune (2/3): prompt-aware weak labels — SAM proposals refined by a CLIP-family model into top-K masks.

Pipeline (A3TUNE.md §A): proposals on the 256² squashed image (``sam``, ``hf-sam`` or the weight-free
``regions``) → the authors' filters → masked crops → ``100·cos`` against the query built from the question
→ top K per sample, stored in ``OUT/masks.npz`` + ``OUT/index.json`` → :func:`to_token_grid` onto a Llava
model's image-token grid (A³Tune 1/3's ``weak_masks``).

Python API::

    from medpeft.a3tune.weak_labels import (
        generate_weak_labels, load_weak_labels, make_proposer, load_scorer, read_samples, to_token_grid)
    samples = read_samples("vqa.csv")                      # id,image,question[,dataset,location]
    generate_weak_labels(samples, "wl/", proposer=make_proposer("regions"), scorer=load_scorer("tiny"),
                         dataset="slake", top_k=8, query="official")
    wl = load_weak_labels("wl/")
    wl.masks("q1")                                          # uint8 [K, 256, 256]
    to_token_grid(wl.masks("q1"), grid=16, mode="official")  # float [K, 16, 16]

Building blocks: ``official_query``/``clean_query``, ``filter_masks``, ``masked_crops``, ``score_crops``,
``rank_crops``. Command line: ``medpeft weak-labels --help``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "AmgSettings": "medpeft.a3tune.weak_labels.proposers",
    "CropScorer": "medpeft.a3tune.weak_labels.scoring",
    "FilterSettings": "medpeft.a3tune.weak_labels.filters",
    "Mask": "medpeft.a3tune.weak_labels.proposers",
    "MaskProposer": "medpeft.a3tune.weak_labels.proposers",
    "PROPOSERS": "medpeft.a3tune.weak_labels.proposers",
    "RegionProposer": "medpeft.a3tune.weak_labels.proposers",
    "Sample": "medpeft.a3tune.weak_labels.samples",
    "WeakLabels": "medpeft.a3tune.weak_labels.store",
    "build_query": "medpeft.a3tune.weak_labels.queries",
    "clean_query": "medpeft.a3tune.weak_labels.queries",
    "default_top_k": "medpeft.a3tune.weak_labels.queries",
    "filter_masks": "medpeft.a3tune.weak_labels.filters",
    "generate_weak_labels": "medpeft.a3tune.weak_labels.pipeline",
    "keep_mask": "medpeft.a3tune.weak_labels.filters",
    "label_one": "medpeft.a3tune.weak_labels.pipeline",
    "load_scorer": "medpeft.a3tune.weak_labels.scoring",
    "load_weak_labels": "medpeft.a3tune.weak_labels.store",
    "make_mask": "medpeft.a3tune.weak_labels.proposers",
    "make_proposer": "medpeft.a3tune.weak_labels.proposer_factory",
    "mask_bbox": "medpeft.a3tune.weak_labels.proposers",
    "masked_crop": "medpeft.a3tune.weak_labels.crops",
    "masked_crops": "medpeft.a3tune.weak_labels.crops",
    "official_query": "medpeft.a3tune.weak_labels.queries",
    "rank_crops": "medpeft.a3tune.weak_labels.scoring",
    "read_samples": "medpeft.a3tune.weak_labels.samples",
    "score_crops": "medpeft.a3tune.weak_labels.scoring",
    "to_token_grid": "medpeft.a3tune.weak_labels.token_grid",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medpeft.a3tune.weak_labels' has no attribute {name!r}")
