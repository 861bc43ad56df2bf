"""Uploaded files -> decoded images, checked against the server's limits before any model sees them.

Why a module of its own: a web page takes files from anyone who can reach it, so every file is checked
(size, pixel count, readability) and a bad one becomes a message naming it by its uploaded name, never
an exception that would stop the server. Pixels come from ``medpeft.data.images.load_image``, the same
reader ``predict``/``eval`` use, so the page and the command line score identical pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from medpeft.data.images import image_size, load_image
from medpeft.errors import ConfigError, DataError
from medpeft.serve.limits import UploadLimits


@dataclass
class Upload:
    """One readable upload: the name shown in the page and the CSV, and its decoded pixels."""

    name: str
    image: Image.Image


@dataclass
class ReadUploads:
    """The readable uploads in upload order, and one message per rejected file."""

    images: list[Upload]
    rejected: list[str]


def display_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The uploaded file names; a repeated name gets `` (2)``, `` (3)``... so table rows stay distinct."""
    names: list[str] = []
    for path in paths:
        base = Path(path).name or "upload"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base} ({n})"
        names.append(name)
    return names


def check_count(paths: Sequence[str | os.PathLike], limits: UploadLimits) -> None:
    """A request with no file or more files than ``max_images`` is refused as a whole (``ConfigError``)."""
    if not paths:
        raise ConfigError("no images uploaded: add one or more PNG, JPEG or DICOM files")
    if len(paths) > limits.max_images:
        raise ConfigError(
            f"{len(paths)} files uploaded but this server scores at most {limits.max_images} images per "
            f"request (--max-images); upload fewer"
        )


def read_upload(path: str | os.PathLike, name: str, limits: UploadLimits) -> Image.Image:
    """Decode one file after checking its size and pixel count; ``DataError`` naming ``name`` otherwise."""
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as err:
        raise DataError(f"{name}: the upload could not be opened ({err.strerror})") from err
    if size == 0:
        raise DataError(f"{name}: the file is empty (0 bytes)")
    if size > limits.max_file_bytes:
        raise DataError(
            f"{name}: {size / 2**20:.1f} MB is over this server's limit of {limits.max_file_mb:g} MB "
            "per file (--max-file-mb)"
        )
    try:
        try:
            width, height = image_size(file)
        except DataError:
            load_image(file)  # the reader's message says what the file is not (PNG, JPEG or DICOM)
            raise
        if width * height > limits.max_pixels:
            raise DataError(
                f"{name}: {width}x{height} pixels is over the limit of {limits.max_pixels / 1e6:g} megapixels"
            )
        return load_image(file)
    except DataError as err:
        raise DataError(_rename(str(err), file, name)) from err
    except Image.DecompressionBombError as err:
        raise DataError(f"{name}: the image decodes to too many pixels ({err})") from err


def _rename(message: str, path: Path, name: str) -> str:
    """The reader's message with the server-side temporary path replaced by the uploaded name."""
    text = message.replace(str(path), name)
    return text if name in text else f"{name}: {text}"


def read_uploads(paths: Sequence[str | os.PathLike], limits: UploadLimits) -> ReadUploads:
    """Check the count, then read every file; a bad file is rejected with a message, the rest go on."""
    check_count(paths, limits)
    images: list[Upload] = []
    rejected: list[str] = []
    for path, name in zip(paths, display_names(paths), strict=True):
        try:
            images.append(Upload(name, read_upload(path, name, limits)))
        except DataError as err:
            rejected.append(str(err))
    return ReadUploads(images, rejected)
