"""Single-class mAP for pneumonia detection (RSNA), over IoU thresholds 0.40:0.05:0.75 as in MGCA.

The score is torchmetrics' ``MeanAveragePrecision`` (COCO protocol: 101-point interpolated AP, up to 100
detections per image, averaged over the IoU thresholds), fed one entry per test image.

Which images are scored is the difference between the two variants:

* default — **every** test image: a negative image (no ground-truth box) still contributes its predicted
  boxes as false positives, and an image with ground truth but no prediction contributes its boxes as
  misses. This is what a user deploying the detector experiences.
* ``mgca_compat=True`` — MGCA's ``SSLDetector`` code: an image is skipped when it has no ground-truth box or
  no prediction. False positives on the (majority) negative images and completely missed positive images
  are then never counted, so its numbers are higher; use it only to compare with published MGCA-protocol
  results.

Boxes are given per image as [K, 4] arrays in pixels, either ``"xyxy"`` (x1, y1, x2, y2) or ``"xywh"``
(x, y, width, height: the top-left corner and size, as in RSNA's ``stage_2_train_labels.csv``); they are
converted to xyxy before scoring.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import torch

from medpeft.data.boxes import BoxFormat, to_xyxy
from medpeft.errors import ConfigError, DataError

MGCA_IOU_THRESHOLDS: tuple[float, ...] = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75)


def _scores(scores: Any, n_boxes: int, image: int) -> torch.Tensor:
    s = scores if isinstance(scores, torch.Tensor) else torch.as_tensor(scores if scores is not None else [])
    s = s.detach().to("cpu", torch.float64).reshape(-1)
    if s.numel() != n_boxes:
        raise DataError(f"image {image}: {n_boxes} predicted boxes but {s.numel()} scores")
    if not torch.isfinite(s).all():
        raise DataError(f"image {image}: a predicted score is NaN or infinite")
    return s


def _clean(value: float) -> float:
    """Drop the ~1e-16 that pycocotools adds to every precision denominator (so a perfect AP reads 1.0)."""
    return round(value, 12)


def _backend() -> str:
    for module, name in (("pycocotools", "pycocotools"), ("faster_coco_eval", "faster_coco_eval")):
        if importlib.util.find_spec(module) is not None:
            return name
    raise ConfigError(
        "detection mAP needs pycocotools (or faster-coco-eval) for torchmetrics; install it with "
        "`pip install pycocotools`"
    )


def detection_map(
    pred_boxes: Sequence[Any],
    pred_scores: Sequence[Any],
    gt_boxes: Sequence[Any],
    *,
    box_format: BoxFormat = "xyxy",
    iou_thresholds: Sequence[float] = MGCA_IOU_THRESHOLDS,
    mgca_compat: bool = False,
) -> dict[str, Any]:
    """mAP of one class over ``iou_thresholds``; see the module docstring for which images are scored.

    ``pred_boxes[i]`` / ``pred_scores[i]`` / ``gt_boxes[i]`` belong to test image ``i`` (empty for none).
    Returns plain Python types: ``map`` (mean over thresholds), ``ap_per_iou`` {"0.40": AP, ...}, ``mar_100``,
    the counts of images/boxes scored and skipped, and the settings. With ``mgca_compat=True`` and no image
    having both ground truth and predictions, ``map`` is ``None`` (nothing to score).
    """
    if not (len(pred_boxes) == len(pred_scores) == len(gt_boxes)):
        raise DataError(
            f"per-image lists differ in length: {len(pred_boxes)} pred_boxes, {len(pred_scores)} pred_scores, "
            f"{len(gt_boxes)} gt_boxes"
        )
    thresholds = [float(t) for t in iou_thresholds]
    if not thresholds or any(not 0.0 < t <= 1.0 for t in thresholds):
        raise ConfigError(f"iou_thresholds must be values in (0, 1], got {thresholds}")

    preds, targets = [], []
    n_negative = n_without_pred = n_gt_boxes = n_pred_boxes = 0
    for i, (boxes, scores, truth) in enumerate(zip(pred_boxes, pred_scores, gt_boxes, strict=True)):
        predicted = to_xyxy(boxes, box_format, what=f"image {i} predicted boxes")
        score = _scores(scores, predicted.shape[0], i)
        true = to_xyxy(truth, box_format, what=f"image {i} ground-truth boxes")
        n_negative += true.shape[0] == 0
        n_without_pred += predicted.shape[0] == 0
        if mgca_compat and (true.shape[0] == 0 or predicted.shape[0] == 0):
            continue
        n_gt_boxes += true.shape[0]
        n_pred_boxes += predicted.shape[0]
        preds.append(
            {
                "boxes": predicted.float(),
                "scores": score.float(),
                "labels": torch.zeros(len(score), dtype=torch.long),
            }
        )
        targets.append({"boxes": true.float(), "labels": torch.zeros(true.shape[0], dtype=torch.long)})

    result: dict[str, Any] = {
        "map": None,
        "ap_per_iou": {f"{t:.2f}": None for t in thresholds},
        "mar_100": None,
        "iou_thresholds": thresholds,
        "box_format": box_format,
        "mgca_compat": bool(mgca_compat),
        "n_images": len(gt_boxes),
        "n_images_scored": len(targets),
        "n_negative_images": int(n_negative),
        "n_images_without_predictions": int(n_without_pred),
        "n_gt_boxes_scored": int(n_gt_boxes),
        "n_pred_boxes_scored": int(n_pred_boxes),
    }
    if n_gt_boxes == 0:
        if mgca_compat:
            return result
        raise DataError(f"none of the {len(gt_boxes)} images has a ground-truth box: mAP is undefined")

    backend = (
        _backend()
    )  # before importing torchmetrics' detection module, so a missing one is one clear line
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(
        box_format="xyxy", iou_type="bbox", iou_thresholds=thresholds, extended_summary=True, backend=backend
    )
    metric.update(preds, targets)
    out = metric.compute()
    # precision: [IoU, recall points, class, area range ("all" first), max detections (100 last)]
    precision = out["precision"][:, :, 0, 0, -1].to(torch.float64)
    for t, row in zip(thresholds, precision, strict=True):
        valid = row[row > -1]
        result["ap_per_iou"][f"{t:.2f}"] = _clean(float(valid.mean())) if valid.numel() else None
    per_iou = [v for v in result["ap_per_iou"].values() if v is not None]
    result["map"] = _clean(sum(per_iou) / len(per_iou)) if per_iou else None
    mar = float(out["mar_100"])
    result["mar_100"] = _clean(mar) if mar >= 0 else None
    return result
