"""What one request may upload, and the defaults of ``--max-file-mb`` / ``--max-images``.

Kept apart from the readers (no numpy/PIL import) so ``medpeft --help`` stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass

from medpeft.errors import ConfigError

#: ``--max-file-mb`` default: a large uncompressed chest DICOM (3000x3000, 16 bit) is ~18 MB.
DEFAULT_MAX_FILE_MB = 50.0
#: ``--max-images`` default: what one request scores (and draws heat maps for) in seconds on a CPU.
DEFAULT_MAX_IMAGES = 16
#: ``--max-new-tokens`` default of the A³Tune tab: a short clinical answer (``a3tune eval`` uses 64 too).
DEFAULT_MAX_NEW_TOKENS = 64
#: Decoded pixels per image; a mammogram is ~20 MP. Guards against small files that decode huge.
MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class UploadLimits:
    """What one request may upload: bytes per file, images per request, pixels per image."""

    max_file_mb: float = DEFAULT_MAX_FILE_MB
    max_images: int = DEFAULT_MAX_IMAGES
    max_pixels: int = MAX_PIXELS

    def __post_init__(self) -> None:
        if not self.max_file_mb > 0:
            raise ConfigError(f"--max-file-mb must be positive, got {self.max_file_mb}")
        if self.max_images < 1:
            raise ConfigError(f"--max-images must be at least 1, got {self.max_images}")
        if self.max_pixels < 1:
            raise ConfigError(f"max_pixels must be at least 1, got {self.max_pixels}")

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)
