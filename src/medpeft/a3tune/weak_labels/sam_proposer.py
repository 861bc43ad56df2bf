"""``sam`` proposer: the ``segment-anything`` package's ``SamAutomaticMaskGenerator`` with the authors' settings.

This is the reference path: PyPI ``segment-anything==1.0`` matches the authors' vendored copy once their
explicit arguments are passed (A3TUNE.md §A.1). The checkpoint is read with ``weights_only=True`` (never an
arbitrary pickle) and its architecture (vit_h / vit_l / vit_b) is read off the patch-embedding width.
``min_mask_region_area > 0`` needs OpenCV, as segment_anything itself requires.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medpeft.a3tune.weak_labels.proposers import AmgSettings, Mask, check_image
from medpeft.errors import CheckpointError, ConfigError
from medpeft.io import safe_torch_load

INSTALL_HINT = "pip install 'medpeft[sam]'"
PATCH_EMBED_KEY = "image_encoder.patch_embed.proj.weight"
#: Patch-embedding width -> segment_anything registry name.
ARCH_BY_WIDTH = {1280: "vit_h", 1024: "vit_l", 768: "vit_b"}


def require_segment_anything() -> Any:
    try:
        import segment_anything
    except ImportError as err:
        raise ConfigError(
            f"--proposer sam needs the segment-anything package, which is not installed: {INSTALL_HINT}"
        ) from err
    return segment_anything


def detect_arch(state: dict[str, Any], source: str = "checkpoint") -> str:
    """vit_h / vit_l / vit_b from the tensor shapes of a SAM state dict."""
    weight = state.get(PATCH_EMBED_KEY)
    if weight is None or getattr(weight, "ndim", 0) != 4:
        raise CheckpointError(f"{source}: not a SAM checkpoint (no {PATCH_EMBED_KEY})")
    width = int(weight.shape[0])
    if width not in ARCH_BY_WIDTH:
        raise CheckpointError(
            f"{source}: unknown SAM image-encoder width {width} (expected 768, 1024 or 1280)"
        )
    return ARCH_BY_WIDTH[width]


def generator_kwargs(settings: AmgSettings) -> dict[str, Any]:
    """``SamAutomaticMaskGenerator`` keyword arguments for ``settings`` (binary masks)."""
    return {**settings.to_dict(), "output_mode": "binary_mask"}


class SamProposer:
    """Wraps ``SamAutomaticMaskGenerator`` around a segment_anything ``Sam`` model."""

    name = "sam"

    def __init__(self, model: Any, settings: AmgSettings | None = None, source: str = "model") -> None:
        sam = require_segment_anything()
        self.settings = settings or AmgSettings()
        self.source = source
        self.model = model.eval()
        if self.settings.min_mask_region_area > 0:
            try:
                import cv2  # noqa: F401
            except ImportError as err:
                raise ConfigError(
                    "segment_anything's small-region clean-up (min area > 0) needs OpenCV: "
                    "pip install opencv-python-headless"
                ) from err
        self.generator = sam.SamAutomaticMaskGenerator(model, **generator_kwargs(self.settings))

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, settings: AmgSettings | None = None, device: str | None = "cpu"
    ) -> SamProposer:
        sam = require_segment_anything()
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"SAM checkpoint not found: {path}")
        state = safe_torch_load(path, what="SAM checkpoint")
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: not a SAM state dict")
        arch = detect_arch(state, str(path))
        model = sam.sam_model_registry[arch](checkpoint=None)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{path}: does not match SAM {arch} (missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})"
            )
        return cls(model.to(device or "cpu"), settings, source=f"{path.name} ({arch})")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "checkpoint": self.source, **self.settings.to_dict()}

    def propose(self, image: np.ndarray) -> list[Mask]:
        try:
            records = self.generator.generate(check_image(image))
        except IndexError as err:
            # segment_anything 1.0 fails in its cross-crop NMS when no mask survived in any crop
            # (``box_area`` of an empty ``crop_boxes``): that is an empty proposal list, not an error.
            if "size 0" not in str(err):
                raise
            return []
        masks = []
        for rec in records:
            x, y, w, h = (int(round(v)) for v in rec["bbox"])
            masks.append(
                Mask(
                    np.asarray(rec["segmentation"], dtype=bool),
                    (x, y, w, h),
                    int(rec["area"]),
                    float(rec["predicted_iou"]),
                    float(rec["stability_score"]),
                )
            )
        return masks
