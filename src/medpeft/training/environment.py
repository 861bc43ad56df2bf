"""What produced an adapter: library versions and the device, saved beside it for reproducibility."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

import torch

_PACKAGES = {
    "medpeft": "medpeft",
    "torch": "torch",
    "open_clip": "open_clip_torch",
    "timm": "timm",
    "transformers": "transformers",
    "accelerate": "accelerate",
    "numpy": "numpy",
}


def package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_device(device: torch.device) -> str:
    """A human-readable name of the compute device (GPU model, or the CPU)."""
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_model()})" if device.type == "cpu" else str(device)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions(more: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Versions of medpeft and the libraries whose code defines the numbers (None = not installed);
    ``more`` adds other distributions by name."""
    out = {name: package_version(dist) for name, dist in {**_PACKAGES, **{m: m for m in more}}.items()}
    out["torch"] = torch.__version__  # with its build tag (+cu130, +cpu)
    return out


def versions(device: torch.device | None = None, **extra: Any) -> dict[str, Any]:
    """Versions of medpeft and the libraries whose code defines the numbers, plus python and device."""
    out: dict[str, Any] = package_versions()
    out["python"] = platform.python_version()
    out["cuda"] = torch.version.cuda
    if device is not None:
        out["device"] = describe_device(device)
    out.update(extra)
    return out
