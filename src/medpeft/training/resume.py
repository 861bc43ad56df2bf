"""Resuming: a checkpoint continues only the run that wrote it.

A resumed run must equal an uninterrupted one, so everything that decides the numbers is compared
with what the checkpoint recorded: the settings that shape the data order and the schedule, the
model configuration, and fingerprints of the training pairs and of the tokenizer vocabulary (a
changed manifest or tokenizer would silently feed the adapter other data).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from medpeft.errors import ConfigError
from medpeft.training.config import RESUME_INVARIANT
from medpeft.training.data import TrainingManifest

_FINGERPRINTS = {
    "backbone": "backbone",
    "manifest_sha256": "training manifest",
    "tokenizer_sha256": "tokenizer vocabulary",
}


def manifest_fingerprint(manifest: TrainingManifest) -> str:
    """sha256 of the image paths, texts and labels, in order."""
    h = hashlib.sha256()
    for image, text in zip(manifest.images, manifest.texts, strict=True):
        h.update(image.encode())
        h.update(b"\0")
        h.update(text.encode())
        h.update(b"\1")
    if manifest.labels is not None:
        h.update(manifest.labels.tobytes())
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str | None:
    """sha256 of the vocabulary (None for a tokenizer without one)."""
    hf = getattr(tokenizer, "hf", None)
    if hf is None or not hasattr(hf, "get_vocab"):
        return None
    return hashlib.sha256(json.dumps(sorted(hf.get_vocab().items())).encode()).hexdigest()


def adapter_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the adapter's names, dtypes and bytes: equal digests mean bit-identical adapters."""
    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_compatible(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Raise ``ConfigError`` naming every difference that would make the resumed run diverge."""
    problems = []
    for key in RESUME_INVARIANT:
        a, b = saved["train"].get(key), current["train"].get(key)
        if a != b:
            problems.append(f"train.{key}: checkpoint {a!r}, now {b!r}")
    keys = sorted(set(saved["model"]) | set(current["model"]))
    for k in keys:
        a, b = saved["model"].get(k), current["model"].get(k)
        if a != b:
            problems.append(f"model.{k}: checkpoint {a!r}, now {b!r}")
    for key, name in _FINGERPRINTS.items():
        a, b = saved["run"].get(key), current["run"].get(key)
        if a != b:
            problems.append(f"{name} changed: checkpoint {a!r}, now {b!r}")
    if problems:
        raise ConfigError(
            f"cannot resume from {path}: the run's settings differ, so the result would not match an "
            f"uninterrupted run: {'; '.join(problems)}. Resume with the original settings or start a new --out"
        )
