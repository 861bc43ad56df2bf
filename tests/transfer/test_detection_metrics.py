"""mAP over IoU 0.40:0.05:0.75 on hand cases: every image scored by default, MGCA's skipping as an option."""

from __future__ import annotations

import pytest

from medpeft.errors import ConfigError, DataError
from medpeft.transfer import detection_metrics
from medpeft.transfer.detection_metrics import MGCA_IOU_THRESHOLDS, detection_map, to_xyxy

BOX = [[10.0, 10.0, 50.0, 60.0]]
OTHER = [[100.0, 100.0, 140.0, 150.0]]
NONE: list = []


def test_perfect_detections_score_one():
    result = detection_map([BOX, OTHER, NONE], [[0.9], [0.4], []], [BOX, OTHER, NONE])
    assert result["map"] == 1.0
    assert set(result["ap_per_iou"]) == {"0.40", "0.45", "0.50", "0.55", "0.60", "0.65", "0.70", "0.75"}
    assert all(v == 1.0 for v in result["ap_per_iou"].values())
    assert result["n_images_scored"] == 3 and result["n_negative_images"] == 1
    assert result["iou_thresholds"] == list(MGCA_IOU_THRESHOLDS)


def test_false_positive_on_negative_image_lowers_default_but_not_mgca():
    preds, scores, truth = [BOX, OTHER], [[0.5], [0.9]], [BOX, NONE]
    # ranked: the false positive (0.9) first, then the hit: precision 0.5 at recall 1 -> AP 0.5
    assert detection_map(preds, scores, truth)["map"] == pytest.approx(0.5)
    mgca = detection_map(preds, scores, truth, mgca_compat=True)
    assert mgca["map"] == 1.0 and mgca["n_images_scored"] == 1


def test_image_with_ground_truth_but_no_prediction_counts_as_misses():
    preds, scores, truth = [BOX, NONE], [[0.8], []], [BOX, OTHER]
    result = detection_map(preds, scores, truth)
    # recall reaches 0.5 only: 51 of the 101 COCO recall points have precision 1
    assert result["map"] == pytest.approx(51 / 101)
    assert result["n_images_without_predictions"] == 1 and result["n_gt_boxes_scored"] == 2
    assert detection_map(preds, scores, truth, mgca_compat=True)["map"] == 1.0


def test_iou_thresholds_are_applied():
    truth = [[[0.0, 0.0, 100.0, 100.0]]]
    pred = [[[0.0, 0.0, 100.0, 62.0]]]  # IoU 0.62: a hit at 0.40 ... 0.60, a miss from 0.65
    result = detection_map(pred, [[0.9]], truth)
    assert result["ap_per_iou"]["0.60"] == 1.0 and result["ap_per_iou"]["0.65"] == 0.0
    assert result["map"] == pytest.approx(5 / 8)
    assert detection_map(pred, [[0.9]], truth, iou_thresholds=[0.5])["map"] == 1.0


def test_xywh_is_converted():
    xywh = [[10.0, 10.0, 40.0, 50.0]]  # == BOX in xyxy
    assert to_xyxy(xywh, "xywh").tolist() == BOX
    result = detection_map(
        [xywh, [[90.0, 90.0, 10.0, 10.0]]], [[0.5], [0.9]], [xywh, NONE], box_format="xywh"
    )
    assert result["map"] == pytest.approx(0.5)


def test_invalid_boxes_name_the_image():
    with pytest.raises(DataError, match="image 1 predicted boxes: box 0 has a negative width or height"):
        detection_map([BOX, [[5.0, 5.0, 1.0, 9.0]]], [[0.5], [0.5]], [BOX, NONE])
    with pytest.raises(DataError, match="image 0 ground-truth boxes: box 0 has a negative width or height"):
        detection_map([BOX], [[0.5]], [[[5.0, 5.0, -2.0, 3.0]]], box_format="xywh")
    with pytest.raises(DataError, match="image 1 ground-truth boxes: box 1 has a NaN"):
        detection_map([BOX, NONE], [[0.5], []], [BOX, [BOX[0], [1.0, float("nan"), 2.0, 3.0]]])
    with pytest.raises(DataError, match="image 0: 1 predicted boxes but 2 scores"):
        detection_map([BOX], [[0.5, 0.4]], [BOX])
    with pytest.raises(DataError, match="differ in length"):
        detection_map([BOX], [[0.5]], [BOX, BOX])
    with pytest.raises(ConfigError, match="box_format"):
        detection_map([BOX], [[0.5]], [BOX], box_format="cxcywh")


def test_no_ground_truth_anywhere():
    with pytest.raises(DataError, match="none of the 2 images has a ground-truth box"):
        detection_map([BOX, NONE], [[0.5], []], [NONE, NONE])
    assert detection_map([BOX, NONE], [[0.5], []], [NONE, NONE], mgca_compat=True)["map"] is None


def test_missing_coco_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(detection_metrics.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install pycocotools"):
        detection_map([BOX], [[0.5]], [BOX])
