"""Dice scores for pneumothorax segmentation, and the losses that train the decoder.

Two Dice scores are reported because they answer different questions on SIIM-ACR, where most images have
no pneumothorax:

* ``dice_mgca`` — MGCA's definition (``SSLSegmenter.get_dice``): per image, an image whose ground truth is
  empty scores 1 if nothing is predicted and 0 otherwise; an image with foreground scores
  2|P∩T| / (|P| + |T|); the result is the mean over images. It rewards predicting "nothing" on the many
  negatives, so it is comparable with the published numbers but flatters a model that rarely fires.
  (MGCA averages per-batch means; here the mean is over images, which equals it for equal-sized batches.)
* ``dice_foreground`` — the plain foreground Dice over the *whole test set*: 2·Σ|P∩T| / (Σ|P| + Σ|T|),
  summed over all pixels of all images (empty images included, so false positives on negatives count
  against it; "global"/"micro" Dice). ``dice_positive_images`` is also reported: the per-image Dice averaged
  over the images whose ground truth is non-empty only (negatives ignored).

Predictions are probabilities (or 0/1 masks) binarised with ``pred > threshold`` (strict, as MGCA), targets
with ``target > 0.5``. Shapes: [N, H, W], [N, 1, H, W] or a single [H, W] image. Tensors in, floats out.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from medpeft.errors import ConfigError, DataError


def _as_batch(x: Any, name: str) -> torch.Tensor:
    """[N, H, W] float tensor from [H, W], [N, H, W] or [N, 1, H, W] tensors/arrays."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    t = t.detach()
    if t.dim() == 2:
        t = t.unsqueeze(0)
    elif t.dim() == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 3:
        raise DataError(f"{name} must have shape [N, H, W], [N, 1, H, W] or [H, W], got {list(t.shape)}")
    return t.float()


def dice_statistics(pred: Any, target: Any, *, threshold: float = 0.5) -> torch.Tensor:
    """Per-image ``[N, 3]`` float64 tensor of (|P∩T|, |P|, |T|): everything every Dice variant needs.

    Accumulate these across batches (``DiceAccumulator``) instead of keeping all masks in memory.
    """
    if not 0.0 <= threshold < 1.0:
        raise ConfigError(f"threshold must be in [0, 1), got {threshold}")
    p, t = _as_batch(pred, "pred"), _as_batch(target, "target")
    if p.shape != t.shape:
        raise DataError(f"pred has shape {list(p.shape)} but target has {list(t.shape)}; masks must match")
    bad = ~torch.isfinite(p)
    if bad.any():
        image = int(bad.flatten(1).any(1).nonzero()[0])
        raise DataError(f"pred contains NaN or infinite values (image {image} of the batch)")
    p_bin = (p > threshold).flatten(1)
    t_bin = (t > 0.5).flatten(1)
    inter = (p_bin & t_bin).sum(1)
    return torch.stack([inter, p_bin.sum(1), t_bin.sum(1)], dim=1).to(torch.float64).cpu()


def summarise_dice(stats: torch.Tensor) -> dict[str, Any]:
    """All Dice variants (see the module docstring) and counts from per-image ``dice_statistics`` rows."""
    stats = torch.as_tensor(stats, dtype=torch.float64).reshape(-1, 3)
    if stats.shape[0] == 0:
        raise DataError("no images to score: the Dice of an empty set is undefined")
    inter, pred_sum, target_sum = stats.unbind(1)
    empty_gt = target_sum == 0
    per_image = torch.where(
        empty_gt,
        (pred_sum == 0).to(torch.float64),
        2 * inter / (pred_sum + target_sum).clamp_min(1e-12),
    )
    denominator = float(pred_sum.sum() + target_sum.sum())
    positives = per_image[~empty_gt]
    return {
        "dice_mgca": float(per_image.mean()),
        # no foreground anywhere, predicted or true: nothing to disagree on
        "dice_foreground": 1.0 if denominator == 0 else float(2 * inter.sum() / denominator),
        "dice_positive_images": float(positives.mean()) if positives.numel() else None,
        "n_images": int(stats.shape[0]),
        "n_empty_gt": int(empty_gt.sum()),
        "n_empty_gt_predicted_empty": int((empty_gt & (pred_sum == 0)).sum()),
    }


