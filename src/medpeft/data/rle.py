"""SIIM-ACR pneumothorax masks in the competition's *relative* run-length encoding.

The encoding walks the pixels in column-major (transposed) order; each pair is (offset from the
end of the previous run, run length), the first offset counting from pixel 0. An image without
pneumothorax is written as "-1" (" -1" in ``train-rle.csv``), and an image with several
pneumothorax components has one CSV row per component, so rows must be merged per image.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from medpeft.errors import DataError

EMPTY_RLE = "-1"


def _parse(rle: str) -> np.ndarray:
    tokens = rle.split()
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise DataError(f"run-length encoding holds a non-integer value {bad!r}") from None
    if values.size % 2:
        raise DataError(
            f"run-length encoding has an odd number of values ({values.size}); expected offset/length pairs"
        )
    if (values < 0).any():
        raise DataError(f"run-length encoding holds a negative value ({int(values[values < 0][0])})")
    return values


def is_empty_rle(rle: str | float | None) -> bool:
    """True for the "no pneumothorax" marker ("-1", " -1") and for a missing value (NaN/None/"")."""
    if rle is None or (isinstance(rle, float) and np.isnan(rle)):
        return True
    text = str(rle).strip()
    return text in ("", EMPTY_RLE)


def rle_decode(rle: str, height: int, width: int) -> np.ndarray:
    """Decode one relative RLE string into a boolean ``(height, width)`` mask.

    Raises ``DataError`` for malformed strings (odd count, negative or non-integer values) and for
    runs that go past the end of the image, which usually means the wrong image size was given.
    """
    mask = np.zeros(height * width, dtype=bool)
    if is_empty_rle(rle):
        return mask.reshape(height, width)
    values = _parse(str(rle))
    offsets, lengths = values[0::2], values[1::2]
    ends = np.cumsum(offsets + lengths)
    starts = ends - lengths
    if ends.size and ends[-1] > mask.size:
        raise DataError(
            f"run-length encoding runs past the end of a {height}x{width} image "
            f"(ends at pixel {int(ends[-1])} of {mask.size}); is the image size right?"
        )
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        mask[start:end] = True
    # The flat order is column-major: reshape as (width, height) and transpose back.
    return mask.reshape(width, height).T.copy()


def rle_encode(mask: np.ndarray) -> str:
    """Encode a 2-D mask (non-zero = inside) in the competition's relative RLE; "-1" if empty."""
    if mask.ndim != 2:
        raise DataError(f"rle_encode expects a 2-D mask, got shape {tuple(mask.shape)}")
    flat = np.asarray(mask).astype(bool).T.ravel()
    if not flat.any():
        return EMPTY_RLE
    padded = np.concatenate([[False], flat, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = changes[0::2], changes[1::2]
    lengths = ends - starts
    previous_ends = np.concatenate([[0], ends[:-1]])
    offsets = starts - previous_ends
    pairs = np.stack([offsets, lengths], axis=1).ravel()
    return " ".join(str(int(v)) for v in pairs)


def merge_rles(rles: Iterable[str | float | None], height: int, width: int) -> np.ndarray:
    """Union of several RLE rows of one image (one row per pneumothorax component)."""
    mask = np.zeros((height, width), dtype=bool)
    for rle in rles:
        if not is_empty_rle(rle):
            mask |= rle_decode(str(rle), height, width)
    return mask
