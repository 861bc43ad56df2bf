"""Where and how a run computes: device, precision, seeding and RNG capture, the accelerator, the
learning-rate schedule, and the versions/environment recorded beside every result.

One module so that every command (and both methods) resolves ``--device`` and ``--precision`` the same
way, seeds the same way, and records the same versions.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import platform
import random
from typing import TYPE_CHECKING, Any

from medpeft.errors import ConfigError

if TYPE_CHECKING:
    import torch

# torch and numpy are imported inside the functions: configs and ``--help`` read this vocabulary cheaply.
PRECISIONS = ("fp32", "bf16", "fp16")
# accelerate's spelling of the same choices
_ACCELERATE_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


# ------------------------------------------------------------------------------------------ device
def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/``None`` picks CUDA when available, else the CPU; ``cpu``, ``cuda``, ``cuda:N`` as given."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"invalid device {device!r} (expected auto, cpu, cuda or cuda:N): {err}") from err
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"invalid device {device!r}: expected auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return dev


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without parameters)."""
    import torch

    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


# --------------------------------------------------------------------------------------- precision
def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = exact fp32, the default everywhere:
    bf16/fp16 change the numbers). fp16 is refused on the CPU, which has no fp16 autocast."""
    import torch

    check_precision(precision)
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"--precision fp16 needs a CUDA device (device is {device}); use fp32 or bf16")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or nothing for fp32."""
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def accelerate_precision(precision: str) -> str:
    """accelerate's ``mixed_precision`` spelling of ``precision``."""
    return _ACCELERATE_PRECISION[check_precision(precision)]


def make_accelerator(precision: str = "fp32", device: str = "auto", **kwargs: Any) -> Any:
    """The one ``Accelerator`` factory. accelerate keeps one process-wide state; a single-process caller
    (a notebook, a test) may train again with another precision, so that state is renewed then (a
    multi-process group is never reset). ``device="cpu"`` forces the CPU; CPU-only machines always get
    ``cpu=True`` so torchrun/accelerate launch form a gloo group there."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    cpu = device == "cpu" or not torch.accelerator.is_available()
    args = {"mixed_precision": accelerate_precision(precision), "cpu": cpu, **kwargs}
    try:
        return Accelerator(**args)
    except ValueError as err:
        if "already been initialized" not in str(err):
            raise ConfigError(f"--precision {precision}: {err}") from err
        if PartialState().num_processes > 1:
            raise
    AcceleratorState._reset_state()
    try:
        return Accelerator(**args)
    except ValueError as err:  # e.g. fp16 requested on a CPU-only machine
        raise ConfigError(f"--precision {precision}: {err}") from err


# ----------------------------------------------------------------------------------------- seeding
def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every accelerator) of this process."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (run seed, epoch, sample index, ...).

    Seeds derived this way do not depend on the worker count or on where a run was resumed.
    """
    import numpy as np

    return int(np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def capture_rng_state() -> dict[str, Any]:
    """The python, numpy, torch CPU and CUDA generator states of this process, as tensors and plain
    types only, so a checkpoint holding them loads with ``weights_only=True``."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {
            "version": int(version),
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    import numpy as np
    import torch

    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state(
        (nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"], nps["cached"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------- LR schedule
SCHEDULES = ("cosine", "constant")


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str, min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate for the optimizer step with index ``step`` (0-based).

    Warm-up ramps as ``(step + 1) / warmup_steps`` (open_clip's, so the first step is not wasted at
    lr 0); the cosine part falls from 1 to ``min_ratio`` at ``total_steps``. Expressed per step so the
    scheduler's state is its step counter and a resumed run continues on exactly the same curve.
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
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, schedule, min_ratio)
    )


# ------------------------------------------------------------------------------ versions/environment
_PACKAGES = {
    "medpeft": "medpeft",
    "torch": "torch",
    "open_clip": "open_clip_torch",
    "timm": "timm",
    "transformers": "transformers",
    "peft": "peft",
    "accelerate": "accelerate",
    "numpy": "numpy",
}


def medpeft_version() -> str:
    """medpeft's version from its installed metadata (never by importing the package root)."""
    return package_version("medpeft") or "0+unknown"


def package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device: torch.device) -> str:
    """A human-readable name of the compute device (GPU model, or the CPU)."""
    import torch

    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_model()})" if device.type == "cpu" else str(device)


def package_versions(more: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Versions of medpeft and the libraries whose code defines the numbers (None = not installed);
    ``more`` adds other distributions by name."""
    import torch

    out = {name: package_version(dist) for name, dist in {**_PACKAGES, **{m: m for m in more}}.items()}
    out["torch"] = torch.__version__  # with its build tag (+cu130, +cpu)
    return out


def versions(device: torch.device | None = None, **extra: Any) -> dict[str, Any]:
    """Versions of medpeft and the libraries whose code defines the numbers, plus python and device."""
    import torch

    out: dict[str, Any] = package_versions()
    out["python"] = platform.python_version()
    out["cuda"] = torch.version.cuda
    if device is not None:
        out["device"] = describe_device(device)
    out.update(extra)
    return out
