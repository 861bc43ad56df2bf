"""Training checkpoints you can trust: one file per checkpoint, written atomically, loaded safely.

``checkpoints/step-00000500.pt`` holds the adapter, optimizer, scheduler and grad-scaler states,
every process's RNG state and the data position. It is written to a temporary file in the same
folder, fsynced and renamed (``medpeft.io.torch_save``), so a run killed mid-write leaves
at worst a stray ``.step-*.tmp`` file and the previous checkpoint intact. Loading uses
``medpeft.io.safe_torch_load`` (weights_only): a checkpoint can never execute code. If the newest checkpoint is
unreadable anyway (a disk that lied about fsync), the previous one is used, with a warning.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from medpeft.errors import CheckpointError
from medpeft.io import safe_torch_load, torch_save

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
FORMAT = "medpeft-train-checkpoint"
FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{8,})\.pt$")
_REQUIRED = ("adapter", "optimizer", "scheduler", "progress", "rng")


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``folder`` by step, oldest first (temporary files are not listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def stray_temp_files(folder: Path) -> list[Path]:
    """Leftovers of writes that were killed before their rename."""
    folder = Path(folder)
    return sorted(folder.glob(".step-*.tmp")) if folder.is_dir() else []


def save_checkpoint(folder: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write the checkpoint of ``step`` atomically, then delete all but the newest ``keep``."""
    folder = Path(folder)
    path = checkpoint_path(folder, step)
    torch_save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, path)
    for _, old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read one checkpoint (tensors and plain containers only) and check its structure."""
    path = Path(path)
    obj = safe_torch_load(path, "checkpoint")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a medpeft training checkpoint")
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {obj.get('format_version')} is not {FORMAT_VERSION}"
        )
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return obj


def load_latest(folder: Path) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint in ``folder`` (falling back past unreadable ones), or None."""
    errors = []
    for _step, path in reversed(list_checkpoints(folder)):
        try:
            return load_checkpoint(path), path
        except CheckpointError as err:
            log.warning("skipping unreadable checkpoint: %s", err)
            errors.append(str(err))
    if errors:
        raise CheckpointError("no readable checkpoint; " + "; ".join(errors))
    return None


def process_states(state: dict[str, Any], world: int) -> list[dict[str, Any]]:
    """Every process's ``state`` (its RNG and counters), gathered in rank order; a resumed process takes its
    own back, so dropout masks continue as in an uninterrupted run."""
    if world <= 1:
        return [state]
    from accelerate.utils import gather_object

    return gather_object([state])


def save_session(
    folder: Path,
    step: int,
    *,
    adapter: dict[str, Any],
    accelerator: Any,
    optimizer: Any,
    scheduler: Any,
    progress: dict[str, Any],
    per_process: list[dict[str, Any]],
    config: dict[str, Any],
    keep: int,
) -> Path:
    """One training loop's checkpoint (both methods' loops write the same layout): adapter, optimizer,
    scheduler, grad scaler, data position, every process's state and the resolved configuration."""
    scaler = accelerator.scaler
    return save_checkpoint(
        folder,
        step,
        {
            "adapter": {k: v.detach().cpu() for k, v in adapter.items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "progress": progress,
            "rng": per_process,
            "config": config,
        },
        keep=keep,
    )


def restore_optimization(ckpt: dict[str, Any], accelerator: Any, optimizer: Any, scheduler: Any) -> None:
    """The optimizer, scheduler and grad-scaler states of a checkpoint written by :func:`save_session`."""
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if accelerator.scaler is not None and ckpt.get("scaler") is not None:
        accelerator.scaler.load_state_dict(ckpt["scaler"])
