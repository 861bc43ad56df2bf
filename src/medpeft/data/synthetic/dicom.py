"""Writing synthetic radiographs as DICOM files through pydicom, in the encodings real archives use.

Readers must cope with 8-bit and 16-bit pixels (BitsStored 12 or 16, with a VOI window),
and with MONOCHROME1 images whose stored values are inverted (0 = white), so the synthetic
archives mix all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage


@dataclass(frozen=True)
class DicomEncoding:
    """How pixel values are stored: bits stored (8, 12 or 16) and photometric interpretation."""

    bits_stored: int
    photometric: str  # "MONOCHROME2" (0 = black) or "MONOCHROME1" (0 = white)


def sample_encoding(
    rng: np.random.Generator, p_16bit: float = 0.35, p_monochrome1: float = 0.2
) -> DicomEncoding:
    """A random encoding: mostly 8-bit MONOCHROME2, some 16-bit (12 or 16 stored), some MONOCHROME1."""
    bits = int(rng.choice([12, 16])) if rng.random() < p_16bit else 8
    photometric = "MONOCHROME1" if rng.random() < p_monochrome1 else "MONOCHROME2"
    return DicomEncoding(bits_stored=bits, photometric=photometric)


def encode_pixels(
    image: np.ndarray, encoding: DicomEncoding, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Stored pixel array for ``image`` (float in [0, 1], bright = dense) and its (center, width) window.

    16-bit images use only part of the stored range (as detectors do), so a reader that ignores
    the window still sees the right contrast order but a reader that applies it sees full contrast.
    """
    if encoding.bits_stored == 8:
        stored = np.round(image * 255.0).astype(np.uint8)
        window = None
        top = 255
    else:
        top = (1 << encoding.bits_stored) - 1
        lo = float(rng.uniform(0.02, 0.15)) * top
        hi = float(rng.uniform(0.8, 0.98)) * top
        stored = np.round(lo + image * (hi - lo)).astype(np.uint16)
        window = ((lo + hi) / 2.0, hi - lo)
    if encoding.photometric == "MONOCHROME1":
        stored = (top - stored.astype(np.int64)).astype(stored.dtype)
        if window is not None:
            window = (top - window[0], window[1])
    return stored, window


def write_dicom(
    path: Path,
    image: np.ndarray,
    encoding: DicomEncoding,
    rng: np.random.Generator,
    *,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    sex: str,
    age: int,
    view: str,
    pixel_spacing_mm: float,
    study_date: str,
) -> None:
    """Write one chest radiograph as an uncompressed (Explicit VR Little Endian) DICOM file."""
    stored, window = encode_pixels(image, encoding, rng)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = study_date
    ds.StudyTime = "000000.00"
    ds.AccessionNumber = ""
    ds.Modality = "CR"
    ds.ConversionType = "WSD"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = "view: " + view
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = sex
    ds.PatientAge = f"{age:03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.PixelSpacing = [f"{pixel_spacing_mm:.6g}", f"{pixel_spacing_mm:.6g}"]
    ds.set_pixel_data(
        stored,
        photometric_interpretation=encoding.photometric,
        bits_stored=encoding.bits_stored,
        generate_instance_uid=False,  # keep our deterministic UID (it names the SIIM file)
    )
    if window is not None:
        ds.WindowCenter = f"{window[0]:.1f}"
        ds.WindowWidth = f"{window[1]:.1f}"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def make_uid(rng: np.random.Generator, kind: int, root: str = "1.2.276.0.7230010.3.1") -> str:
    """A deterministic DICOM UID in the style of the SIIM/RSNA archives (kind 2 study, 3 series, 4 instance)."""
    a = int(rng.integers(1000, 99999))
    b = int(rng.integers(1_500_000_000, 1_520_000_000))
    c = int(rng.integers(100_000, 999_999))
    return f"{root}.{kind}.8323329.{a}.{b}.{c}"
