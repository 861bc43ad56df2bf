"""Image I/O: one loader for PNG, JPEG and DICOM so every command sees the same pixels.

Grey-scale medical images come back as mode ``"L"`` and colour pathology as ``"RGB"``. DICOM is
windowed to 8 bits in one documented way (modality LUT, then the VOI window, else min-max,
MONOCHROME1 inverted) so that a cached PNG, ``eval`` and ``predict`` all agree on the pixels.
Every failure is a :class:`~medpeft.errors.DataError` naming the file and the problem.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medpeft.errors import DataError

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}

# pydicom names a plugin and its requirements; this maps them to what ``pip install`` wants.
_PIP_NAMES = {"gdcm": "python-gdcm"}


def is_dicom(path: Path) -> bool:
    """True for a DICOM file: by suffix, or by the ``DICM`` magic at byte 128 (files without a suffix)."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def load_image(path: str | Path) -> Image.Image:
    """Read a PNG, JPEG or DICOM file as an 8-bit ``"L"`` (grey) or ``"RGB"`` (colour) image.

    Colour files whose three channels are identical are returned as ``"L"``: a chest X-ray saved
    as RGB is still a grey image, and treating it as such keeps the resized cache small.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    if is_dicom(path):
        return _load_dicom(path)
    return _load_raster(path)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image without decoding its pixels (PIL header or DICOM Rows/Columns)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    if is_dicom(path):
        ds = _read_dicom(path, stop_before_pixels=True)
        try:
            return int(ds.Columns), int(ds.Rows)
        except AttributeError as err:
            raise DataError(f"cannot read DICOM {path}: no Rows/Columns in the header") from err
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"cannot read image {path}: {err}") from err


def resize_shorter_side(img: Image.Image, size: int, resample: int | None = None) -> Image.Image:
    """Resize so the shorter side is ``size`` pixels, keeping the aspect ratio.

    Used by the image cache so that training/eval decode small files. Bicubic by default;
    pass ``Image.Resampling.NEAREST`` for masks so labels stay 0/255.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    w, h = img.size
    if min(w, h) == size:
        return img.copy()
    if w <= h:
        new_w, new_h = size, max(1, round(h * size / w))
    else:
        new_w, new_h = max(1, round(w * size / h)), size
    if resample is None:
        resample = Image.Resampling.BICUBIC
    return img.resize((new_w, new_h), resample=resample)


def _load_raster(path: Path) -> Image.Image:
    """PNG/JPEG via PIL, decoding fully so truncated files fail here rather than in a DataLoader."""
    try:
        with Image.open(path) as img:
            img.load()
            return _to_l_or_rgb(img)
    except UnidentifiedImageError as err:
        raise DataError(f"cannot read image {path}: not a PNG, JPEG or DICOM file (or corrupt)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"cannot read image {path}: corrupt or truncated ({err})") from err


def _to_l_or_rgb(img: Image.Image) -> Image.Image:
    """Normalise any PIL mode to 8-bit L or RGB (16-bit grey min-max scaled, alpha dropped)."""
    mode = img.mode
    if mode == "L":
        return img.copy()
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(_minmax_to_uint8(np.asarray(img, dtype=np.float64)), mode="L")
    if mode in ("1", "LA", "La"):
        return img.convert("L")
    rgb = img.convert("RGB")
    arr = np.asarray(rgb)
    if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
        return Image.fromarray(np.ascontiguousarray(arr[..., 0]), mode="L")
    return rgb


def _minmax_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Linear min-max scaling to 0..255; a constant image becomes all zeros."""
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((arr - lo) * (255.0 / (hi - lo))).clip(0, 255).astype(np.uint8)


def _read_dicom(path: Path, *, stop_before_pixels: bool = False):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as err:
        raise DataError(f"cannot read DICOM {path}: not a valid DICOM file ({err})") from err
    except (OSError, EOFError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"cannot read DICOM {path}: corrupt or truncated ({err})") from err


def missing_decoder_packages(transfer_syntax_uid: str) -> list[str] | None:
    """``None`` when pydicom can decode this transfer syntax, else the pip commands that would add a decoder."""
    from pydicom.pixels.decoders.base import get_decoder

    try:
        decoder = get_decoder(transfer_syntax_uid)
    except (NotImplementedError, ValueError):
        return []
    if decoder.is_available:
        return None
    commands = []
    for line in decoder.missing_dependencies:
        name, _, requires = line.partition(" - requires ")
        pkgs = [p for p in re.findall(r"([A-Za-z][\w.-]*)(?:\s*[<>=!~]=?\s*[\w.]+)?", requires) if p != "and"]
        pkgs = [_PIP_NAMES.get(p, p) for p in pkgs if p != "numpy"] or [_PIP_NAMES.get(name, name)]
        commands.append("pip install " + " ".join(pkgs))
    return commands


def _load_dicom(path: Path) -> Image.Image:
    """DICOM -> 8-bit image: modality LUT, VOI window (else min-max), MONOCHROME1 inverted."""
    from pydicom.pixels import apply_modality_lut

    ds = _read_dicom(path)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DataError(f"cannot read DICOM {path}: the file has no pixel data (is it truncated?)")
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if tsyntax is not None and tsyntax.is_compressed:
        missing = missing_decoder_packages(tsyntax)
        if missing is not None:
            hint = (" or ".join(f"'{c}'" for c in missing)) if missing else "a decoder plugin for it"
            raise DataError(
                f"cannot read DICOM {path}: its pixel data use the compressed transfer syntax "
                f"'{tsyntax.name}' ({tsyntax}) and no installed package decodes it; install {hint}"
            )
    try:
        arr = ds.pixel_array
    except Exception as err:  # pydicom raises many types for broken pixel data
        name = tsyntax.name if tsyntax is not None else "unknown transfer syntax"
        detail = " ".join(str(err).split())
        raise DataError(f"cannot read DICOM {path}: cannot decode pixel data ({name}): {detail}") from err
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if frames > 1:
        arr = arr[0]
    if samples == 3:
        if arr.dtype != np.uint8:
            arr = _minmax_to_uint8(arr.astype(np.float64))
        return _to_l_or_rgb(Image.fromarray(np.ascontiguousarray(arr), mode="RGB"))
    if arr.ndim != 2:
        raise DataError(f"cannot read DICOM {path}: unsupported pixel array shape {arr.shape}")
    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    out = _window_to_uint8(values, ds)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 255 - out
    return Image.fromarray(out, mode="L")


def _first(value) -> float:
    """WindowCenter/WindowWidth may be multi-valued; the first pair is the default view."""
    try:
        return float(value[0])
    except (TypeError, IndexError):
        return float(value)


def _window_to_uint8(values: np.ndarray, ds) -> np.ndarray:
    """Apply the DICOM linear VOI window (PS3.3 C.11.2.1.2.1) when present, else min-max."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        try:
            c, w = _first(center), _first(width)
        except (TypeError, ValueError):
            c, w = None, None
        if c is not None and w is not None and w >= 1:
            if w == 1:
                scaled = np.where(values <= c - 0.5, 0.0, 1.0)
            else:
                scaled = ((values - (c - 0.5)) / (w - 1) + 0.5).clip(0.0, 1.0)
            return np.round(scaled * 255.0).astype(np.uint8)
    return _minmax_to_uint8(values)
