"""``finetune --compile``: the frozen encoder's blocks compiled give the eager feature maps, after a
warm-up that leaves the random generators as they were."""

from __future__ import annotations

import copy

import torch

from medpeft.backbones.compilation import is_compiled
from medpeft.transfer.finetune_loop import _compile_encoder


def test_compiled_encoder_gives_the_eager_feature_maps(tiny_encoder):
    eager = tiny_encoder
    compiled = copy.deepcopy(eager)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    _compile_encoder(compiled, 2, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before)
    if not is_compiled(compiled):  # no compiler on this machine: the warning path ran instead
        return
    assert all(is_compiled(b) for b in compiled.trunk.blocks)
    pixels = torch.randn(2, 3, eager.image_size, eager.image_size, generator=torch.Generator().manual_seed(0))
    a, b = eager(pixels), compiled(pixels)
    assert len(a) == len(b) == len(eager.blocks) > 0
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape == (2, eager.channels, eager.grid, eager.grid)
        assert (x - y).abs().max().item() <= 1e-5
