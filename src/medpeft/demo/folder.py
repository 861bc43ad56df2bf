"""A demo's output folder and result: both demos claim their folder the same way and return the same thing.

A non-empty folder is refused; with ``overwrite`` only a previous run of the *same* demo (its marker file)
is cleared, and only the outputs that demo writes, so a user's folder is never deleted.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medpeft.errors import OutputExistsError
from medpeft.io import check_out_dir


@dataclass
class DemoResult:
    """Where the results are, the metrics themselves and the wall time."""

    out: Path
    metrics: dict[str, Any]
    wall_seconds: float


def claim_demo_folder(
    out: Path, overwrite: bool, *, marker: str, outputs: Sequence[str], command: str
) -> None:
    """Refuse a non-empty ``out``; with ``overwrite`` clear a previous ``command`` run's ``outputs`` (found by
    its ``marker`` file) and nothing else."""
    if not check_out_dir(
        out,
        may_reuse=overwrite,
        advice="pass --overwrite to replace an earlier demo there, or choose another --out",
    ):
        return
    if not (out / marker).is_file():
        raise OutputExistsError(
            f"{out} is not empty and was not written by '{command}' (no {marker}); "
            "refusing to delete its files even with --overwrite: choose another --out"
        )
    for name in outputs:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
