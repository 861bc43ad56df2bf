"""Heat-map overlays for the demo: where each model's global image embedding draws from.

Why: numbers alone do not show *what* adaptation changed. On held-out positives with known lesions
(SIIM pneumothorax masks, RSNA pneumonia boxes) the overlay puts the patch weights of
``evaluation.heatmap.patch_weights`` (ACE-HGNN's [CLS] hyperedge, or the [CLS] attention for models
without an image hypergraph) next to the drawn ground truth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

OVERLAY_DIR = "heatmaps"


def lesion_examples(prepared: Mapping[str, Path], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` positive test images with ground truth, alternating SIIM (mask) and RSNA (boxes)."""
    from medpeft.data.manifest import read_manifest

    pools: list[list[dict[str, Any]]] = []
    if "siim" in prepared:
        frame = read_manifest(prepared["siim"] / "test.csv")
        rows = frame[(frame["Pneumothorax"] == 1) & (frame["mask"] != "")]
        pools.append(
            [{"dataset": "siim", "image": Path(r.image), "mask": Path(r.mask)} for r in rows.itertuples()]
        )
    if "rsna" in prepared:
        frame = read_manifest(prepared["rsna"] / "test.csv")
        rows = frame[frame["Pneumonia"] == 1]
        pools.append(
            [{"dataset": "rsna", "image": Path(r.image), "boxes": list(r.boxes)} for r in rows.itertuples()]
        )
    chosen: list[dict[str, Any]] = []
    for i in range(n):
        for pool in pools:
            if len(chosen) < n and i < len(pool):
                chosen.append(pool[i])
    return chosen


@torch.no_grad()
def save_overlays(
    models: Mapping[str, Callable[[], Any]],
    examples: list[dict[str, Any]],
    out_dir: Path,
) -> list[Path]:
    """One PNG per example and model: ``<dataset>_<i>_<model>.png``. ``models`` builds each model lazily
    (LoRA is injected into its backbone in place, so the models cannot all be alive on one backbone)."""
    from PIL import Image

    from medpeft.evaluation.heatmap import display_image, patch_weights
    from medpeft.evaluation.plots import save_overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for name, build in models.items():
        model = build().eval()
        preprocess = model.backbone.preprocess
        for i, ex in enumerate(examples):
            pixels = preprocess(Image.open(ex["image"]).convert("RGB"))
            heat = patch_weights(model, pixels[None])[0].numpy()
            picture = display_image(pixels, model.backbone.mean, model.backbone.std)
            mask = None
            if "mask" in ex:
                mask = np.asarray(Image.open(ex["mask"]).convert("L").resize(picture.shape[1::-1])) > 127
            what = "pneumothorax mask" if "mask" in ex else "pneumonia boxes"
            path = out_dir / f"{ex['dataset']}_{i}_{name}.png"
            save_overlay(
                picture,
                heat,
                path,
                mask=mask,
                boxes={"ground truth": ex["boxes"]} if ex.get("boxes") else None,
                box_format="xywh",
                title=f"{name}: patch weights ({ex['dataset']} {what})",
            )
            files.append(path)
        del model
    return files
