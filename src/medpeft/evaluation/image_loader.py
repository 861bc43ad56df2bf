"""Images for inference: files, folders, PIL images or ready tensors -> batches of model input.

Why a dataset of its own: ``eval`` and ``predict`` must see the same pixels as ``prepare`` and
``train`` (``medpeft.data.images.load_image`` for PNG/JPEG/DICOM, then the backbone's preprocessing),
decode in DataLoader workers, and report an unreadable file by name in the main process (a worker's
exception arrives wrapped in a traceback) or skip and count it. So a bad item travels as its error
message and the caller decides.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from medpeft.errors import ConfigError, DataError

ON_BAD_IMAGE = ("error", "skip")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".dic"}

#: What inference accepts per image: a file path, a PIL image, or an already preprocessed [3, H, W] tensor.
ImageInput = str | os.PathLike | Image.Image | torch.Tensor


def check_on_bad_image(value: str) -> str:
    if value not in ON_BAD_IMAGE:
        raise ConfigError(f"on_bad_image must be one of {ON_BAD_IMAGE}, got {value!r}")
    return value


def describe(item: ImageInput, index: int) -> str:
    """How an input is named in tables and errors: its path, or its position for in-memory images."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    kind = "tensor" if isinstance(item, torch.Tensor) else "image"
    return f"<{kind} {index}>"


class ImageItems(torch.utils.data.Dataset):
    """``dataset[i]`` -> ``(i, pixel_values)`` or ``(i, error message)`` for an unreadable item."""

    def __init__(
        self, items: Sequence[ImageInput], preprocess: Callable[[Image.Image], torch.Tensor]
    ) -> None:
        self.items = list(items)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | str]:
        item = self.items[index]
        if isinstance(item, torch.Tensor):
            return index, item
        try:
            image = item if isinstance(item, Image.Image) else _load(item)
            return index, self.preprocess(image)
        except DataError as err:
            return index, str(err)
        except (OSError, ValueError) as err:  # a PIL image that fails in the transform
            return index, f"cannot preprocess {describe(item, index)}: {err}"


def _load(path: str | os.PathLike) -> Image.Image:
    from medpeft.data.images import load_image

    return load_image(Path(path))


@dataclass
class Batch:
    """The readable items of one loader batch, and the unreadable ones as (index, message)."""

    indices: list[int]
    pixel_values: torch.Tensor | None
    errors: list[tuple[int, str]]

    def pin_memory(self) -> Batch:
        if self.pixel_values is not None:
            self.pixel_values = self.pixel_values.pin_memory()
        return self


def collate(samples: list[tuple[int, torch.Tensor | str]]) -> Batch:
    good = [(i, x) for i, x in samples if isinstance(x, torch.Tensor)]
    errors = [(i, x) for i, x in samples if not isinstance(x, torch.Tensor)]
    pixels = torch.stack([x for _, x in good]) if good else None
    return Batch([i for i, _ in good], pixels, errors)


def _worker_init(_: int) -> None:
    # Decoding is single-threaded work; keep each worker from spawning a full intra-op thread pool.
    torch.set_num_threads(1)


def make_loader(
    items: Sequence[ImageInput],
    preprocess: Callable[[Image.Image], torch.Tensor],
    *,
    batch_size: int,
    workers: int,
    pin_memory: bool,
) -> torch.utils.data.DataLoader:
    """A sequential loader (order = input order) yielding :class:`Batch` objects."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if workers < 0:
        raise ConfigError(f"workers must be 0 or more, got {workers}")
    return torch.utils.data.DataLoader(
        ImageItems(items, preprocess),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if workers > 0 else None,
    )


def bad_image_error(errors: Sequence[tuple[int, str]]) -> DataError:
    """The error raised for unreadable images under ``on_bad_image="error"`` (first ones named)."""
    shown = "; ".join(msg for _, msg in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return DataError(f"{shown}{more} (use --on-bad-image skip to skip and count such images)")


def readable_batches(
    batches: Iterable[Batch], on_bad_image: str, skipped: list[tuple[int, str]]
) -> Iterator[Batch]:
    """The batches that hold at least one readable image. Unreadable images raise ``bad_image_error``
    (``on_bad_image="error"``) or are appended to ``skipped`` as ``(index, message)``."""
    for batch in batches:
        if batch.errors:
            if on_bad_image == "error":
                raise bad_image_error(batch.errors)
            skipped.extend(batch.errors)
        if batch.pixel_values is not None:
            yield batch


def collect_images(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (searched recursively) into a sorted, de-duplicated list of image files.

    A folder contributes its PNG/JPEG/DICOM files (DICOMs without a suffix are recognised by their
    ``DICM`` magic); a file given explicitly is always kept, so a bad one is reported, not ignored.
    """
    from medpeft.data.images import is_dicom

    if not paths:
        raise ConfigError("no images given: pass image files or folders")
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            inside = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not p.name.startswith(".")
                and (p.suffix.lower() in IMAGE_SUFFIXES or (not p.suffix and is_dicom(p)))
            )
            if not inside:
                raise DataError(f"no PNG, JPEG or DICOM images found under the folder {path}")
            found.extend(inside)
        else:
            raise DataError(f"no such image file or folder: {path}")
    return list(dict.fromkeys(found))


def as_items(images: Sequence[Any] | ImageInput) -> list[ImageInput]:
    """Accept one image or a sequence of them (a stacked [B, 3, H, W] tensor counts as B images)."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return [images]
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            return [images]
        if images.dim() == 4:
            return list(images.unbind(0))
        raise ConfigError(f"an image tensor must be [3, H, W] or [B, 3, H, W], got {tuple(images.shape)}")
    items = list(images)
    for i, item in enumerate(items):
        if not isinstance(item, (str, os.PathLike, Image.Image, torch.Tensor)):
            raise ConfigError(
                f"image {i}: expected a path, a PIL image or a tensor, got {type(item).__name__}"
            )
    return items
