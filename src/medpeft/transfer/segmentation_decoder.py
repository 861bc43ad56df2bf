"""A light UNETR/SETR-style decoder: multi-level ViT feature maps -> a full-resolution mask logit.

A plain ViT has one resolution (stride = patch size) at every depth, so, as in UNETR, shallower blocks are
given finer strides: the deepest block stays at stride ``p``, the next at ``p/2``, then ``p/4`` … (never
finer than stride 2). The decoder starts from the deepest map and progressively doubles the resolution
(bilinear upsampling + 3×3 conv, SETR-PUP), fusing each level where its stride is reached, down to stride
1. Channels halve at every doubling, so the full-resolution layers stay cheap; GroupNorm keeps it
independent of the batch size (gradient accumulation, multi-GPU, batch 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """3×3 conv, GroupNorm, GELU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(_groups(cout), cout), nn.GELU()
    )


class Up(nn.Module):
    """×2 bilinear upsampling then a conv block (no transposed-conv checkerboard)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = conv_block(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))


class ProgressiveDecoder(nn.Module):
    """Feature maps (shallow -> deep, each [B, C, g, g]) -> one mask logit [B, 1, size, size].

    ``width``: channels at stride ``p`` (halved per doubling, at least ``min_width``).
    """

    def __init__(
        self,
        in_channels: int,
        num_levels: int,
        patch_size: int,
        *,
        width: int = 256,
        min_width: int = 16,
    ) -> None:
        super().__init__()
        self.n_up = max(1, math.ceil(math.log2(patch_size)))
        n = self.n_up
        # stride exponent per level: deepest n (stride 2**n ~ p), shallower ones one finer each, at least 1
        self.level_k = [max(1, n - (num_levels - 1 - i)) for i in range(num_levels)]
        self.channels = [max(min_width, width >> (n - k)) for k in range(n + 1)]
        ch = self.channels
        adapters = []
        for k in self.level_k:
            layers: list[nn.Module] = [nn.GroupNorm(1, in_channels), nn.Conv2d(in_channels, ch[n], 1)]
            layers += [Up(ch[j], ch[j - 1]) for j in range(n, k, -1)]
            adapters.append(nn.Sequential(*layers))
        self.adapters = nn.ModuleList(adapters)
        self.ups = nn.ModuleDict({str(k): Up(ch[k + 1], ch[k]) for k in range(n)})
        fuse = {}
        for k in range(n + 1):
            skips = sum(1 for i, lk in enumerate(self.level_k) if lk == k and i != num_levels - 1)
            if skips:
                fuse[str(k)] = conv_block(ch[k] * (1 + skips), ch[k])
        self.fuse = nn.ModuleDict(fuse)
        self.head = nn.Conv2d(ch[0], 1, 1)

    def forward(self, features: Sequence[torch.Tensor], size: int) -> torch.Tensor:
        if len(features) != len(self.adapters):
            raise ValueError(f"decoder expects {len(self.adapters)} feature maps, got {len(features)}")
        levels = [adapt(f) for adapt, f in zip(self.adapters, features, strict=True)]
        deepest = len(levels) - 1
        x = levels[deepest]
        for k in range(self.n_up, -1, -1):
            if k < self.n_up:
                x = self.ups[str(k)](x)
            skips = [lv for i, lv in enumerate(levels) if self.level_k[i] == k and i != deepest]
            if skips:
                skips = [s if s.shape[-2:] == x.shape[-2:] else _resize(s, x.shape[-2:]) for s in skips]
                x = self.fuse[str(k)](torch.cat([x, *skips], dim=1))
        logits = self.head(x)
        if logits.shape[-2:] != (size, size):
            logits = _resize(logits, (size, size))
        return logits


def _resize(x: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(hw), mode="bilinear", align_corners=False)


class SegmentationModel(nn.Module):
    """Frozen encoder + trainable decoder. The encoder is held outside the module tree on purpose: the
    checkpoint, the optimizer and DDP then see only the decoder."""

    def __init__(self, encoder: nn.Module, decoder: ProgressiveDecoder) -> None:
        super().__init__()
        self.decoder = decoder
        self._frozen = (encoder,)  # a tuple is not registered as a submodule

    @property
    def encoder(self) -> nn.Module:
        return self._frozen[0]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] normalised pixels -> [B, 1, S, S] mask logits."""
        features = self.encoder(pixel_values)
        return self.decoder(features, pixel_values.shape[-1])
