"""Training-free localisation baseline: text-to-patch similarity maps, scored like the fine-tuned heads.

For each image the refined patch tokens of the (adapted) image encoder — ACE-HGNN output when the adapter
has one — are compared by cosine with the class prompt embedding ("pneumothorax", "pneumonia", through the
chest X-ray template ensemble). The map is thresholded into a mask (segmentation) or into one box per
8-connected component of above-threshold patches, scored by the component's highest similarity
(detection). Nothing is trained; the one free number, the threshold, is picked on the validation split
(the best of 24 quantiles of its similarities) unless given, and the test split is scored with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medpeft.errors import ConfigError
from medpeft.transfer.encoders import FrozenViTEncoder
from medpeft.transfer.finetune_data import (
    ManifestDataset,
    Normalise,
    load_rgb,
    overlay_indices,
    read_split,
    split_path,
)

log = logging.getLogger("medpeft.finetune")

DEFAULT_CLASS = {"segmentation": "pneumothorax", "detection": "pneumonia"}
QUANTILES = np.linspace(0.5, 0.995, 24)


@torch.no_grad()
def class_embedding(
    encoder: FrozenViTEncoder, class_name: str, templates: Sequence[str] | None = None
) -> torch.Tensor:
    """[D] prompt-ensemble embedding of ``class_name`` (templates default to the chest X-ray set)."""
    from medpeft.evaluation.prompts import CHEST_XRAY_TEMPLATES

    model = encoder.clip_model
    if model is None:
        raise ConfigError(f"--zero-shot-map needs a text tower; {encoder.name} is an image-only timm model")
    texts = [t.format(class_name) for t in (templates or CHEST_XRAY_TEMPLATES)]
    device = next(model.parameters()).device
    ids = model.backbone.tokenizer(texts).to(device)
    return model.encode_prompts(ids[None])[0].float()


@torch.no_grad()
def similarity_maps(
    encoder: FrozenViTEncoder, dataset: ManifestDataset, text: torch.Tensor, *, batch_size: int = 16
) -> torch.Tensor:
    """[N, g, g] cosine similarity of every patch token with ``text``, for every image of ``dataset``."""
    from torch.utils.data import DataLoader

    from medpeft.transfer.finetune_data import collate

    model = encoder.clip_model
    device = next(model.parameters()).device
    g = encoder.grid
    maps = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate):
        tokens = model.encode_image_tokens(batch["pixel_values"].to(device)).float()
        patches = tokens[:, tokens.shape[1] - g * g :]
        maps.append((patches @ text.to(device)).reshape(-1, g, g).cpu())
    return torch.cat(maps)


def mask_from_map(sim: torch.Tensor, threshold: float, size: int) -> torch.Tensor:
    """[N, g, g] similarities -> [N, size, size] 0/1 masks (bilinear upsampling, then the threshold)."""
    up = F.interpolate(sim[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return (up > threshold).float()


def components(binary: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a small 2-D boolean grid, each as an [K, 2] array of (row, col)."""
    seen = np.zeros_like(binary, dtype=bool)
    h, w = binary.shape
    found = []
    for r0, c0 in zip(*np.nonzero(binary), strict=True):
        if seen[r0, c0]:
            continue
        stack, cells = [(r0, c0)], []
        seen[r0, c0] = True
        while stack:
            r, c = stack.pop()
            cells.append((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < h and 0 <= cc < w and binary[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        stack.append((rr, cc))
        found.append(np.array(cells))
    return found


def boxes_from_map(sim: torch.Tensor, threshold: float, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[g, g] similarities -> (boxes [K, 4] xyxy in ``size``-pixel units, scores [K]): one per component."""
    grid = sim.numpy()
    g = grid.shape[0]
    cell = size / g
    boxes, scores = [], []
    for cells in components(grid > threshold):
        r, c = cells[:, 0], cells[:, 1]
        boxes.append([c.min() * cell, r.min() * cell, (c.max() + 1) * cell, (r.max() + 1) * cell])
        scores.append(float(grid[r, c].max()))
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(scores, dtype=torch.float32)


def _score(
    task: str, sim: torch.Tensor, dataset: ManifestDataset, threshold: float, mgca_compat: bool
) -> dict[str, Any]:
    if task == "segmentation":
        from medpeft.transfer.segmentation_metrics import DiceAccumulator

        acc = DiceAccumulator(threshold=0.5)
        for start in range(0, len(dataset), 64):  # masks are loaded in chunks: memory stays flat
            idx = range(start, min(start + 64, len(dataset)))
            truth = torch.stack([dataset[i]["mask"][0] for i in idx])
            acc.update(mask_from_map(sim[start : start + len(idx)], threshold, dataset.size), truth)
        return acc.compute() | {"threshold": float(threshold)}
    from medpeft.transfer.detection_metrics import detection_map

    preds, scores, truth = [], [], []
    for i in range(len(dataset)):
        boxes, s = boxes_from_map(sim[i], threshold, dataset.size)
        sx, sy = dataset.scale(i)
        preds.append(boxes / torch.tensor([sx, sy, sx, sy]))
        scores.append(s)
        truth.append(dataset.boxes_xyxy(i))
    return detection_map(preds, scores, truth, box_format="xyxy", mgca_compat=mgca_compat) | {
        "threshold": float(threshold)
    }


def _value(metrics: dict[str, Any], key: str) -> float:
    v = metrics.get(key)
    return float("-inf") if v is None else float(v)


def run_zero_shot_map(
    encoder: FrozenViTEncoder,
    task: str,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    class_name: str | None = None,
    threshold: float | None = None,
    mgca_compat: bool = False,
    selection_metric: str | None = None,
    batch_size: int = 16,
    overlays: int = 8,
    run_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score the similarity-map baseline on the test split; writes ``test_metrics.json`` and overlays."""
    from medpeft.io import write_json
    from medpeft.transfer.finetune_loop import TEST_METRICS, claim_out_dir

    if task not in DEFAULT_CLASS:
        raise ConfigError(f"unknown task {task!r}: use 'segmentation' or 'detection'")
    out = Path(out_dir)
    class_name = class_name or DEFAULT_CLASS[task]
    metric = selection_metric or ("dice_mgca" if task == "segmentation" else "map")
    config = {**(run_config or {}), "zero_shot_map": {"class_name": class_name, "threshold": threshold}}
    normalise = Normalise(encoder.mean, encoder.std)
    sets = {
        s: ManifestDataset(read_split(split_path(data_dir, s), task), task, encoder.image_size, normalise)
        for s in ("validate", "test")
    }
    text = class_embedding(encoder, class_name)
    # claimed once the inputs are known to be good, so a failed start leaves no folder behind
    claim_out_dir(out, config, resume=False)
    val_maps = similarity_maps(encoder, sets["validate"], text, batch_size=batch_size)
    search = []
    if threshold is None:
        candidates = sorted(
            {
                float(q)
                for q in torch.quantile(
                    val_maps.flatten().double(), torch.tensor(QUANTILES, dtype=torch.float64)
                )
            }
        )
        for t in candidates:
            m = _score(task, val_maps, sets["validate"], t, mgca_compat)
            search.append({"threshold": t, metric: m.get(metric)})
        best = max(search, key=lambda r: _value(r, metric))  # first of equals: the lowest threshold
        threshold = best["threshold"]
        log.info(
            "zero-shot map: threshold %.4f chosen on validation (%s %.4f)",
            threshold,
            metric,
            _value(best, metric),
        )
    val_metrics = _score(task, val_maps, sets["validate"], threshold, mgca_compat)
    test_maps = similarity_maps(encoder, sets["test"], text, batch_size=batch_size)
    metrics = _score(task, test_maps, sets["test"], threshold, mgca_compat)
    paths = _overlays(task, sets["test"], test_maps, threshold, out / "overlays", overlays)
    result = {
        "task": task,
        "method": "zero-shot text-to-patch similarity map",
        "split": "test",
        "class_name": class_name,
        "threshold": threshold,
        "threshold_search": search,
        "metrics": metrics,
        "validate": val_metrics,
        "config": config,
        "outputs": {"overlays": [str(p.relative_to(out)) for p in paths]},
    }
    write_json(out / TEST_METRICS, result)
    return result


def _overlays(
    task: str, dataset: ManifestDataset, maps: torch.Tensor, threshold: float, folder: Path, count: int
) -> list[Path]:
    from medpeft.evaluation.plots import save_overlay

    paths = []
    for i in overlay_indices(dataset, count):
        image = load_rgb(dataset.frame["image"].iat[i], dataset.size)
        name = Path(dataset.frame["image"].iat[i]).stem
        target = folder / f"{i:04d}_{name}.png"
        title = f"{name}: similarity map (threshold {threshold:.3f})"
        if task == "segmentation":
            mask = dataset[i]["mask"][0].numpy() > 0.5
            paths.append(save_overlay(image, maps[i].numpy(), target, mask=mask, title=title))
        else:
            sx, sy = dataset.scale(i)
            truth = dataset.boxes_xyxy(i) * torch.tensor([sx, sy, sx, sy])
            boxes, _ = boxes_from_map(maps[i], threshold, dataset.size)
            groups = {"ground truth": truth.tolist(), "predicted": boxes.tolist()}
            paths.append(save_overlay(image, maps[i].numpy(), target, boxes=groups, title=title))
    return paths
