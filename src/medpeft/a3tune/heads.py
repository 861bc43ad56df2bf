"""Visually-critical head selection (A3TUNE.md §B): per sample, the top-R heads over all recorded layers by
their image-attention ratio r[l, h] (mean over query rows of the attention mass on image tokens), no gradient.

The authors' code passes R = 128 but overwrites it with the per-layer head count, so it effectively selects
R = H (32 for the 7B models); here ``top_heads`` means what it says (see ``A3TuneConfig.preset``).
"""

from __future__ import annotations

import torch

from medpeft.errors import ConfigError


@torch.no_grad()
def select_heads(ratios: torch.Tensor, top_heads: int) -> torch.Tensor:
    """``ratios [B, L, H]`` -> bool ``[B, L, H]``: each sample's ``top_heads`` highest ratios; R ≥ L·H selects all."""
    if top_heads < 1:
        raise ConfigError(f"top_heads must be >= 1, got {top_heads}")
    if ratios.ndim != 3:
        raise ConfigError(f"head ratios must be [batch, layers, heads], got shape {tuple(ratios.shape)}")
    b, layers, heads = ratios.shape
    flat = ratios.detach().reshape(b, layers * heads)
    if top_heads >= layers * heads:
        return torch.ones_like(flat, dtype=torch.bool).reshape(b, layers, heads)
    idx = flat.topk(top_heads, dim=1).indices
    chosen = torch.zeros_like(flat, dtype=torch.bool).scatter(1, idx, True)
    return chosen.reshape(b, layers, heads)
