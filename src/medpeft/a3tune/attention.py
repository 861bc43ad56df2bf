"""Attention capture without patching: an attention function registered through transformers'
``AttentionInterface`` (plus the matching ``AttentionMaskInterface`` entry, without which the causal mask
silently disappears for a custom name).

The layer output is SDPA's, unchanged (the fast path). Only for the layers an ``A3Context`` asks, it also computes
softmax(QKᵀ·scale + mask) for the query rows only (every non-padding token after the sample's last image token)
and keeps the image-token columns ``[B, H, T, P]`` (with gradient) and each head's image-attention ratio
``[B, H]`` (detached). Full ``[B, H, S, S]`` maps are never kept.
"""

from __future__ import annotations

from typing import Any

import torch

ATTENTION_NAME = "a3_sdpa"


def register_attention() -> str:
    """Register ``a3_sdpa`` (idempotent) and return its name; its mask builder is SDPA's."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, a3_attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    return ATTENTION_NAME


def repeat_kv(hidden: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[B, H_kv, S, D] -> [B, H_kv·n_rep, S, D] (GQA), as transformers' ``repeat_kv``."""
    if n_rep == 1:
        return hidden
    b, h, s, d = hidden.shape
    return hidden[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def image_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    n_rep: int,
    row_index: torch.Tensor,
    row_valid: torch.Tensor,
    col_index: torch.Tensor,
    col_valid: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention probabilities of the query rows, restricted to the image columns.

    ``attention_mask`` is what the ``sdpa`` mask builder gave: None (pure causal), bool ``[B|1, 1, Sq, Sk]``
    (True = attend) or an additive float mask. Returns ``(attn [B, H, T, P], ratio [B, H])``, where ``ratio`` =
    Σ_rows Σ_img A / Σ_rows Σ_all A (detached, float32), with padded rows/columns zeroed/excluded.
    """
    b, h, s_q, d = query.shape
    s_k = key.shape[2]
    t = row_index.shape[1]
    keys = repeat_kv(key, n_rep)
    q_rows = query.gather(2, row_index[:, None, :, None].expand(b, h, t, d))
    scores = torch.matmul(q_rows, keys.transpose(2, 3)) * scaling
    if attention_mask is None:
        allowed = (
            torch.arange(s_k, device=query.device)[None, None, :] <= (row_index + (s_k - s_q))[:, :, None]
        )
        scores = scores.masked_fill(~allowed[:, None], torch.finfo(scores.dtype).min)
    else:
        mask = attention_mask.expand(b, -1, -1, -1)
        rows = mask.gather(2, row_index[:, None, :, None].expand(b, mask.shape[1], t, s_k))
        if rows.dtype == torch.bool:
            scores = scores.masked_fill(~rows, torch.finfo(scores.dtype).min)
        else:
            scores = scores + rows
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    p = col_index.shape[1]
    img = probs.gather(3, col_index[:, None, None, :].expand(b, h, t, p))
    keep = (row_valid[:, None, :, None] & col_valid[:, None, None, :]).to(img.dtype)
    img = img * keep
    with torch.no_grad():
        rows_valid = row_valid[:, None, :, None].float()
        ratio = img.float().sum((2, 3)) / (probs.float() * rows_valid).sum((2, 3))
    return img, ratio


def a3_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA output; on recorded layers also the image-attention slice and head ratios, stored in ``a3_ctx``."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    ctx = kwargs.pop("a3_ctx", None)
    out, _ = sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
    )
    layer = getattr(module, "layer_idx", None)
    if ctx is not None and ctx.records(layer, query.shape[2]):
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        img, ratio = image_attention(
            query,
            key,
            attention_mask,
            scale,
            getattr(module, "num_key_value_groups", 1),
            ctx.row_index,
            ctx.row_valid,
            ctx.col_index,
            ctx.col_valid,
        )
        if ctx.recording:
            ctx.attn[layer] = img
            ctx.ratios[layer] = ratio
    return out, None
