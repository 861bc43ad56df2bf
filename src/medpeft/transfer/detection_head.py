"""A one-class torchvision detector (RetinaNet or FCOS) on a frozen ViT through a ViTDet simple pyramid.

ViTDet (Li et al., 2022) showed a plain ViT needs no hierarchical backbone for detection: from the last
block's map (stride p, 14×14 for ViT-B/16 at 224 px) a deconvolution gives stride p/2, identity stride p
and max-pooling stride 2p; each level then gets a 1×1 and a 3×3 conv to ``out_channels``. The pyramid is
the torchvision ``backbone`` (it supplies ``out_channels``); anchors scale with the strides
(RetinaNet: 4·stride × 2^{0,1/3,2/3} × ratios {1:2, 1:1, 2:1}; FCOS: one point per location), so the same
head works for the 64-px tiny backbone and 224-px BiomedCLIP.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial

import torch
from torch import nn

from medpeft.errors import ConfigError
from medpeft.transfer.encoders import FrozenViTEncoder

HEADS = ("retinanet", "fcos")


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, 32), channels)


class SimplePyramid(nn.Module):
    """Frozen ViT's last feature map -> {"0": stride p/2, "1": stride p, "2": stride 2p}, each ``out_channels``.

    The encoder is held outside the module tree so checkpoints, the optimizer and DDP see only the pyramid.
    """

    def __init__(self, encoder: FrozenViTEncoder, out_channels: int = 256) -> None:
        super().__init__()
        self._frozen = (encoder,)
        c = encoder.channels
        self.out_channels = int(out_channels)
        self.scales = nn.ModuleList(
            [
                nn.Sequential(nn.ConvTranspose2d(c, c // 2, 2, stride=2), _norm(c // 2), nn.GELU()),
                nn.Identity(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
        )
        self.outputs = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(cin, out_channels, 1, bias=False),
                    _norm(out_channels),
                    nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                    _norm(out_channels),
                )
                for cin in (c // 2, c, c)
            ]
        )
        p = encoder.patch_size
        self.strides = (p / 2, float(p), 2.0 * p)

    @property
    def encoder(self) -> FrozenViTEncoder:
        return self._frozen[0]

    def forward(self, pixel_values: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        last = self.encoder(pixel_values)[-1]
        return OrderedDict(
            (str(i), out(scale(last)))
            for i, (scale, out) in enumerate(zip(self.scales, self.outputs, strict=True))
        )


def build_detector(
    encoder: FrozenViTEncoder,
    *,
    head: str = "retinanet",
    out_channels: int = 256,
    score_thresh: float = 0.05,
    detections_per_img: int = 100,
    seed: int = 0,
) -> nn.Module:
    """A torchvision RetinaNet/FCOS for one class (label 0) on ``encoder``, initialised from ``seed`` alone.

    Images reach it already resized to ``encoder.image_size`` and normalised, so its transform neither
    resizes nor normalises (mean 0, std 1, fixed size).
    """
    from torchvision.models.detection import FCOS, RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.retinanet import RetinaNetHead

    if head not in HEADS:
        raise ConfigError(f"--head must be one of {HEADS}, got {head!r}")
    if out_channels < 8 or (head == "fcos" and out_channels % 32):
        raise ConfigError(
            f"--fpn-channels {out_channels}: must be at least 8 (and a multiple of 32 for fcos)"
        )
    size = encoder.image_size
    common = {
        "min_size": size,
        "max_size": size,
        "image_mean": [0.0, 0.0, 0.0],
        "image_std": [1.0, 1.0, 1.0],
        "size_divisible": encoder.patch_size,
        "fixed_size": (size, size),
        "score_thresh": score_thresh,
        "detections_per_img": detections_per_img,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pyramid = SimplePyramid(encoder, out_channels)
        strides = pyramid.strides
        if head == "retinanet":
            sizes = tuple(tuple(int(round(4 * s * 2 ** (i / 3))) for i in range(3)) for s in strides)
            anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(strides))
            box_head = RetinaNetHead(
                out_channels,
                anchors.num_anchors_per_location()[0],
                1,
                norm_layer=partial(nn.GroupNorm, math.gcd(out_channels, 32)),
            )
            return RetinaNet(pyramid, num_classes=1, anchor_generator=anchors, head=box_head, **common)
        anchors = AnchorGenerator(tuple((int(s),) for s in strides), ((1.0,),) * len(strides))
        return FCOS(pyramid, num_classes=1, anchor_generator=anchors, **common)


class DetectionModel(nn.Module):
    """``forward(pixel_values, boxes)``: training losses (sum) when training, detections when evaluating."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    @property
    def encoder(self) -> FrozenViTEncoder:
        return self.detector.backbone.encoder

    def forward(
        self, pixel_values: torch.Tensor, boxes: list[torch.Tensor] | None = None
    ) -> torch.Tensor | list[dict[str, torch.Tensor]]:
        images = list(pixel_values)
        if self.training:
            if boxes is None:
                raise ValueError("training needs ground-truth boxes")
            targets = [
                {"boxes": b, "labels": torch.zeros(len(b), dtype=torch.int64, device=b.device)} for b in boxes
            ]
            losses = self.detector(images, targets)
            return sum(losses.values())
        return self.detector(images)
