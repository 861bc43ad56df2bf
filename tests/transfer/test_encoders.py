"""Frozen encoders: block choice, adapters merged into the ViT, timm ViTs, and clear errors."""

from __future__ import annotations

import pytest
import torch

from medpeft.errors import ConfigError
from medpeft.transfer.encoders import build_encoder, default_blocks


def test_default_blocks() -> None:
    assert default_blocks(12) == (3, 6, 9, 12)
    assert default_blocks(4) == (1, 2, 3, 4)
    assert default_blocks(12, 1) == (12,)
    assert default_blocks(2) == (1, 2)


def test_tiny_encoder_is_frozen_and_multilevel(tiny_encoder) -> None:
    feats = tiny_encoder(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 96, 8, 8)] * 4
    assert not any(p.requires_grad for p in tiny_encoder.parameters())
    tiny_encoder.train()
    assert not tiny_encoder.training and not tiny_encoder.trunk.training
    last = tiny_encoder.with_blocks([4])
    assert torch.equal(last(torch.ones(1, 3, 64, 64))[0], tiny_encoder(torch.ones(1, 3, 64, 64))[-1])


def test_adapter_is_merged_into_the_vit(tmp_path) -> None:
    """The adapted encoder equals the unmerged LoRA model's trunk, and differs from the base one."""
    from medpeft.ace_lora.model import AceLoraModel
    from medpeft.backbones.clip import load_backbone

    model = AceLoraModel(load_backbone("tiny")).eval()  # eval: no LoRA dropout
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    model.save_pretrained(tmp_path / "adapter")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.clip.visual.trunk.forward_intermediates(x, indices=[3], intermediates_only=True)[0]
    adapted = build_encoder("tiny", adapter=tmp_path / "adapter")
    base = build_encoder("tiny")
    assert adapted.clip_model.is_merged
    torch.testing.assert_close(adapted(x)[-1], expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(base(x)[-1], expected, atol=1e-3)


def test_timm_vit_encoder() -> None:
    enc = build_encoder("timm:vit_tiny_patch16_224", image_size=64, blocks=(6, 12))
    feats = enc(torch.randn(1, 3, 64, 64))
    assert enc.blocks == (6, 12) and [tuple(f.shape) for f in feats] == [(1, 192, 4, 4)] * 2
    assert enc.clip_model is None and len(enc.mean) == 3


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"backbone": "timm:vit_tiny_patch16_224", "image_size": 70}, "multiple of .* patch size 16"),
        ({"backbone": "timm:vit_tiny_patch16_224", "blocks": (0, 13)}, r"blocks must be in 1\.\.12"),
        ({"backbone": "timm:vit_tiny_patch16_224", "adapter": "x"}, "--adapter applies to open_clip"),
        ({"backbone": "timm:no_such_model"}, "Unknown model"),
    ],
)
def test_encoder_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_encoder(**kwargs)
