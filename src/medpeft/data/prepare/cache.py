"""Checking raw images and writing the resized image cache.

With ``image_size`` every image is decoded once here, resized (shorter side ``image_size``) and
saved under ``out/images/<key>`` (PNG for grey, JPEG quality 95 for colour) so training is not
starved by decoding 3000-pixel JPEGs or DICOMs. Without it, the manifest points at the raw files
and, with ``verify``, each is still decoded once so a corrupt file fails here, not mid-training.
Unreadable images raise (``on_bad_image="error"``) or are skipped and counted (``"skip"``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from medpeft.errors import ConfigError, DataError

ON_BAD_IMAGE = ("error", "skip")
IMAGES_DIR = "images"


@dataclass(frozen=True)
class ImageJob:
    """One raw image: its id (manifest row key), its file, and its cache key (relative, no suffix)."""

    id: str
    src: Path
    key: str


@dataclass(frozen=True)
class ImageResult:
    """Where the manifest should point, and the size of that image and of the raw one."""

    path: Path
    width: int
    height: int
    raw_width: int
    raw_height: int


def default_workers() -> int:
    """Threads for decoding: PIL and numpy release the GIL, so threads scale without pickling."""
    return max(1, min(8, os.cpu_count() or 1))


class ImageCache:
    """Decode/verify raw images and (optionally) write resized copies, in parallel threads."""

    def __init__(
        self,
        stage_dir: Path,
        *,
        image_size: int | None,
        on_bad_image: str = "error",
        verify: bool = True,
        need_size: bool = False,
        workers: int | None = None,
        progress: bool = True,
    ) -> None:
        if on_bad_image not in ON_BAD_IMAGE:
            raise ConfigError(f"on_bad_image must be one of {ON_BAD_IMAGE}, got {on_bad_image!r}")
        if image_size is not None and image_size < 8:
            raise ConfigError(f"--image-size must be at least 8 pixels, got {image_size}")
        self.stage_dir = Path(stage_dir)
        self.image_size = image_size
        self.on_bad_image = on_bad_image
        self.verify = verify
        self.need_size = need_size
        self.workers = workers or default_workers()
        self.progress = progress

    def _one(self, job: ImageJob) -> ImageResult:
        from medpeft.data.images import image_size, load_image, resize_shorter_side

        if self.image_size is None:
            if not job.src.is_file():
                raise DataError(f"image file not found: {job.src}")
            if self.verify:
                img = load_image(job.src)
                w, h = img.size
            elif self.need_size:
                w, h = image_size(job.src)
            else:
                w = h = 0
            return ImageResult(job.src, w, h, w, h)
        img = load_image(job.src)
        small = resize_shorter_side(img, self.image_size)
        suffix = ".png" if small.mode == "L" else ".jpg"
        rel = Path(IMAGES_DIR) / (job.key + suffix)
        dest = self.stage_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".png":
            small.save(dest, format="PNG")
        else:
            small.save(dest, format="JPEG", quality=95)
        return ImageResult(rel, small.width, small.height, img.width, img.height)

    def run(
        self, jobs: Sequence[ImageJob], *, desc: str = "images"
    ) -> tuple[dict[str, ImageResult], list[tuple[ImageJob, str]]]:
        """Process ``jobs``; returns results by job id and the skipped (job, message) pairs.

        Result paths are relative to the staging folder for cached images and absolute raw paths
        otherwise. With ``on_bad_image="error"`` the first unreadable image raises ``DataError``.
        """
        from tqdm.auto import tqdm

        results: dict[str, ImageResult] = {}
        bad: list[tuple[ImageJob, str]] = []
        bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not self.progress or not jobs, leave=False)

        def work(job: ImageJob) -> tuple[ImageJob, ImageResult | None, str | None]:
            try:
                return job, self._one(job), None
            except DataError as err:
                return job, None, str(err)

        pool = ThreadPoolExecutor(max_workers=self.workers)
        chunk = self.workers * 64  # bounded number of pending futures for 300k-image datasets
        try:
            for start in range(0, len(jobs), chunk):
                for job, result, error in pool.map(work, jobs[start : start + chunk]):
                    bar.update(1)
                    if error is not None:
                        if self.on_bad_image == "error":
                            raise DataError(
                                f"{error} (use --on-bad-image skip to skip and count such images)"
                            )
                        bad.append((job, error))
                    else:
                        results[job.id] = result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        return results, bad
