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

from medpeft.a3tune.weak_labels.crops import masked_crop, masked_crops
from medpeft.a3tune.weak_labels.filters import FilterSettings, filter_masks, keep_mask
from medpeft.a3tune.weak_labels.pipeline import generate_weak_labels, label_one
from medpeft.a3tune.weak_labels.proposers import (
    PROPOSERS,
    AmgSettings,
    Mask,
    MaskProposer,
    RegionProposer,
    make_mask,
    make_proposer,
    mask_bbox,
)
from medpeft.a3tune.weak_labels.queries import build_query, clean_query, default_top_k, official_query
from medpeft.a3tune.weak_labels.samples import Sample, read_samples
from medpeft.a3tune.weak_labels.scoring import CropScorer, load_scorer, rank_crops, score_crops
from medpeft.a3tune.weak_labels.store import WeakLabels, load_weak_labels
from medpeft.a3tune.weak_labels.token_grid import to_token_grid

__all__ = [
    "PROPOSERS",
    "AmgSettings",
    "CropScorer",
    "FilterSettings",
    "Mask",
    "MaskProposer",
    "RegionProposer",
    "Sample",
    "WeakLabels",
    "build_query",
    "clean_query",
    "default_top_k",
    "filter_masks",
    "generate_weak_labels",
    "keep_mask",
    "label_one",
    "load_scorer",
    "load_weak_labels",
    "make_mask",
    "make_proposer",
    "mask_bbox",
    "masked_crop",
    "masked_crops",
    "official_query",
    "rank_crops",
    "read_samples",
    "score_crops",
    "to_token_grid",
]
