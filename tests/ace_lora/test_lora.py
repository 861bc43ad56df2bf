"""LoRA wrappers: init, the low-rank product, fused q/k/v parts, merge/unmerge, injection."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from medpeft.ace_lora.lora import LoRALinear, inject_lora, lora_modules, merge_lora, unmerge_lora
from medpeft.errors import ConfigError


def _fused(rank: int = 4) -> tuple[nn.Linear, LoRALinear]:
    torch.manual_seed(0)
    base = nn.Linear(8, 24)
    parts = {"q": (0, 8), "k": (8, 16), "v": (16, 24)}
    return base, LoRALinear(base, parts, rank=rank, alpha=1.0, dropout=0.1)


def test_init_is_identity_and_kaiming_a():
    base, lora = _fused()
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(lora(x), base(x), rtol=0, atol=0)
    for name in "qkv":
        assert torch.count_nonzero(lora.lora_B[name]) == 0
        bound = 1 / math.sqrt(8)  # kaiming_uniform(a=sqrt(5)) on fan_in 8
        assert lora.lora_A[name].abs().max() <= bound
        assert lora.lora_A[name].std() > 0.1 * bound
    assert lora.scaling == pytest.approx(0.5)


def test_separate_parts_equal_dense_update():
    base, lora = _fused()
    lora.eval()
    for name in "qkv":
        nn.init.normal_(lora.lora_B[name])
    x = torch.randn(2, 3, 8)
    dense = torch.cat([lora.lora_B[n] @ lora.lora_A[n] for n in "qkv"], dim=0)
    expected = x @ (base.weight + 0.5 * dense).t() + base.bias
    torch.testing.assert_close(lora(x), expected, atol=1e-5, rtol=1e-5)
    # Only the v slice changes when only v's B is non-zero.
    nn.init.zeros_(lora.lora_B["q"])
    nn.init.zeros_(lora.lora_B["k"])
    diff = lora(x) - base(x)
    assert diff[..., :16].abs().max() == 0 and diff[..., 16:].abs().max() > 0


def test_partial_targets_and_dropout_only_in_training():
    base = nn.Linear(8, 24)
    lora = LoRALinear(base, {"q": (0, 8), "v": (16, 24)}, rank=2, alpha=2.0, dropout=0.5)
    nn.init.normal_(lora.lora_B["q"])
    nn.init.normal_(lora.lora_B["v"])
    x = torch.randn(4, 8)
    lora.eval()
    out = lora(x)
    assert (out - base(x))[:, 8:16].abs().max() == 0
    lora.train()
    torch.manual_seed(1)
    assert not torch.allclose(lora(x), out)  # dropout on the LoRA input in training


def test_merge_unmerge_roundtrip():
    base, lora = _fused()
    lora.eval()
    for name in "qkv":
        nn.init.normal_(lora.lora_B[name])
    x = torch.randn(2, 8)
    before, w0 = lora(x), base.weight.clone()
    lora.merge()
    torch.testing.assert_close(lora(x), before, atol=1e-5, rtol=1e-5)
    lora.unmerge()
    torch.testing.assert_close(base.weight, w0, atol=1e-6, rtol=0)
    torch.testing.assert_close(lora(x), before, atol=1e-6, rtol=0)


def test_inject_into_tiny_clip(tiny_backbone):
    import copy

    clip = copy.deepcopy(tiny_backbone.clip)
    injected = inject_lora(clip, ("image", "text"), ("q", "k", "v"), rank=4, alpha=1.0, dropout=0.1)
    n_text = len(clip.text.transformer.encoder.layer)
    n_vis = len(clip.visual.trunk.blocks)
    assert len(injected) == 3 * n_text + n_vis
    assert isinstance(clip.visual.trunk.blocks[0].attn.qkv, LoRALinear)
    assert list(clip.visual.trunk.blocks[0].attn.qkv.parts) == ["q", "k", "v"]
    assert isinstance(clip.text.transformer.encoder.layer[0].attention.self.value, LoRALinear)
    assert set(lora_modules(clip)) == set(injected)
    merge_lora(clip)
    assert all(m.merged for m in injected.values())
    unmerge_lora(clip)
    with pytest.raises(ConfigError, match="already carries a LoRA adapter"):
        inject_lora(clip, ("image",), ("q",), rank=4, alpha=1.0, dropout=0.0)


def test_inject_positions_and_errors(tiny_backbone):
    import copy

    clip = copy.deepcopy(tiny_backbone.clip)
    injected = inject_lora(clip, ("image",), ("v", "o"), rank=2, alpha=1.0, dropout=0.0, layers=[-1])
    last = len(clip.visual.trunk.blocks) - 1
    assert sorted(injected) == [
        f"visual.trunk.blocks.{last}.attn.proj",
        f"visual.trunk.blocks.{last}.attn.qkv",
    ]
    with pytest.raises(ConfigError, match="outside"):
        inject_lora(copy.deepcopy(tiny_backbone.clip), ("text",), ("q",), 2, 1.0, 0.0, layers=[99])
    with pytest.raises(ConfigError, match="unknown LoRA targets"):
        inject_lora(copy.deepcopy(tiny_backbone.clip), ("text",), ("x",), 2, 1.0, 0.0)
    with pytest.raises(ConfigError, match="rank must be positive"):
        LoRALinear(nn.Linear(2, 2), {"q": (0, 2)}, rank=0, alpha=1.0)
