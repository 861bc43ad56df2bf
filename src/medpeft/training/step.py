"""One optimizer step: ``grad_accum`` micro-batches, the guards, then AdamW and the schedule.

Every process takes the same decisions (skip a micro-batch, skip the step, stop) because the
collectives of data-parallel training would otherwise wait forever; see ``guards.any_process``.
Gradients are all-reduced after every micro-batch rather than only the last (no ``no_sync``): the
adapters hold ~1 M numbers, so that costs little and keeps skipped micro-batches safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from medpeft.training.config import TrainConfig
from medpeft.training.guards import (
    any_process,
    bad_image_error,
    grads_finite,
    min_over_processes,
    nonfinite_error,
)
from medpeft.training.progress import Progress

log = logging.getLogger("medpeft.train")

_BATCH_KEYS = ("pixel_values", "input_ids", "labels", "indices")


@dataclass
class StepContext:
    """What a step needs besides its batches."""

    accelerator: Any
    model: torch.nn.Module  # as prepared by accelerate (DDP-wrapped in a multi-process run)
    optimizer: Any
    scheduler: Any
    params: list[torch.nn.Parameter]
    config: TrainConfig
    num_processes: int


@dataclass
class StepResult:
    loss_sum: torch.Tensor | None  # sum of the micro-batch losses (None when the step was skipped)
    n_losses: int
    skipped: bool
    bad_images: int
    lr: float  # the learning rate this step used


def _to(t: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if t is None else t.to(device, non_blocking=True)


def train_step(ctx: StepContext, micro_batches: list[dict[str, Any]], progress: Progress) -> StepResult:
    """Forward, guard and backward each micro-batch, then step the optimizer and the schedule."""
    cfg, acc = ctx.config, ctx.accelerator
    device = acc.device
    n_micro = len(micro_batches)
    losses: list[torch.Tensor] = []
    skipped = False
    bad_images = 0
    where = (progress.global_step + 1, progress.epoch, progress.step_in_epoch + 1)
    for batch in micro_batches:
        if batch["bad"]:
            if cfg.on_bad_image == "error":
                raise bad_image_error(batch["bad"])
            bad_images += len(batch["bad"])
            log.warning("skipping %d unreadable image(s), first: %s", len(batch["bad"]), batch["bad"][0][0])
        size = len(batch["indices"])
        if ctx.num_processes > 1:
            common = min_over_processes(size, device)
            if cfg.gather and common < size:  # gathered embeddings need equal sizes on every process
                for key in _BATCH_KEYS:
                    if batch[key] is not None:
                        batch[key] = batch[key][:common]
                size = common
            if common == 0:
                size = 0  # every process skips this micro-batch together
        if size == 0:
            continue
        loss = ctx.model(
            _to(batch["pixel_values"], device),
            _to(batch["input_ids"], device),
            _to(batch["labels"], device),
            gather=cfg.gather,
        )
        finite = bool(torch.isfinite(loss.detach()).item())
        if any_process(not finite, device):
            if cfg.on_nonfinite == "error":
                raise nonfinite_error("loss", None if finite else float(loss.detach()), *where)
            skipped = True
            break
        acc.backward(loss / n_micro)
        losses.append(loss.detach().float())
    # fp16: the grad scaler already skips steps with inf/NaN gradients and lowers its scale
    if losses and not skipped and cfg.precision != "fp16":
        if any_process(not grads_finite(ctx.params), device):
            if cfg.on_nonfinite == "error":
                raise nonfinite_error("gradient", None, *where)
            skipped = True
    lr = float(ctx.optimizer.param_groups[0]["lr"])
    if losses and not skipped:
        if cfg.max_grad_norm is not None:
            acc.clip_grad_norm_(ctx.params, cfg.max_grad_norm)
        ctx.optimizer.step()
    ctx.scheduler.step()  # the schedule follows the data position, skipped steps included
    ctx.optimizer.zero_grad(set_to_none=True)
    if skipped or not losses:
        return StepResult(None, 0, skipped, bad_images, lr)
    return StepResult(torch.stack(losses).sum(), len(losses), False, bad_images, lr)
