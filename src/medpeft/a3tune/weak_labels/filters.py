"""The authors' mask filters on the 256² working image (A3TUNE.md §A.2), each configurable.

In order: ``area < max_area`` (40000 of 65536 pixels), then ``filter_sam_results``: drop a box touching
the top or left edge (``x == 0 or y == 0``), a box with a side ``<= min_side`` (12), or a box reaching past
``edge`` (``x + w > 253 or y + h > 253``). Boxes are segment_anything XYWH (see :mod:`.proposers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from medpeft.a3tune.weak_labels.proposers import Mask


@dataclass(frozen=True)
class FilterSettings:
    """``None`` switches a test off."""

    max_area: int | None = 40000
    drop_top_left: bool = True
    min_side: int | None = 12
    edge: int | None = 253

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def keep_mask(mask: Mask, settings: FilterSettings = FilterSettings()) -> bool:
    """True when ``mask`` passes every enabled filter."""
    x, y, w, h = mask.bbox
    if settings.max_area is not None and not mask.area < settings.max_area:
        return False
    if settings.drop_top_left and (x == 0 or y == 0):
        return False
    if settings.min_side is not None and (w <= settings.min_side or h <= settings.min_side):
        return False
    if settings.edge is not None and (y + h > settings.edge or x + w > settings.edge):
        return False
    return True


def filter_masks(masks: Sequence[Mask], settings: FilterSettings = FilterSettings()) -> list[Mask]:
    """The masks that pass, in their original order."""
    return [m for m in masks if keep_mask(m, settings)]
