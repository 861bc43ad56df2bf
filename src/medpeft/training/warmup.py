"""The compile warm-up: one untimed forward + backward before training, leaving no trace in the run.

Why: ``torch.compile`` traces and compiles at the first call of each shape, which takes seconds to a
minute; done inside the first step it would be counted as training time and distort the speed logged
for the first window. The warm-up runs one micro-batch of the training shape (blank images, a blank
text tokenised the way training tokenises) in training mode, then restores every random generator and
drops the gradients, so the run's numbers equal a run without warm-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from medpeft.runtime import capture_rng_state, restore_rng_state

#: Long enough (about 50 tokens) that a per-batch-longest text shape is an ordinary one, not a corner case.
WARMUP_TEXT = " ".join(["no acute cardiopulmonary process, heart size is normal."] * 5)


def compile_warmup(
    model: torch.nn.Module,
    backward: Callable[[torch.Tensor], Any],
    optimizer: torch.optim.Optimizer,
    tokenize: Callable[[list[str]], torch.Tensor],
    batch_size: int,
    image_size: int,
    num_labels: int | None,
    device: torch.device,
) -> float:
    """Run one forward + backward of ``batch_size`` samples through ``model`` (as prepared for training)
    and return its seconds; RNG states and gradients are as before the call."""
    state = capture_rng_state()
    t0 = time.perf_counter()
    try:
        model.train()
        pixels = torch.zeros(batch_size, 3, image_size, image_size, device=device)
        ids = tokenize([WARMUP_TEXT] * batch_size).to(device)
        labels = None if num_labels is None else torch.zeros(batch_size, num_labels, device=device)
        loss = model(pixels, ids, labels)
        backward(loss * 0.0)
    finally:
        optimizer.zero_grad(set_to_none=True)
        restore_rng_state(state)
    return time.perf_counter() - t0
