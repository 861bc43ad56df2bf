"""Heat maps of where the refined global image embedding draws from, over the patch grid.

With an image ACE-HGNN the [CLS] token's hyperedge is row 0 of the incidence matrix
(``hypergraph.incidence_matrix``): its top-k patches, softmax-weighted by the [CLS] attention scores.
Column 0 mirrors that row, so the same weights carry the patches' hyperedges back into the refined
global embedding; they are exactly what the adapted model looks at. Without an image HGNN (base model,
LoRA-only) the map is the last layer's [CLS] attention over the patches (softmax of the head-averaged
scores). Either way the map is [g, g] for the ViT's g×g patches, drawn over the centre crop the model saw.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medpeft.errors import ConfigError
from medpeft.evaluation.image_loader import (
    ImageInput,
    as_items,
    describe,
    make_loader,
    readable_batches,
)
from medpeft.evaluation.inference import inference_state
from medpeft.evaluation.options import InferenceOptions
from medpeft.io import check_out_dir


def patch_weights(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """[B, g, g] weights of the patches in the global embedding (rows sum to 1 over the patches for the
    attention map; the hypergraph map holds the k softmax weights and zeros)."""
    from medpeft.ace_lora.hypergraph import incidence_matrix

    out = model.image_features(pixel_values)
    hgnn = getattr(model, "image_hgnn", None)
    if hgnn is not None:
        weights = incidence_matrix(out.tokens, out.affinity, hgnn.top_k)[:, 0, 1:]
    else:
        weights = out.affinity.float().softmax(dim=-1)
    n = weights.shape[-1]
    g = math.isqrt(n)
    if g * g != n:
        raise ConfigError(
            f"{n} patch tokens do not form a square grid; heat maps need a square ViT patch grid"
        )
    return weights.reshape(-1, g, g).float()


def display_image(pixel_values: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """[3, H, W] model input -> [H, W, 3] in [0, 1] (undoing the backbone's normalisation), i.e. the crop
    the model saw."""
    array = pixel_values.detach().float().cpu().numpy().transpose(1, 2, 0).astype(np.float64)
    array = array * np.asarray(std, dtype=np.float64) + np.asarray(mean, dtype=np.float64)
    return np.clip(array, 0.0, 1.0)


def heatmap_file_names(items: Sequence[ImageInput]) -> list[str]:
    """``<stem>.png`` per image (``image_<i>.png`` for in-memory ones); a repeated stem gets ``_<i>``."""
    names: list[str] = []
    used: set[str] = set()
    for i, item in enumerate(items):
        stem = Path(item).stem if isinstance(item, (str, os.PathLike)) else f"image_{i:04d}"
        name = f"{stem}.png"
        if name in used:
            name = f"{stem}_{i}.png"
        used.add(name)
        names.append(name)
    return names


def save_heatmaps(
    model: Any,
    images: Sequence[ImageInput] | ImageInput,
    out_dir: str | os.PathLike,
    *,
    preprocess: Callable | None = None,
    titles: Sequence[str | None] | None = None,
    options: InferenceOptions | None = None,
    overwrite: bool = False,
    **option_overrides: Any,
) -> dict[str, Any]:
    """One overlay PNG per image in ``out_dir`` (``<stem>.png``). Returns ``{"files": [...], "skipped": [...]}``.

    Runs the image tower once more (the scoring path does not keep the incidence matrix); heat maps are
    for inspecting a few images, not for a whole test set.
    """
    from medpeft.evaluation.plots import save_overlay

    options = InferenceOptions.make(options or InferenceOptions(batch_size=16), **option_overrides)
    items = as_items(images)
    if titles is not None and len(titles) != len(items):
        raise ConfigError(f"{len(items)} images but {len(titles)} titles")
    preprocess = preprocess if preprocess is not None else model.backbone.preprocess
    out = Path(out_dir)
    names = heatmap_file_names(items)
    check_out_dir(out, may_reuse=overwrite, results=names, advice="use --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    dev = options.torch_device()
    loader = make_loader(
        items,
        preprocess,
        batch_size=options.batch_size,
        workers=options.workers,
        pin_memory=dev.type == "cuda",
    )
    mean, std = model.backbone.mean, model.backbone.std
    files: list[str] = []
    unreadable: list[tuple[int, str]] = []
    with inference_state(model, dev, options.merge_lora, options.compile):
        for batch in readable_batches(loader, options.on_bad_image, unreadable):
            pixels = batch.pixel_values.to(dev)
            maps = patch_weights(model, pixels).cpu().numpy()
            for row, index in enumerate(batch.indices):
                path = out / names[index]
                title = titles[index] if titles is not None else None
                save_overlay(display_image(batch.pixel_values[row], mean, std), maps[row], path, title=title)
                files.append(str(path))
    skipped = [{"image": describe(items[i], i), "reason": msg} for i, msg in unreadable]
    return {"files": files, "skipped": skipped}
