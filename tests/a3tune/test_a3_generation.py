"""Batched generation with left padding equals one-at-a-time generation token for token (LLaMA- and
Mistral-based tiny models, a trained-looking adapter), for greedy and beam search; the base model through
the zero-initialised wrapper generates exactly what the bare base model generates; the attention
diagnostic's numbers equal a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from a3_helpers import tiny
from PIL import Image

from medpeft.a3tune import A3TuneConfig, A3TuneModel
from medpeft.a3tune.collate import A3Collator, A3Example
from medpeft.evaluation.attention_diagnostic import attention_diagnostic
from medpeft.evaluation.generation import GenerationSettings, generate_batch

QUESTIONS = (
    "where is the square ?",
    "is there a square ?",
    "where is the bright square in the image ?",
    "is the lung normal ?",
)


def examples() -> list[A3Example]:
    rng = np.random.default_rng(0)
    out = []
    for i, q in enumerate(QUESTIONS):
        img = Image.fromarray(rng.integers(0, 255, size=(48 + 8 * i, 56, 3), dtype=np.uint8))
        out.append(A3Example(id=str(i), question=q, answer=None, image=img))
    return out


def adapted(name: str) -> tuple:
    base = tiny(name)
    model = A3TuneModel(base, A3TuneConfig(q_experts=2, k_experts=4, top_heads=4)).eval()
    with torch.no_grad():  # non-zero adapters, so the MoE and LoRA paths matter
        g = torch.Generator().manual_seed(1)
        for p in model.trainable_parameters().values():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    col = A3Collator(
        base.tokenizer, base.image_processor, base.image_token_id, base.grid, padding_side="left"
    )
    return base, model, col


@pytest.mark.parametrize("beams", [1, 3])
def test_batched_generation_equals_one_at_a_time(name, beams):
    base, model, col = adapted(name)
    settings = GenerationSettings(num_beams=beams, max_new_tokens=6)
    items = examples()
    _, batched = generate_batch(model, col(items), settings, base.tokenizer, torch.device("cpu"))
    single = [
        generate_batch(model, col([e]), settings, base.tokenizer, torch.device("cpu"))[1][0] for e in items
    ]
    assert len(batched) == len(single) == 4
    assert batched == single
    assert all(len(ids) >= 1 for ids in batched)


def test_the_base_wrapper_generates_what_the_bare_base_generates():
    bare = tiny("llava-tiny")
    wrapped_base = tiny("llava-tiny")
    wrapper = A3TuneModel(wrapped_base, A3TuneConfig.plain_lora()).eval()
    col = A3Collator(
        bare.tokenizer, bare.image_processor, bare.image_token_id, bare.grid, padding_side="left"
    )
    batch = col(examples())
    settings = GenerationSettings(max_new_tokens=5)
    _, a = generate_batch(bare.model, batch, settings, bare.tokenizer, torch.device("cpu"))
    _, b = generate_batch(wrapper, batch, settings, bare.tokenizer, torch.device("cpu"))
    assert a == b


def test_attention_diagnostic_matches_a_hand_computation():
    base = tiny("llava-tiny")
    model = A3TuneModel(
        base, A3TuneConfig.plain_lora(top_heads=4)
    ).eval()  # zero adapter: outputs = the base's
    col = A3Collator(
        base.tokenizer, base.image_processor, base.image_token_id, base.grid, padding_side="left"
    )
    batch = col(examples()[:2])
    masks = [torch.zeros(1, 4, 4), None]
    masks[0][0, :2, :2] = 1.0  # top-left quarter
    diag = attention_diagnostic(model, batch, masks, torch.device("cpu"))
    # by hand: eager attention maps (output_attentions) of the same weights on the same prompt
    eager = tiny("llava-tiny", attn="eager").model
    with torch.no_grad():
        out = eager(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    pixel_values=batch["pixel_values"], output_attentions=True)  # fmt: skip
    ids, valid = batch["input_ids"][0], batch["attention_mask"][0].bool()
    img = (ids == base.image_token_id) & valid
    rows = valid & (torch.arange(len(ids)) > torch.nonzero(img).max())
    full = torch.stack([a[0] for a in out.attentions])[:, :, rows]  # [L, H, T, S]
    att = full[..., img]  # [L, H, T, P]
    ratio = att.sum((-1, -2)) / full.sum((-1, -2))  # [L, H] image share of each head
    top = torch.topk(ratio.flatten(), 4).indices
    abar = att.flatten(0, 1)[top].sum(0)  # [T, P]
    share = (abar / abar.sum(-1, keepdim=True)).reshape(-1, 4, 4)
    assert diag.in_mask[0] == pytest.approx(float(share[:, :2, :2].sum((-1, -2)).mean()), abs=1e-5)
    assert np.isnan(diag.in_mask[1])
    assert diag.heat[0].shape == (4, 4) and diag.heat[0].sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(diag.heat[0], share.mean(0).numpy(), atol=1e-5)
