"""The mask-based attention alignment loss (A3TUNE.md §C).

With Ā[t, p] = the selected heads' attention summed (query row t, image token p) and M_k the sample's k-th weak
mask on the image-token grid (raster order):
  ``"ratio"`` (the authors' default): a_{k,t} = Σ_p Ā[t,p]·M_k[p] / Σ_p Ā[t,p];  L = Σ_k mean_t (1 − a_{k,t})²
  ``"kl"``: q_t = Ā[t]/(ΣĀ[t] + 1e-8), p_k = M_k/(ΣM_k + 1e-8);  L = Σ_k (1/T) Σ_t KL(p_k ‖ q_t)
(the authors' mean over all L·H heads with zeros cancels in both, so the sum is used). The batch value is the
mean over samples; a sample without masks contributes 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from medpeft.errors import ConfigError, DataError

ALIGN_LOSSES = ("ratio", "kl")
KL_EPS = 1e-8


def selected_attention(attn: Sequence[torch.Tensor], selected: torch.Tensor) -> torch.Tensor:
    """Σ over selected heads: ``attn`` per recorded layer ``[B, H, T, P]``, ``selected [B, L, H]`` -> ``[B, T, P]``."""
    total = None
    for layer, a in enumerate(attn):
        part = torch.einsum("bhtp,bh->btp", a.float(), selected[:, layer].float())
        total = part if total is None else total + part
    if total is None:
        raise ConfigError("no attention layers were recorded")
    return total


def check_weak_masks(
    weak_masks: Sequence[torch.Tensor | None] | None, image_counts: Sequence[int]
) -> list[torch.Tensor | None]:
    """Each sample's masks as float ``[K, g·g]`` on its image-token grid (g² = its image tokens), or None."""
    n = len(image_counts)
    if weak_masks is None:
        return [None] * n
    if len(weak_masks) != n:
        raise DataError(f"weak_masks has {len(weak_masks)} entries for a batch of {n} samples")
    out: list[torch.Tensor | None] = []
    for b, (m, count) in enumerate(zip(weak_masks, image_counts, strict=True)):
        if m is None:
            out.append(None)
            continue
        g = math.isqrt(count)
        if not isinstance(m, torch.Tensor) or m.ndim != 3 or g * g != count or tuple(m.shape[1:]) != (g, g):
            shape = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise DataError(
                f"weak_masks[{b}] has shape {shape}; sample {b} has {count} image tokens, so masks must be "
                f"[K, {g}, {g}]" + ("" if g * g == count else f" (but {count} is not a square grid)")
            )
        out.append(m.reshape(m.shape[0], count).float() if m.shape[0] else None)
    return out


def sample_alignment(abar: torch.Tensor, masks: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One sample: ``abar [T, P]`` (valid rows/columns only), ``masks [K, P]`` -> (loss, a [T, K] detached)."""
    masks = masks.to(abar.device, abar.dtype)
    a = (abar @ masks.T) / abar.sum(-1, keepdim=True)
    if kind == "ratio":
        loss = ((1.0 - a) ** 2).mean(0).sum()
    elif kind == "kl":
        q = abar / (abar.sum(-1, keepdim=True) + KL_EPS)
        p = masks / (masks.sum(-1, keepdim=True) + KL_EPS)
        log_q = q.log()
        loss = sum(F.kl_div(log_q, p[k].expand_as(q), reduction="batchmean") for k in range(p.shape[0]))
    else:
        raise ConfigError(f"align_loss must be one of {ALIGN_LOSSES}, got {kind!r}")
    return loss, a.detach()


def alignment_loss(
    abar: torch.Tensor,
    row_valid: torch.Tensor,
    col_valid: torch.Tensor,
    masks: Sequence[torch.Tensor | None],
    kind: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Batch alignment loss from ``abar [B, T, P]``: (mean over samples, per-sample losses [B], mean
    attention-in-mask ratio a over samples with masks (detached; None when no sample has masks))."""
    per_sample = []
    in_mask = []
    for b, m in enumerate(masks):
        if m is None:
            per_sample.append(abar.new_zeros(()))
            continue
        t, p = int(row_valid[b].sum()), int(col_valid[b].sum())
        loss, a = sample_alignment(abar[b, :t, :p], m, kind)
        per_sample.append(loss)
        in_mask.append(a.mean())
    losses = torch.stack(per_sample)
    ratio = torch.stack(in_mask).mean() if in_mask else None
    return losses.mean(), losses, ratio
