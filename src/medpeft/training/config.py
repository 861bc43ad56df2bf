"""``TrainConfig``: every knob of a training run, with the paper's values as defaults.

Kept free of torch imports so that the command line can build and check a configuration
before paying for the heavy imports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from medpeft.ace_lora.config import check_known_fields
from medpeft.errors import ConfigError
from medpeft.runtime import PRECISIONS, SCHEDULES

POLICIES = ("error", "skip")
# Validation metrics that can choose the best adapter (all are "higher is better").
BEST_METRICS = ("auroc", "accuracy", "f1", "balanced_accuracy")

# Fields that decide the data order, the learning-rate schedule or the numbers computed:
# a resumed run must use the same values or its result would not equal an uninterrupted run.
RESUME_INVARIANT = (
    "seed",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "betas",
    "eps",
    "warmup_epochs",
    "schedule",
    "min_lr_ratio",
    "grad_accum",
    "max_grad_norm",
    "precision",
    "gather",
    "context_length",
    "max_steps",
    "keep_best_by",
)


@dataclass
class TrainConfig:
    """Paper defaults: AdamW lr 1e-3, weight decay 1e-2, batch 64, 40 epochs, cosine schedule after one
    warm-up epoch, seed 0.

    ``batch_size`` is the *global* batch of one optimizer step, summed over processes and
    accumulation steps, so a run on 8 GPUs (with ``gather``) follows the same schedule and sees the
    same negatives as the paper's single GPU. Each forward pass sees
    ``batch_size / (num_processes * grad_accum)`` samples; it must divide evenly.
    """

    seed: int = 0
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_epochs: float = 1.0
    schedule: str = "cosine"
    min_lr_ratio: float = 0.0
    grad_accum: int = 1
    max_grad_norm: float | None = None
    precision: str = "fp32"
    gradient_checkpointing: bool = False
    compile: bool = False  # torch.compile the towers (same numbers within rounding; warm-up untimed)
    gather: bool = False
    workers: int = 0
    context_length: int | None = None  # None: the backbone's own (256 for BiomedCLIP)
    checkpoint_every: int = 500  # optimizer steps; a checkpoint is also written at the end
    keep_checkpoints: int = 2
    val_data: str | None = None  # a prepared folder (validate.csv, else test.csv) or a manifest CSV
    val_every: int | None = None  # optimizer steps; None: at the end of every epoch
    val_batch_size: int | None = None  # None: the per-process training batch
    keep_best_by: str = "auroc"
    on_nonfinite: str = "error"
    on_bad_image: str = "error"
    max_steps: int | None = None  # stop (and end the schedule) after this many optimizer steps
    log_every: int = 10
    progress: bool = True
    tensorboard: bool = True  # used only when the tensorboard package is installed

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)
        positive = ("epochs", "batch_size", "grad_accum", "log_every", "keep_checkpoints")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("checkpoint_every", "workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("max_steps", "val_every", "val_batch_size", "context_length"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{name} must be a positive integer or null, got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm must be positive or null, got {self.max_grad_norm}")
        choices = {
            "precision": PRECISIONS,
            "schedule": SCHEDULES,
            "on_nonfinite": POLICIES,
            "on_bad_image": POLICIES,
            "keep_best_by": BEST_METRICS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        check_known_fields(cls, data, "training options")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