def dice_mgca(pred: Any, target: Any, *, threshold: float = 0.5) -> float:
    """MGCA's Dice: per image (empty ground truth predicted empty = 1, with any false positive = 0), mean."""
    return summarise_dice(dice_statistics(pred, target, threshold=threshold))["dice_mgca"]


def dice_foreground(pred: Any, target: Any, *, threshold: float = 0.5) -> float:
    """Plain foreground Dice pooled over all pixels of all images: 2·Σ|P∩T| / (Σ|P| + Σ|T|)."""
    return summarise_dice(dice_statistics(pred, target, threshold=threshold))["dice_foreground"]


def segmentation_metrics(pred: Any, target: Any, *, threshold: float = 0.5) -> dict[str, Any]:
    """Every Dice variant and the counts, as a JSON-ready dict (one call for a whole, in-memory test set)."""
    result = summarise_dice(dice_statistics(pred, target, threshold=threshold))
    result["threshold"] = float(threshold)
    return result


class DiceAccumulator:
    """Collects per-image statistics batch by batch, so validation never holds all masks at once."""

    def __init__(self, *, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self._stats: list[torch.Tensor] = []

    def update(self, pred: Any, target: Any) -> None:
        self._stats.append(dice_statistics(pred, target, threshold=self.threshold))

    def compute(self) -> dict[str, Any]:
        stats = torch.cat(self._stats) if self._stats else torch.zeros(0, 3, dtype=torch.float64)
        result = summarise_dice(stats)
        result["threshold"] = float(self.threshold)
        return result

    def reset(self) -> None:
        self._stats.clear()


# ---------------------------------------------------------------------------------------------- losses


def _check_logits(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.shape != target.shape:
        raise DataError(f"logits have shape {list(logits.shape)} but target has {list(target.shape)}")


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    """Sigmoid focal loss ``-alpha_t (1 - p_t)^gamma log(p_t)`` on logits, computed in log space for stability.

    ``alpha=0.25`` is the RetinaNet/torchvision convention; ``alpha=None`` applies no class weighting, which is
    what MGCA's segmentation ``FocalLoss`` does (and what ``focal_dice_loss`` uses by default).
    """
    _check_logits(logits, target)
    target = target.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    # log(1 - p_t) = logsigmoid(-z) with z = logit signed towards the true class
    modulation = torch.exp(gamma * F.logsigmoid(-logits * (2 * target - 1)))
    loss = modulation * ce
    if alpha is not None:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def soft_dice(logits: torch.Tensor, target: torch.Tensor, *, smooth: float = 1.0) -> torch.Tensor:
    """Differentiable Dice coefficient (2·Σ σ(z)·t + s) / (Σ σ(z) + Σ t + s) pooled over the whole batch (as MGCA)."""
    _check_logits(logits, target)
    prob = torch.sigmoid(logits).flatten()
    flat_target = target.to(prob.dtype).flatten()
    return (2.0 * (prob * flat_target).sum() + smooth) / (prob.sum() + flat_target.sum() + smooth)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, *, smooth: float = 1.0) -> torch.Tensor:
    """``1 - soft_dice``: the plain Dice loss, for decoders trained without the focal term."""
    return 1.0 - soft_dice(logits, target, smooth=smooth)


def focal_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    focal_weight: float = 10.0,
    alpha: float | None = None,
    gamma: float = 2.0,
    smooth: float = 1.0,
) -> torch.Tensor:
    """MGCA's segmentation loss ``10·focal − log(soft Dice)``: focal fights the pixel imbalance, Dice the overlap.

    Defaults reproduce MGCA's ``MixedLoss(alpha=10)``: unweighted focal (``alpha=None``), gamma 2, soft Dice
    with smoothing 1 over the batch.
    """
    focal = focal_loss(logits, target, alpha=alpha, gamma=gamma)
    return focal_weight * focal - torch.log(soft_dice(logits, target, smooth=smooth))
