"""A few optimiser steps on synthetic data (random images with a bright square; weak mask = the square) lower the
loss and raise the attention-in-mask ratio of the selected heads on held-out samples."""

from __future__ import annotations

import torch
from a3_helpers import tiny

from medpeft.a3tune import A3TuneConfig, A3TuneModel


def _synthetic(base, n: int, seed: int):
    """Images 56×56 (4×4 grid of 14-px patches) with a bright 14-px square in a random cell; the question is
    fixed, the answer names the row of the square."""
    g = torch.Generator().manual_seed(seed)
    tok = base.tokenizer
    words = ["top", "upper", "lower", "bottom"]
    q = tok("where is the bright square ?")["input_ids"]
    samples = []
    for _ in range(n):
        r, c = torch.randint(0, 4, (2,), generator=g).tolist()
        img = torch.rand(3, 56, 56, generator=g) * 0.2
        img[:, r * 14 : (r + 1) * 14, c * 14 : (c + 1) * 14] = 3.0
        ans = tok(words[r])["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor([tok.bos_token_id] + [base.image_token_id] * 16 + q + ans)
        labels = torch.full_like(ids, -100)
        labels[-len(ans) :] = ids[-len(ans) :]
        mask = torch.zeros(1, 4, 4)
        mask[0, r, c] = 1.0
        samples.append((ids, labels, img, mask))
    ids = torch.stack([s[0] for s in samples])
    return (
        ids,
        torch.stack([s[1] for s in samples]),
        torch.stack([s[2] for s in samples]),
        [s[3] for s in samples],
    )


def _run(align_weight: float, steps: int = 10) -> tuple[tuple[float, float], tuple[float, float]]:
    torch.manual_seed(0)
    base = tiny("llava-tiny")
    cfg = A3TuneConfig(
        top_heads=4,
        align_weight=align_weight,
        q_experts=2,
        k_experts=4,
        moe_rank=4,
        lora_rank=8,
        moe_dropout=0.0,
        lora_dropout=0.0,
    )
    model = A3TuneModel(base, cfg)
    train = _synthetic(base, 16, seed=1)
    held = _synthetic(base, 16, seed=2)

    def evaluate() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            ids, labels, px, masks = held
            out = model(input_ids=ids, pixel_values=px, labels=labels, weak_masks=masks)
        model.train()
        return out.lm_loss.item(), out.attention_in_mask.item()

    before = evaluate()
    opt = torch.optim.AdamW(model.trainable_parameters().values(), lr=3e-2, weight_decay=0.0)
    ids, labels, px, masks = train
    for _ in range(steps):
        out = model(input_ids=ids, pixel_values=px, labels=labels, weak_masks=masks)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    return before, evaluate()


def test_few_steps_lower_loss_and_raise_attention_in_mask():
    (loss0, in0), (loss1, in1) = _run(align_weight=1.0)
    assert abs(in0 - 1 / 16) < 0.01  # the random tiny model attends almost uniformly to the 16 image tokens
    assert loss1 < loss0 - 0.5, (loss0, loss1)
    assert in1 > in0 + 0.3, (in0, in1)
    # the same steps without the alignment term leave the attention where it was: the rise is the loss's doing
    (_, in0_plain), (_, in1_plain) = _run(align_weight=0.0)
    assert in0_plain == in0 and abs(in1_plain - in0_plain) < 0.05
