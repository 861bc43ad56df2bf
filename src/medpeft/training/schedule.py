"""The learning-rate schedule: linear warm-up, then cosine decay (the paper's), or constant.

Expressed as a multiplier of the base rate per optimizer step, so the scheduler's state is just its
step counter and a resumed run continues on exactly the same curve.
"""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str, min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate for the optimizer step with index ``step`` (0-based).

    Warm-up ramps as ``(step + 1) / warmup_steps`` (open_clip's, so the first step is not wasted at
    lr 0); the cosine part falls from 1 to ``min_ratio`` at ``total_steps``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int,
    schedule: str,
    min_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`lr_factor` (its state dict holds only plain numbers)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, schedule, min_ratio)
    )
