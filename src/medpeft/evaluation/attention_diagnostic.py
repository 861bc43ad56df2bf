"""Where the selected heads look: per-sample attention-in-mask ratio and the attention map on the image grid.

On the generation prompt (a prefill forward, query rows = the prompt tokens after the image), the heads are
selected as in training (top-R by image-attention ratio, per sample), their attention is summed (Ā[t, p]) and

- ``in_mask`` = mean over the query rows t and masks k of a_{k,t} = Σ_p Ā[t,p]·M_k[p] / Σ_p Ā[t,p], the quantity
  the alignment loss pushes to 1 and ``metrics.jsonl`` logs during training (NaN for a sample without a mask);
- ``heat`` = mean over t of Ā[t]/Σ_p Ā[t,p], a ``[g, g]`` map in the token raster order (sums to 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medpeft.a3tune.alignment import check_weak_masks, sample_alignment, selected_attention
from medpeft.a3tune.context import build_context
from medpeft.a3tune.heads import select_heads


@dataclass
class AttentionDiagnostic:
    in_mask: list[float]  # per sample (NaN without a mask)
    heat: list[np.ndarray]  # per sample [g, g]


@torch.no_grad()
def attention_diagnostic(model: Any, batch: dict[str, Any], masks: list[torch.Tensor | None],
                         device: torch.device) -> AttentionDiagnostic:  # fmt: skip
    """The diagnostic of one generation batch (module docstring); ``masks`` per sample ``[K, g, g]`` or None."""
    input_ids = batch["input_ids"].to(device)
    attention_mask = batch["attention_mask"].to(device)
    layers = model.record_layers
    ctx = build_context(input_ids, attention_mask, model.image_token_id, record_layers=frozenset(layers))
    counts = ctx.col_valid.sum(1).tolist()
    flat = check_weak_masks(masks, counts)
    try:
        model.llava(input_ids=input_ids, attention_mask=attention_mask,
                    pixel_values=batch["pixel_values"].to(device), a3_ctx=ctx)  # fmt: skip
    finally:
        ctx.recording = False
    ratios = torch.stack([ctx.ratios[layer] for layer in layers], dim=1)
    selected = select_heads(ratios, model.config.top_heads)
    abar = selected_attention([ctx.attn[layer] for layer in layers], selected)
    in_mask, heat = [], []
    for b, m in enumerate(flat):
        t, p = int(ctx.row_valid[b].sum()), int(ctx.col_valid[b].sum())
        a = abar[b, :t, :p].float()
        g = math.isqrt(p)
        heat.append((a / a.sum(-1, keepdim=True)).mean(0).reshape(g, g).cpu().numpy())
        if m is None:
            in_mask.append(float("nan"))
        else:
            _, share = sample_alignment(a, m, "ratio")
            in_mask.append(float(share.mean()))
    ctx.attn.clear()
    return AttentionDiagnostic(in_mask, heat)
