"""What every dataset reader shares: options, the missing-data policy, images and the report.

A reader gets a :class:`PrepareContext` and returns a :class:`Prepared` (one DataFrame per split
plus the task description); writing files, fractions and the summary is done once, in
``medpeft.data.prepare.prepare``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from medpeft.data.manifest import DatasetInfo
from medpeft.data.prepare.cache import ImageCache, ImageJob, ImageResult
from medpeft.data.prepare.report import PrepareReport
from medpeft.errors import ConfigError, DataError

ON_MISSING = ("error", "skip")


@dataclass
class Prepared:
    """A reader's result: manifests by split name, the task, and which column stratifies fractions."""

    splits: dict[str, pd.DataFrame]
    info: DatasetInfo
    group_column: str | None = None  # fractions sample whole groups (patients/images)
    extra_files: dict[str, Path] = field(default_factory=dict)


@dataclass
class PrepareContext:
    """Options and shared services for one ``prepare`` run.

    ``out_dir`` is where the manifests will finally live (relative paths are computed against it);
    ``stage_dir`` is where files are written until the run succeeds.
    """

    dataset: str
    raw: Path
    out_dir: Path
    stage_dir: Path
    image_size: int | None
    seed: int
    on_missing: str = "error"
    on_bad_image: str = "error"
    verify_images: bool = True
    workers: int | None = None
    progress: bool = True
    report: PrepareReport = field(init=False)

    def __post_init__(self) -> None:
        if self.on_missing not in ON_MISSING:
            raise ConfigError(f"on_missing must be one of {ON_MISSING}, got {self.on_missing!r}")
        self.report = PrepareReport(self.dataset)

    def missing(self, reason: str, example: str, message: str) -> None:
        """Apply the missing-data policy: raise ``DataError(message)`` or drop and count under ``reason``."""
        if self.on_missing == "error":
            raise DataError(f"{message} (use --on-missing skip to skip and count such rows)")
        self.report.drop(reason, example)

    def rel(self, result_path: Path) -> str:
        """Manifest value for an image/mask: cache paths are already relative; raw paths are made relative."""
        if not Path(result_path).is_absolute():
            return Path(result_path).as_posix()
        return Path(os.path.relpath(Path(result_path).resolve(), self.out_dir.resolve())).as_posix()

    def images(
        self, jobs: Sequence[ImageJob], *, need_size: bool = False, desc: str | None = None
    ) -> dict[str, ImageResult]:
        """Verify/cache ``jobs``; unreadable ones raise or are dropped as "unreadable image"."""
        cache = ImageCache(
            self.stage_dir,
            image_size=self.image_size,
            on_bad_image=self.on_bad_image,
            verify=self.verify_images,
            need_size=need_size,
            workers=self.workers,
            progress=self.progress,
        )
        results, bad = cache.run(jobs, desc=desc or f"{self.dataset} images")
        for job, message in bad:
            self.report.drop("unreadable image", str(job.src))
            self.report.examples.setdefault("unreadable image messages", [])
            if len(self.report.examples["unreadable image messages"]) < 5:
                self.report.examples["unreadable image messages"].append(message)
        return results
