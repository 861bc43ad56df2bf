"""Guards of the training step: a non-finite loss or gradient, and unreadable images.

Each is either fatal, with a message that names the step or the file, or (by option) skipped and
counted. In a multi-process run every process must take the same decision, or the collective
operations of the next step would wait forever; :func:`any_process` makes the flag global.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist

from medpeft.errors import DataError, MedpeftError


class NonFiniteLossError(MedpeftError, FloatingPointError):
    """The loss or a gradient became NaN or infinite."""


def any_process(flag: bool, device: torch.device) -> bool:
    """True if ``flag`` is true on any process (a no-op outside a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def min_over_processes(value: int, device: torch.device) -> int:
    """The smallest ``value`` over processes (batch sizes after dropping unreadable images)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([float(value)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def grads_finite(params: Iterable[torch.Tensor]) -> bool:
    """Whether every gradient is finite (adapters are ~1 M numbers: one fused check is cheap)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def nonfinite_error(what: str, value: float | None, step: int, epoch: int, batch: int) -> NonFiniteLossError:
    shown = "" if value is None else f" ({value})"
    return NonFiniteLossError(
        f"non-finite {what}{shown} at optimizer step {step} (epoch {epoch}, batch {batch} of the epoch); "
        "the previous checkpoint is intact. Lower the learning rate, prefer bf16 to fp16, set max_grad_norm, "
        "or pass on_nonfinite='skip' (--set train.on_nonfinite=skip) to skip such steps and count them"
    )


def bad_image_error(bad: list[tuple[str, str]]) -> DataError:
    path, reason = bad[0]
    more = f" (and {len(bad) - 1} more in the same batch)" if len(bad) > 1 else ""
    return DataError(
        f"unreadable training image {path}: {reason}{more}. Fix or remove it from the manifest, or pass "
        "on_bad_image='skip' (--set train.on_bad_image=skip) to skip unreadable images and count them"
    )
