"""Pneumonia detection (RSNA protocol of MGCA) on a frozen, adapted ViT.

Frozen encoder -> ViTDet simple pyramid -> torchvision RetinaNet (or FCOS), one class. Scored with
``detection_metrics.detection_map``: mAP over IoU 0.40:0.05:0.75 on **every** test image — negatives'
false positives and missed positives count — unlike MGCA's code, which skips images without ground truth
or without a prediction (``mgca_compat=True`` scores that way, for comparison with published numbers).
The best head on validation mAP (scored the same way as test) is kept.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medpeft.transfer.detection_head import DetectionModel, build_detector
from medpeft.transfer.encoders import FrozenViTEncoder
from medpeft.transfer.finetune_data import (
    ManifestDataset,
    Normalise,
    load_rgb,
    load_task_splits,
    overlay_indices,
    unwrap,
)


def xyxy_to_xywh(boxes: torch.Tensor) -> list[list[float]]:
    b = boxes.reshape(-1, 4).tolist()
    return [[round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)] for x1, y1, x2, y2 in b]


class DetectionTask:
    """Datasets, loss, prediction and scoring of the detection protocol (see ``finetune_loop``)."""

    name = "detection"
    selection_metric = "map"

    def __init__(
        self,
        encoder: FrozenViTEncoder,
        data_dir: str | Path,
        *,
        fraction: float | None = None,
        head: str = "retinanet",
        fpn_channels: int = 256,
        mgca_compat: bool = False,
        augment: bool = False,
        seed: int = 0,
        overlays: int = 8,
    ) -> None:
        self.encoder = encoder
        self.mgca_compat = bool(mgca_compat)
        self.overlays = int(overlays)
        self.head = head
        self.normalise = Normalise(encoder.mean, encoder.std)
        splits = load_task_splits(
            data_dir, "detection", fraction, encoder.image_size, self.normalise, augment=augment, seed=seed
        )
        self.manifests = splits.manifests
        self.train_set, self.val_set, self.test_set = splits.train, splits.validate, splits.test
        self.model: nn.Module = DetectionModel(
            build_detector(encoder, head=head, out_channels=fpn_channels, seed=seed)
        )

    def describe(self) -> dict[str, Any]:
        model = unwrap(self.model)
        return {
            "task": self.name,
            "manifests": {k: str(v) for k, v in self.manifests.items()},
            "sizes": {
                "train": len(self.train_set),
                "validate": len(self.val_set),
                "test": len(self.test_set),
            },
            "head": self.head,
            "pyramid_strides": list(model.detector.backbone.strides),
            "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "mgca_compat": self.mgca_compat,
            "selection_metric": self.selection_metric,
        }

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        return model(batch["pixel_values"], batch["boxes"])

    def predict(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        detections = model(batch["pixel_values"])
        records = []
        for index, det in zip(batch["index"].tolist(), detections, strict=True):
            records.append(
                {
                    "index": int(index),
                    "boxes": det["boxes"].float().cpu(),
                    "scores": det["scores"].float().cpu(),
                }
            )
        return records

    def _to_manifest_pixels(self, boxes: torch.Tensor, dataset: ManifestDataset, index: int) -> torch.Tensor:
        sx, sy = dataset.scale(index)
        return boxes / torch.tensor([sx, sy, sx, sy])

    def score(self, records: list[dict[str, Any]], dataset: ManifestDataset) -> dict[str, Any]:
        """mAP in the manifest's pixel coordinates (IoU is unchanged by the resize, the numbers are the
        predictions CSV's)."""
        from medpeft.transfer.detection_metrics import detection_map

        boxes = [self._to_manifest_pixels(r["boxes"], dataset, r["index"]) for r in records]
        truth = [dataset.boxes_xyxy(r["index"]) for r in records]
        return detection_map(
            boxes, [r["scores"] for r in records], truth, box_format="xyxy", mgca_compat=self.mgca_compat
        )

    def write_test_outputs(
        self, records: list[dict[str, Any]], dataset: ManifestDataset, out_dir: Path
    ) -> dict[str, Any]:
        """``predictions.csv`` (every test image, boxes as [x, y, w, h] in manifest pixels) and overlays."""
        from medpeft.io import atomic_path

        out_dir = Path(out_dir)
        with atomic_path(out_dir / "predictions.csv") as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["image", "gt_boxes", "pred_boxes", "pred_scores"])
            for r in records:
                i = r["index"]
                pred = self._to_manifest_pixels(r["boxes"], dataset, i)
                writer.writerow([
                    dataset.frame["image"].iat[i],
                    json.dumps(xyxy_to_xywh(dataset.boxes_xyxy(i))),
                    json.dumps(xyxy_to_xywh(pred)),
                    json.dumps([round(float(s), 4) for s in r["scores"]]),
                ])  # fmt: skip
        by_index = {r["index"]: r for r in records}
        paths = []
        from medpeft.evaluation.plots import save_overlay

        for i in overlay_indices(dataset, self.overlays):
            r = by_index[i]
            sx, sy = dataset.scale(i)
            truth = dataset.boxes_xyxy(i) * torch.tensor([sx, sy, sx, sy])
            top = r["scores"].argsort(descending=True)[:3]
            name = Path(dataset.frame["image"].iat[i]).stem
            scores = ", ".join(f"{float(s):.2f}" for s in r["scores"][top])
            paths.append(
                save_overlay(
                    load_rgb(dataset.frame["image"].iat[i], dataset.size),
                    None,
                    out_dir / "overlays" / f"{i:04d}_{name}.png",
                    boxes={"ground truth": truth.tolist(), "predicted (top 3)": r["boxes"][top].tolist()},
                    title=f"{name}: top scores {scores or 'none'}",
                )
            )
        return {"predictions": "predictions.csv", "overlays": [str(p.relative_to(out_dir)) for p in paths]}
