"""Helpers for the serve tests (not a test module): synthetic PNG and DICOM uploads, free ports."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
from PIL import Image


def write_png(path: Path, seed: int, size: int = 64, mode: str = "L") -> Path:
    """A noise image (different seeds give different probabilities)."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, 3)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def write_dicom(path: Path, seed: int, size: int = 96, pixels: bool = True) -> Path:
    """A 12-bit MONOCHROME2 Secondary Capture DICOM with a VOI window; ``pixels=False`` writes the
    header only (Rows/Columns but no PixelData), as a truncated export would."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    rng = np.random.default_rng(seed)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = f"synthetic-{seed}"
    if pixels:
        ds.set_pixel_data(
            rng.integers(0, 4096, (size, size), dtype=np.uint16),
            photometric_interpretation="MONOCHROME2",
            bits_stored=12,
        )
        ds.WindowCenter = "2048"
        ds.WindowWidth = "3000"
    else:
        ds.Rows, ds.Columns = size, size
    ds.save_as(path, enforce_file_format=True)
    return path


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
