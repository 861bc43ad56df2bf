"""Bounding boxes: the two formats medpeft reads (RSNA's xywh, and xyxy), validated and converted to xyxy."""

from __future__ import annotations

from typing import Any, Literal

import torch

from medpeft.errors import ConfigError, DataError

BoxFormat = Literal["xyxy", "xywh"]


def to_xyxy(boxes: Any, box_format: BoxFormat, *, what: str = "boxes") -> torch.Tensor:
    """[K, 4] float tensor in xyxy, validated: finite and of non-negative size (``DataError`` names ``what``)."""
    if box_format not in ("xyxy", "xywh"):
        raise ConfigError(f"box_format must be 'xyxy' or 'xywh', got {box_format!r}")
    t = boxes if isinstance(boxes, torch.Tensor) else torch.as_tensor(boxes if boxes is not None else [])
    t = t.detach().to("cpu", torch.float64)
    if t.numel() == 0:
        return torch.zeros((0, 4), dtype=torch.float64)
    if t.dim() == 1 and t.numel() == 4:
        t = t.unsqueeze(0)
    if t.dim() != 2 or t.shape[1] != 4:
        raise DataError(f"{what}: expected [K, 4] boxes, got shape {list(t.shape)}")
    if not torch.isfinite(t).all():
        row = int((~torch.isfinite(t)).any(1).nonzero()[0])
        raise DataError(f"{what}: box {row} has a NaN or infinite coordinate: {t[row].tolist()}")
    if box_format == "xywh":
        sizes = t[:, 2:]
        t = torch.cat([t[:, :2], t[:, :2] + sizes], dim=1)
    else:
        sizes = t[:, 2:] - t[:, :2]
    negative = (sizes < 0).any(1)
    if negative.any():
        row = int(negative.nonzero()[0])
        raise DataError(
            f"{what}: box {row} has a negative width or height ({box_format} {_box_row(boxes, row)})"
        )
    return t


def _box_row(boxes: Any, row: int) -> list[float]:
    """One input box as a plain list, for error messages."""
    return [float(v) for v in torch.as_tensor(boxes).reshape(-1, 4)[row].tolist()]
