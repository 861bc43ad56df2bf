"""``InferenceOptions``: how a batched inference call runs (batch, workers, device, precision, bad images).

One object instead of the same ten keywords threaded through ``evaluate``, ``predict``, heat maps and
the scoring core, so a new knob is added in one place and every entry point gets it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from medpeft.errors import ConfigError
from medpeft.runtime import autocast_dtype, check_precision, resolve_device

if TYPE_CHECKING:
    import torch

BAD_IMAGE_POLICIES = ("error", "skip")


@dataclass(frozen=True)
class InferenceOptions:
    """``device``: auto|cpu|cuda[:N]; ``precision``: fp32 (exact, default) | bf16 | fp16 (CUDA);
    ``on_bad_image``: error (name the image) | skip (leave it out and list it); ``merge_lora`` folds LoRA
    into the frozen weights while scoring (the weights are restored bit for bit afterwards); ``compile`` runs
    the towers through ``torch.compile`` (``AceLoraModel.compile_towers``: same numbers within rounding, the
    first batch of each shape compiles; falls back to eager mode with a warning where unavailable)."""

    batch_size: int = 64
    workers: int = 0
    device: str = "auto"
    precision: str = "fp32"
    on_bad_image: str = "error"
    progress: bool = False
    merge_lora: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if int(self.workers) < 0:
            raise ConfigError(f"workers must be 0 or more, got {self.workers}")
        check_precision(self.precision)
        if self.on_bad_image not in BAD_IMAGE_POLICIES:
            raise ConfigError(f"on_bad_image must be one of {BAD_IMAGE_POLICIES}, got {self.on_bad_image!r}")

    @classmethod
    def make(cls, options: InferenceOptions | None = None, **overrides: Any) -> InferenceOptions:
        """``options`` (or the defaults) with ``overrides`` applied; unknown names are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown inference option(s) {unknown}; known: {sorted(known)}")
        base = options if options is not None else cls()
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(base, **given) if given else base

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        return autocast_dtype(device, self.precision)
