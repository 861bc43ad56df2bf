"""Dice variants on hand-computed cases (empty masks included) and the segmentation losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from medpeft.errors import DataError
from medpeft.transfer.segmentation_metrics import (
    DiceAccumulator,
    dice_foreground,
    dice_mgca,
    dice_statistics,
    focal_dice_loss,
    focal_loss,
    segmentation_metrics,
    soft_dice,
    soft_dice_loss,
)


def _mask(*pixels: tuple[int, int], size: int = 4) -> torch.Tensor:
    m = torch.zeros(size, size)
    for r, c in pixels:
        m[r, c] = 1.0
    return m


EMPTY = _mask()
TRUTH = _mask((0, 0), (0, 1), (1, 0), (1, 1))  # 4 pixels
HALF = _mask((0, 0), (0, 1), (2, 2), (3, 3))  # 2 of 4 right, 2 false positives
FALSE_POSITIVE = _mask((3, 3), (3, 2))  # 2 pixels on an empty image


def test_empty_ground_truth_predicted_empty_scores_one():
    assert dice_mgca(EMPTY, EMPTY) == 1.0


def test_empty_ground_truth_with_false_positives_scores_zero():
    assert dice_mgca(FALSE_POSITIVE, EMPTY) == 0.0
    assert dice_foreground(FALSE_POSITIVE, EMPTY) == 0.0


def test_partial_overlap():
    assert dice_mgca(HALF, TRUTH) == pytest.approx(2 * 2 / (4 + 4))
    assert dice_foreground(HALF, TRUTH) == pytest.approx(0.5)


def test_batch_mean_over_images_and_pooled_foreground():
    pred = torch.stack([EMPTY, FALSE_POSITIVE, HALF])
    target = torch.stack([EMPTY, EMPTY, TRUTH])
    result = segmentation_metrics(pred, target)
    assert result["dice_mgca"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    # pooled: 2 * 2 intersections / (predicted 2 + 4, true 4)
    assert result["dice_foreground"] == pytest.approx(4 / 10)
    assert result["dice_positive_images"] == pytest.approx(0.5)
    assert result["n_images"] == 3 and result["n_empty_gt"] == 2 and result["n_empty_gt_predicted_empty"] == 1


def test_probabilities_are_thresholded_strictly_and_shapes_accepted():
    prob = TRUTH * 0.8 + 0.1  # 0.9 on the lesion, 0.1 elsewhere
    prob[3, 3] = 0.5  # exactly at the threshold: background (MGCA uses ``>``)
    assert dice_mgca(prob, TRUTH) == 1.0
    assert dice_mgca(prob[None, None], TRUTH[None, None]) == 1.0  # [N, 1, H, W]
    assert dice_mgca(prob, TRUTH, threshold=0.95) == 0.0


def test_all_empty_set():
    result = segmentation_metrics(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4))
    assert result["dice_mgca"] == 1.0 and result["dice_foreground"] == 1.0
    assert result["dice_positive_images"] is None


def test_matches_per_image_hand_computation_on_random_batch():
    g = torch.Generator().manual_seed(0)
    prob = torch.rand(6, 16, 16, generator=g)
    target = (torch.rand(6, 16, 16, generator=g) > 0.8).float()
    target[1] = 0
    target[4] = 0
    prob[4] = 0.1  # an empty image predicted empty
    scores = []
    for p, t in zip(prob, target, strict=True):
        pb, tb = p > 0.5, t > 0.5
        if tb.sum() == 0:
            scores.append(float(pb.sum() == 0))
        else:
            scores.append(float(2 * (pb & tb).sum() / (pb.sum() + tb.sum())))
    assert dice_mgca(prob, target) == pytest.approx(sum(scores) / len(scores))
    assert scores[4] == 1.0 and scores[1] == 0.0


def test_accumulator_equals_one_call():
    g = torch.Generator().manual_seed(1)
    prob = torch.rand(7, 8, 8, generator=g)
    target = (torch.rand(7, 8, 8, generator=g) > 0.7).float()
    target[2] = 0
    acc = DiceAccumulator()
    acc.update(prob[:3], target[:3])
    acc.update(prob[3:], target[3:])
    assert acc.compute() == segmentation_metrics(prob, target)
    acc.reset()
    with pytest.raises(DataError, match="no images"):
        acc.compute()


def test_errors_name_the_problem():
    with pytest.raises(DataError, match=r"pred has shape \[1, 4, 4\] but target has \[1, 5, 5\]"):
        dice_statistics(EMPTY, torch.zeros(5, 5))
    bad = torch.zeros(2, 4, 4)
    bad[1, 0, 0] = float("nan")
    with pytest.raises(DataError, match="image 1"):
        dice_statistics(bad, torch.zeros(2, 4, 4))
    with pytest.raises(DataError, match="must have shape"):
        dice_statistics(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))


def test_focal_loss_matches_torchvision_and_unweighted_form():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 8, 8, generator=g) * 3
    target = (torch.rand(2, 8, 8, generator=g) > 0.7).float()
    expected = sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0, reduction="mean")
    assert focal_loss(logits, target) == pytest.approx(float(expected), rel=1e-6)
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert focal_loss(logits, target, alpha=None) == pytest.approx(
        float(((1 - p_t) ** 2 * bce).mean()), rel=1e-5
    )
    assert focal_loss(logits, target, reduction="none").shape == logits.shape


def test_soft_dice_and_combined_loss():
    target = torch.stack([TRUTH, EMPTY])
    logits = (target * 2 - 1) * 50.0  # sigmoid saturates: a perfect prediction
    assert soft_dice(logits, target) == pytest.approx(1.0)
    assert soft_dice_loss(logits, target) == pytest.approx(0.0, abs=1e-6)
    logits = torch.zeros_like(target)  # sigmoid 0.5 everywhere
    expected_dice = (2 * 0.5 * 4 + 1) / (0.5 * 32 + 4 + 1)
    assert soft_dice(logits, target) == pytest.approx(expected_dice)
    expected = 10 * focal_loss(logits, target, alpha=None) - torch.log(torch.tensor(expected_dice))
    assert focal_dice_loss(logits, target) == pytest.approx(float(expected), rel=1e-6)


def test_combined_loss_prefers_better_logits_and_has_gradients():
    target = torch.stack([TRUTH, EMPTY])
    good = ((target * 2 - 1) * 3).requires_grad_()
    bad = (-(target * 2 - 1) * 3).requires_grad_()
    loss_good, loss_bad = focal_dice_loss(good, target), focal_dice_loss(bad, target)
    assert loss_good < loss_bad
    loss_good.backward()
    assert torch.isfinite(good.grad).all()
