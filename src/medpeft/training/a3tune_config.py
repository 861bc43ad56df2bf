"""Settings of an A³Tune training run (the optimisation; the adapter itself is an ``A3TuneConfig``).

Defaults follow the authors' scripts (A3TUNE.md §E): AdamW lr 2e-4, weight decay 0, warmup 3 % of the steps,
cosine schedule, gradient-norm clip 1.0 (HF Trainer's default), effective batch 32 (4 GPUs × 1 × accumulation 8;
here ``batch_size`` is the global batch of one optimizer step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from medpeft.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")

# Fields that do not change the numbers: a resume may change them.
RESUMABLE_CHANGES = frozenset({"workers", "progress", "checkpoint_every", "keep_checkpoints", "log_every"})


@dataclass(frozen=True)
class A3TrainConfig:
    """``epochs``/``max_steps`` (the smaller wins), ``batch_size`` = samples per optimizer step over all
    processes and accumulation steps, ``checkpoint_every`` steps (0 = only at the end), ``max_length`` tokens
    (answers are cut, prompts never), ``grid_mode`` how weak masks reach the token grid."""

    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_ratio: float = 0.03
    schedule: str = "cosine"
    max_grad_norm: float | None = 1.0
    precision: str = "fp32"
    gradient_checkpointing: bool = False
    seed: int = 0
    workers: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    log_every: int = 1
    max_length: int | None = None
    grid_mode: str = "aligned"
    on_nonfinite: str = "error"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        checks = {
            "epochs": self.epochs >= 1,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "batch_size": self.batch_size >= 1,
            "grad_accum": self.grad_accum >= 1,
            "lr": self.lr > 0,
            "warmup_ratio": 0 <= self.warmup_ratio <= 1,
            "schedule": self.schedule in ("cosine", "constant"),
            "precision": self.precision in PRECISIONS,
            "workers": self.workers >= 0,
            "checkpoint_every": self.checkpoint_every >= 0,
            "keep_checkpoints": self.keep_checkpoints >= 1,
            "log_every": self.log_every >= 1,
            "grid_mode": self.grid_mode in ("aligned", "official"),
            "on_nonfinite": self.on_nonfinite in ("error", "skip"),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"invalid A³Tune training setting(s): {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> A3TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def replace(self, **changes: Any) -> A3TrainConfig:
        return replace(self, **changes)
