"""Validation during training: zero-shot classification of a prepared dataset (the paper validates
on NIH ChestX-ray14), scored by ``medpeft.evaluation.zero_shot.evaluate`` so the number that picks
the best adapter is computed exactly as ``medpeft eval`` computes it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medpeft.data.manifest import DATASET_INFO, read_dataset_info
from medpeft.errors import DataError

SPLIT_PREFERENCE = ("validate", "test")


@dataclass
class ValidationSet:
    """A prepared folder and the split of it to score."""

    data_dir: Path
    split: str

    def __str__(self) -> str:
        return f"{self.data_dir} ({self.split})"


def resolve_validation(path: str | Path, split: str | None = None) -> ValidationSet:
    """A prepared folder (its ``validate`` split, else ``test``) or one manifest CSV inside a prepared folder."""
    path = Path(path)
    if path.is_file():
        data_dir, split = path.parent, split or path.stem
    elif path.is_dir():
        data_dir = path
    else:
        raise DataError(f"validation data {path} does not exist")
    if not (data_dir / DATASET_INFO).is_file():
        raise DataError(
            f"validation data {path}: no {DATASET_INFO} in {data_dir}; validation scores zero-shot "
            "classification of a folder written by 'medpeft prepare'"
        )
    info = read_dataset_info(data_dir)
    if split is None:
        available = [s for s in SPLIT_PREFERENCE if s in info.splits or (data_dir / f"{s}.csv").is_file()]
        if not available:
            raise DataError(f"validation data {data_dir} has neither a validate nor a test split")
        split = available[0]
    return ValidationSet(data_dir=data_dir, split=split)


def check_validation(val: ValidationSet, on_bad_image: str = "error") -> None:
    """Read the validation manifest and build its prompts now, so a broken validation set fails the
    run before training rather than hours into it."""
    from medpeft.evaluation.zero_shot import load_eval_set

    load_eval_set(val.data_dir, split=val.split, check_files=on_bad_image == "error")


def validate(
    model: Any,
    val: ValidationSet,
    *,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    workers: int = 0,
    on_bad_image: str = "error",
) -> dict[str, float | None]:
    """Zero-shot metrics (``auroc``, ``accuracy``, ``f1``, ``balanced_accuracy``) of ``model`` on ``val``.

    Runs under a forked RNG, so validating (or not, or how often) never changes the training run.
    """
    from medpeft.evaluation.options import InferenceOptions
    from medpeft.evaluation.zero_shot import evaluate

    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        result = evaluate(
            model,
            val.data_dir,
            split=val.split,
            options=InferenceOptions(
                batch_size=batch_size,
                workers=workers,
                device=str(device),
                precision=precision,
                on_bad_image=on_bad_image,
            ),
            n_bootstrap=0,
        )
    metrics = result["metrics"]
    return {k: metrics.get(k) for k in ("auroc", "accuracy", "f1", "balanced_accuracy")}
