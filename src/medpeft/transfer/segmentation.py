"""Pneumothorax segmentation (SIIM-ACR protocol of MGCA) on a frozen, adapted ViT.

Frozen encoder -> feature maps of blocks 3/6/9/12 (four evenly spaced blocks of any depth) -> the
progressive-upsampling decoder of ``segmentation_decoder`` at the encoder's image size (224 px for
BiomedCLIP). Trained with MGCA's ``10·focal − log(soft Dice)``; scored with MGCA's Dice (empty masks
predicted empty score 1) and with the plain foreground Dice; the best decoder on validation is kept.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medpeft.errors import ConfigError
from medpeft.transfer.encoders import FrozenViTEncoder
from medpeft.transfer.finetune_data import (
    ManifestDataset,
    Normalise,
    load_rgb,
    load_task_splits,
    overlay_indices,
    unwrap,
)
from medpeft.transfer.segmentation_decoder import ProgressiveDecoder, SegmentationModel

SELECTION_METRICS = ("dice_mgca", "dice_foreground")


def build_segmentation_model(
    encoder: FrozenViTEncoder, *, width: int = 256, seed: int = 0
) -> SegmentationModel:
    """Decoder initialised from ``seed`` alone (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        decoder = ProgressiveDecoder(encoder.channels, len(encoder.blocks), encoder.patch_size, width=width)
    return SegmentationModel(encoder, decoder)


class SegmentationTask:
    """Datasets, loss, prediction and scoring of the segmentation protocol (see ``finetune_loop``)."""

    name = "segmentation"

    def __init__(
        self,
        encoder: FrozenViTEncoder,
        data_dir: str | Path,
        *,
        fraction: float | None = None,
        decoder_width: int = 256,
        threshold: float = 0.5,
        selection_metric: str = "dice_mgca",
        augment: bool = False,
        seed: int = 0,
        overlays: int = 8,
    ) -> None:
        if selection_metric not in SELECTION_METRICS:
            raise ConfigError(f"--select-by must be one of {SELECTION_METRICS}, got {selection_metric!r}")
        if not 0.0 <= threshold < 1.0:
            raise ConfigError(f"--threshold must be in [0, 1), got {threshold}")
        self.encoder = encoder
        self.selection_metric = selection_metric
        self.threshold = float(threshold)
        self.overlays = int(overlays)
        self.normalise = Normalise(encoder.mean, encoder.std)
        splits = load_task_splits(
            data_dir, "segmentation", fraction, encoder.image_size, self.normalise, augment=augment, seed=seed
        )
        self.manifests = splits.manifests
        self.train_set, self.val_set, self.test_set = splits.train, splits.validate, splits.test
        self.model: nn.Module = build_segmentation_model(encoder, width=decoder_width, seed=seed)

    def describe(self) -> dict[str, Any]:
        decoder = unwrap(self.model).decoder
        return {
            "task": self.name,
            "manifests": {k: str(v) for k, v in self.manifests.items()},
            "sizes": {"train": len(self.train_set), "validate": len(self.val_set), "test": len(self.test_set)},
            "decoder": {"type": "progressive (UNETR/SETR-PUP)", "channels": decoder.channels,
                        "level_strides": [2**k for k in decoder.level_k],
                        "parameters": sum(p.numel() for p in decoder.parameters())},
            "threshold": self.threshold,
            "selection_metric": self.selection_metric,
        }  # fmt: skip

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        from medpeft.transfer.segmentation_metrics import focal_dice_loss

        logits = model(batch["pixel_values"])
        return focal_dice_loss(logits.float(), batch["mask"])

    def predict(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        from medpeft.transfer.segmentation_metrics import dice_statistics

        probs = torch.sigmoid(model(batch["pixel_values"]).float())
        stats = dice_statistics(probs, batch["mask"], threshold=self.threshold)
        return [{"index": int(i), "stats": s} for i, s in zip(batch["index"].tolist(), stats, strict=True)]

    def score(self, records: list[dict[str, Any]], dataset: ManifestDataset) -> dict[str, Any]:
        from medpeft.transfer.segmentation_metrics import summarise_dice

        stats = torch.stack([r["stats"] for r in records]) if records else torch.zeros(0, 3)
        result = summarise_dice(stats)
        result["threshold"] = self.threshold
        return result

    def write_test_outputs(
        self, records: list[dict[str, Any]], dataset: ManifestDataset, out_dir: Path
    ) -> dict[str, Any]:
        """``per_image.csv`` (Dice statistics of every test image) and overlay PNGs of a few test images."""
        out_dir = Path(out_dir)
        rows = []
        for r in records:
            inter, pred, target = (float(v) for v in r["stats"])
            dice = (1.0 if pred == 0 else 0.0) if target == 0 else 2 * inter / (pred + target)
            rows.append(
                [dataset.frame["image"].iat[r["index"]], int(inter), int(pred), int(target), f"{dice:.6f}"]
            )
        _write_csv(
            out_dir / "per_image.csv",
            ["image", "intersection", "predicted_pixels", "true_pixels", "dice_mgca"],
            rows,
        )
        chosen = overlay_indices(dataset, self.overlays)
        paths = self.save_overlays(unwrap(self.model), dataset, chosen, out_dir / "overlays")
        return {"per_image": "per_image.csv", "overlays": [str(p.relative_to(out_dir)) for p in paths]}

    @torch.no_grad()
    def save_overlays(
        self, model: nn.Module, dataset: ManifestDataset, indices: list[int], folder: Path
    ) -> list[Path]:
        from medpeft.evaluation.plots import save_overlay

        if not indices:
            return []
        model.eval()
        device = next(model.parameters()).device
        items = [dataset[i] for i in indices]
        pixels = torch.stack([it["pixel_values"] for it in items]).to(device)
        probs = torch.sigmoid(model(pixels).float())[:, 0].cpu().numpy()
        paths = []
        for i, item, prob in zip(indices, items, probs, strict=True):
            image = load_rgb(dataset.frame["image"].iat[i], dataset.size)
            mask = item["mask"][0].numpy() > 0.5
            name = Path(dataset.frame["image"].iat[i]).stem
            title = f"{name}: predicted probability (heat), ground truth (green)"
            paths.append(save_overlay(image, prob, folder / f"{i:04d}_{name}.png", mask=mask, title=title))
        return paths


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    from medpeft.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
