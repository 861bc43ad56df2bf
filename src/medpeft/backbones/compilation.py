"""Regional ``torch.compile`` of the towers' transformer blocks: the exact computation, run faster.

Why regional (one compiled graph per block class, reused by all twelve blocks) rather than the whole
model: compile time stays a few seconds per tower instead of minutes, and the hooks that capture the
last layer's query/key for the affinity (``towers.py``) stay outside compiled code. Dynamo does not guard
on forward hooks, so a compiled last block would replay the capture it saw when traced; the last block
of each tower therefore runs eagerly.

Why exact: Inductor's own random numbers differ from eager PyTorch's, so ``fallback_random`` makes
dropout draw from the same generator as eager mode (same seed, same masks, same numbers). What remains
is float rounding from fused kernels (measured ≤ 1e-6 on the parity fixtures).

Where compilation cannot run (no C++ compiler for the CPU backend, an unsupported Python, a platform
without Triton), ``compile_support`` says why and callers fall back to eager mode with that message.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

#: Inductor options: eager-identical random numbers (dropout) so compiled training equals eager training.
COMPILE_OPTIONS = {"fallback_random": True}


@dataclass(frozen=True)
class CompileReport:
    """What ``compile_towers`` did: ``compiled`` False means eager mode, for the reason in ``message``."""

    compiled: bool
    modules: int
    message: str


@functools.cache
def compile_support(device_type: str) -> str | None:
    """``None`` when ``torch.compile`` works on this device type, else the reason it does not.

    Compilation is lazy, so a missing compiler would only surface at the first real batch; a tiny
    function compiled and run once per process finds it up front."""

    def probe(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x * 2.0 - 1.0).sum()

    try:
        device = torch.device(device_type)
        value = torch.compile(probe, dynamic=False, options=COMPILE_OPTIONS)(torch.ones(4, device=device))
        if float(value) != 4.0:
            return f"torch.compile gave a wrong result on a probe ({float(value)} != 4.0)"
    except Exception as err:  # noqa: BLE001 - any failure means: run eagerly, and say why
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"{type(err).__name__}: {first}"[:300]
    return None


def compile_blocks(blocks: Iterable[nn.Module], dynamic: bool) -> int:
    """``nn.Module.compile`` each block in place (its parameters and state dict keys are unchanged)."""
    n = 0
    for block in blocks:
        block.compile(dynamic=dynamic, options=COMPILE_OPTIONS)
        n += 1
    return n


def _tower_blocks(clip: nn.Module) -> tuple[list[nn.Module], list[nn.Module]]:
    """ViT blocks and BERT layers of an open_clip ``CustomTextCLIP`` (either may be absent)."""
    trunk = getattr(getattr(clip, "visual", None), "trunk", None)
    vision = list(getattr(trunk, "blocks", []) or [])
    encoder = getattr(getattr(getattr(clip, "text", None), "transformer", None), "encoder", None)
    text = list(getattr(encoder, "layer", []) or [])
    return vision, text


def compile_towers(
    clip: nn.Module,
    device: torch.device | str,
    *,
    text_dynamic: bool = False,
    extra: Iterable[tuple[nn.Module, bool]] = (),
) -> CompileReport:
    """Compile every block of both towers except the last (see the module docstring), and ``extra``
    modules given as ``(module, dynamic)``. Fixed shapes (224-px images, 256-token contexts) compile with
    ``dynamic=False``; ``text_dynamic=True`` for texts padded per batch to their longest, so a new length
    does not recompile. Falls back to eager mode with a ``RuntimeWarning`` where compilation is unavailable.
    """
    reason = compile_support(torch.device(device).type)
    if reason is not None:
        message = f"torch.compile is unavailable on {torch.device(device).type} ({reason}); running eagerly"
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return CompileReport(False, 0, message)
    vision, text = _tower_blocks(clip)
    n = compile_blocks(vision[:-1], dynamic=False) + compile_blocks(text[:-1], dynamic=text_dynamic)
    for module, dynamic in extra:
        n += compile_blocks([module], dynamic=dynamic)
    shape = "dynamic text lengths" if text_dynamic else "fixed shapes"
    return CompileReport(
        True, n, f"compiled {n} modules ({shape}); the last block of each tower runs eagerly"
    )


def compile_vit_blocks(trunk: nn.Module, device: torch.device | str) -> CompileReport:
    """Compile every block of a frozen timm ViT (dense transfer: no hooks, so the last block too)."""
    reason = compile_support(torch.device(device).type)
    if reason is not None:
        message = f"torch.compile is unavailable on {torch.device(device).type} ({reason}); running eagerly"
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return CompileReport(False, 0, message)
    n = compile_blocks(list(trunk.blocks), dynamic=False)
    return CompileReport(True, n, f"compiled {n} ViT blocks (fixed shapes)")


def is_compiled(module: nn.Module) -> bool:
    """True when ``module`` (or a block inside it) was compiled in place with ``nn.Module.compile``."""
    return any(getattr(m, "_compiled_call_impl", None) is not None for m in module.modules())
