"""LoRA on separate and fused (qkv) linear layers; inject, merge, unmerge.

A fused ``qkv`` linear gets independent rank-r adapters for each of q, k and v (what peft cannot
express on one ``nn.Linear``), so one module covers both towers. The low-rank path is computed as
``x·Aᵀ·Bᵀ`` (2·r·(in+out) flops per token) rather than forming ``B·A`` (in·out) every forward,
which the reference code did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medpeft.errors import ConfigError


class LoRALinear(nn.Module):
    """``base(x) + s · dropout(x) Aᵢᵀ Bᵢᵀ`` on output slices ``i`` of a frozen linear, ``s = alpha / sqrt(r)``.

    ``parts`` maps an adapter name (e.g. "q") to the slice of output features it adapts; a plain
    q/k/v projection has one part covering all outputs, a fused qkv has up to three.
    """

    def __init__(
        self,
        base: nn.Linear,
        parts: dict[str, tuple[int, int]],
        rank: int,
        alpha: float,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if rank <= 0:
            raise ConfigError(f"LoRA rank must be positive, got {rank}")
        self.base = base
        self.rank = rank
        self.alpha = alpha
        self.scaling = alpha / math.sqrt(rank)
        self.parts = dict(parts)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        for name, (start, stop) in self.parts.items():
            a = torch.empty(rank, base.in_features, **factory)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
            self.lora_A[name] = nn.Parameter(a)
            self.lora_B[name] = nn.Parameter(torch.zeros(stop - start, rank, **factory))
        self._contiguous = self._covers_outputs_in_order()

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def _covers_outputs_in_order(self) -> bool:
        pos = 0
        for start, stop in self.parts.values():
            if start != pos:
                return False
            pos = stop
        return pos == self.base.out_features

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """The low-rank update for every part, laid out over the full output width."""
        shared = isinstance(self.dropout, nn.Identity) or not self.training
        if shared:
            # One matmul down for all parts (the dropout mask would differ per part in training).
            a_all = torch.cat([self.lora_A[n] for n in self.parts], dim=0)
            low = F.linear(x if isinstance(self.dropout, nn.Identity) else self.dropout(x), a_all)
            lows = low.split(self.rank, dim=-1)
        else:
            lows = [F.linear(self.dropout(x), self.lora_A[n]) for n in self.parts]
        ups = [F.linear(lo, self.lora_B[n]) for lo, n in zip(lows, self.parts, strict=True)]
        if self._contiguous:
            return torch.cat(ups, dim=-1) if len(ups) > 1 else ups[0]
        out = x.new_zeros(*x.shape[:-1], self.base.out_features)
        for up, (start, stop) in zip(ups, self.parts.values(), strict=True):
            out[..., start:stop] = up
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        return y + self.scaling * self.delta(x)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold ``s·B·A`` into the frozen weight (for export and fast inference)."""
        if self.merged:
            return
        for name, (start, stop) in self.parts.items():
            self.base.weight[start:stop] += self.scaling * (self.lora_B[name] @ self.lora_A[name])
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            return
        for name, (start, stop) in self.parts.items():
            self.base.weight[start:stop] -= self.scaling * (self.lora_B[name] @ self.lora_A[name])
        self.merged = False

    def extra_repr(self) -> str:
        return f"parts={list(self.parts)}, rank={self.rank}, scaling={self.scaling:g}, merged={self.merged}"


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    setattr(root.get_submodule(parent_path) if parent_path else root, child, module)


def _layer_indices(n_layers: int, layers: Sequence[int] | str | None) -> list[int]:
    if layers is None or layers == "all":
        return list(range(n_layers))
    out = sorted({i if i >= 0 else n_layers + i for i in layers})
    bad = [i for i in out if not 0 <= i < n_layers]
    if bad:
        raise ConfigError(f"LoRA layer indices {bad} are outside 0..{n_layers - 1}")
    return out


def text_targets(clip: nn.Module, targets: Sequence[str], layers) -> dict[str, tuple[int, str, dict]]:
    """module path -> (layer index, official projection prefix, parts) for an HF BERT text tower."""
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "o": "attention.output.dense",
    }
    layer_list = clip.text.transformer.encoder.layer
    plan = {}
    for i in _layer_indices(len(layer_list), layers):
        for t in targets:
            lin = layer_list[i].get_submodule(names[t])
            plan[f"text.transformer.encoder.layer.{i}.{names[t]}"] = (i, t, {t: (0, lin.out_features)})
    return plan


def vision_targets(clip: nn.Module, targets: Sequence[str], layers) -> dict[str, tuple[int, str, dict]]:
    """module path -> (block index, kind, parts) for a timm ViT (fused qkv split in thirds q, k, v)."""
    blocks = clip.visual.trunk.blocks
    plan: dict[str, tuple[int, str, dict]] = {}
    for i in _layer_indices(len(blocks), layers):
        qkv = blocks[i].attn.qkv
        width = qkv.out_features // 3
        parts = {t: (j * width, (j + 1) * width) for j, t in enumerate("qkv") if t in targets}
        if parts:
            plan[f"visual.trunk.blocks.{i}.attn.qkv"] = (i, "qkv", parts)
        if "o" in targets:
            proj = blocks[i].attn.proj
            plan[f"visual.trunk.blocks.{i}.attn.proj"] = (i, "o", {"o": (0, proj.out_features)})
    return plan


def inject_lora(
    clip: nn.Module,
    encoders: Sequence[str],
    targets: Sequence[str],
    rank: int,
    alpha: float,
    dropout: float,
    layers: Sequence[int] | str | None = None,
) -> dict[str, LoRALinear]:
    """Replace the targeted linears of an open_clip CustomTextCLIP by ``LoRALinear`` wrappers.

    Module surgery on the instance (as peft does); no library class is modified.
    Returns module path -> wrapper, in a stable order (text layers, then vision blocks).
    """
    unknown = set(targets) - {"q", "k", "v", "o"}
    if unknown:
        raise ConfigError(f"unknown LoRA targets {sorted(unknown)}; choose from q, k, v, o")
    plan: dict[str, tuple[int, str, dict]] = {}
    if "text" in encoders:
        plan.update(text_targets(clip, targets, layers))
    if "image" in encoders:
        plan.update(vision_targets(clip, targets, layers))
    injected: dict[str, LoRALinear] = {}
    for path, (_i, _kind, parts) in plan.items():
        base = clip.get_submodule(path)
        if isinstance(base, LoRALinear):
            raise ConfigError(f"{path} already carries a LoRA adapter")
        wrapper = LoRALinear(base, parts, rank=rank, alpha=alpha, dropout=dropout)
        _set_submodule(clip, path, wrapper)
        injected[path] = wrapper
    return injected


def lora_modules(root: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in root.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(root: nn.Module) -> None:
    for m in lora_modules(root).values():
        m.merge()


def unmerge_lora(root: nn.Module) -> None:
    for m in lora_modules(root).values():
        m.unmerge()
