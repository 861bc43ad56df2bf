"""Per-token features and last-layer attention affinity of the two open_clip towers, without patching.

The affinity needs only row 0 (the [CLS] query) of the last layer's attention, so a forward
hook captures that layer's query/key projections (LoRA included) while the library runs its
own fast attention (SDPA) everywhere; the row is then recomputed in closed form:
``B·H·N·d`` extra multiply-adds instead of a second attention pass.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medpeft.errors import ConfigError


@dataclass
class TowerOutput:
    """L2-normalised per-token embeddings [B, N, D] and the [CLS]→token affinity [B, N-1]."""

    tokens: torch.Tensor
    affinity: torch.Tensor
    valid: torch.Tensor | None = None  # [B, N] bool, False at text padding


@contextmanager
def _capture_outputs(modules: dict[str, nn.Module]):
    store: dict[str, torch.Tensor] = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, out, key=key: store.__setitem__(key, out))
        for key, m in modules.items()
    ]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def vit_last_attention(visual: nn.Module) -> nn.Module:
    """The timm ``Attention`` of the last transformer block of open_clip's ``TimmModel`` trunk."""
    trunk = getattr(visual, "trunk", None)
    blocks = getattr(trunk, "blocks", None)
    if blocks is None or not hasattr(blocks[-1], "attn") or not hasattr(blocks[-1].attn, "qkv"):
        raise ConfigError("the vision tower must be a timm VisionTransformer (trunk.blocks[-1].attn.qkv)")
    return blocks[-1].attn


def image_tower(visual: nn.Module, pixel_values: torch.Tensor) -> TowerOutput:
    """Image tokens after the final norm and ``visual.head``, and the pre-softmax [CLS] attention scores."""
    attn = vit_last_attention(visual)
    with _capture_outputs({"qkv": attn.qkv}) as store:
        feats = visual.trunk.forward_features(pixel_values)  # [B, N, C] after the final norm
    qkv = store["qkv"]
    b, n, _ = qkv.shape
    qkv = qkv.reshape(b, n, 3, attn.num_heads, attn.head_dim)
    q0 = attn.q_norm(qkv[:, :1, 0].transpose(1, 2))  # [B, H, 1, d]
    k = attn.k_norm(qkv[:, :, 1].transpose(1, 2))  # [B, H, N, d]
    scores = (q0 * attn.scale) @ k.transpose(-1, -2)  # [B, H, 1, N], pre-softmax
    affinity = scores.mean(dim=1)[:, 0, 1:]
    tokens = F.normalize(visual.head(feats), dim=-1)
    return TowerOutput(tokens=tokens, affinity=affinity)


def bert_last_attention(text: nn.Module) -> nn.Module:
    """The self-attention module (query/key/value linears) of the last layer of an HF BERT-like encoder."""
    encoder = getattr(getattr(text, "transformer", None), "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None or not hasattr(layers[-1].attention, "self"):
        raise ConfigError("the text tower must be an open_clip HFTextEncoder over a BERT-style model")
    return layers[-1].attention.self


def text_tower(text: nn.Module, input_ids: torch.Tensor, pad_id: int) -> TowerOutput:
    """Text tokens (all positions, padding included) through ``text.proj``, and the padding-masked
    attention probabilities of [CLS] in the last layer, averaged over heads."""
    attn = bert_last_attention(text)
    valid = input_ids != pad_id
    with _capture_outputs({"q": attn.query, "k": attn.key}) as store:
        hidden = text.transformer(input_ids=input_ids, attention_mask=valid.long()).last_hidden_state
    heads = text.transformer.config.num_attention_heads
    b, n, c = store["k"].shape
    d = c // heads
    q0 = store["q"][:, :1].reshape(b, 1, heads, d).transpose(1, 2)  # [B, H, 1, d]
    k = store["k"].reshape(b, n, heads, d).transpose(1, 2)  # [B, H, N, d]
    scores = (q0 @ k.transpose(-1, -2)) * (d**-0.5)
    scores = scores.masked_fill(~valid[:, None, None, :], torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=-1).mean(dim=1)[:, 0, 1:]
    tokens = F.normalize(text.proj(hidden), dim=-1)
    return TowerOutput(tokens=tokens, affinity=probs, valid=valid)
