"""The attention recorder: exact against eager attention, padding-invariant, logits untouched, generate()."""

from __future__ import annotations

import pytest
import torch
from a3_helpers import batch, random_masks, tiny

from medpeft.a3tune import A3TuneConfig, A3TuneModel
from medpeft.a3tune.context import build_context

SMALL = dict(q_experts=2, k_experts=4, moe_rank=4, lora_rank=8, moe_dropout=0.0, lora_dropout=0.0)


def _adapted(name: str, **kw) -> tuple:
    base = tiny(name)
    return base, A3TuneModel(base, A3TuneConfig(top_heads=3, **{**SMALL, **kw}))


@pytest.mark.parametrize("side", ["left", "right"])
def test_recorded_slice_equals_eager_attention(name, side):
    base, model = _adapted(name)
    eager = tiny(name, attn="eager")
    ids, mask, labels, pixels = batch(base, [(3, 4, 3), (1, 2, 2)], side=side)
    ctx = build_context(ids, mask, base.image_token_id, labels=labels, record_layers=frozenset({0, 1}))
    with torch.no_grad():
        model.llava(input_ids=ids, attention_mask=mask, pixel_values=pixels, a3_ctx=ctx)
        ref = eager.model(input_ids=ids, attention_mask=mask, pixel_values=pixels, output_attentions=True)
    assert set(ctx.attn) == {0, 1}
    for layer in (0, 1):
        full = ref.attentions[layer]  # [B, H, S, S]
        for b in range(ids.shape[0]):
            rows = ctx.row_index[b][ctx.row_valid[b]]
            cols = ctx.col_index[b][ctx.col_valid[b]]
            assert len(rows) == int(ctx.row_mask[b].sum()) and len(cols) == 16
            want = full[b][:, rows][:, :, cols]
            got = ctx.attn[layer][b, :, : len(rows), : len(cols)]
            torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
            ratio = want.sum((1, 2)) / full[b][:, rows].sum((1, 2))
            torch.testing.assert_close(ctx.ratios[layer][b], ratio, atol=1e-6, rtol=0)
            assert torch.all(ctx.attn[layer][b, :, len(rows) :] == 0)


def test_logits_equal_unadapted_model(name):
    ref = tiny(name)
    base, model = _adapted(name)
    ids, mask, labels, pixels = batch(base, [(3, 4, 3), (1, 2, 2)], side="left")
    with torch.no_grad():
        want = ref.model(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits
        got = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels).logits
    assert torch.equal(got, want)


@pytest.mark.parametrize("side", ["left", "right"])
def test_batch_with_padding_equals_single_samples(side):
    base, model = _adapted("llava-tiny-mistral")
    model.eval()
    specs = [(3, 5, 3), (1, 2, 2)]
    ids, mask, labels, pixels = batch(base, specs, side=side)
    masks = random_masks(2, 3, 4, seed=1)
    with torch.no_grad():
        both = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels, weak_masks=masks)
        singles = []
        for b in range(2):
            keep = mask[b].bool()
            singles.append(
                model(
                    input_ids=ids[b : b + 1, keep],
                    pixel_values=pixels[b : b + 1],
                    labels=labels[b : b + 1, keep],
                    weak_masks=[masks[b]],
                )
            )
    for b in range(2):
        torch.testing.assert_close(both.sample_lm_loss[b], singles[b].lm_loss, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(both.sample_align_loss[b], singles[b].align_loss, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(both.head_ratios[b], singles[b].head_ratios[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        both.lm_loss, (singles[0].lm_loss + singles[1].lm_loss) / 2, atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        both.balance_loss, (singles[0].balance_loss + singles[1].balance_loss) / 2, atol=1e-5, rtol=1e-5
    )


def test_generate_with_recorder_on(name):
    base, model = _adapted(name)
    ids, mask, _, pixels = batch(base, [(2, 3, 0 + 1), (1, 2, 1)], side="left")
    ids, mask = ids[:, :-1], mask[:, :-1]  # prompts end with the question
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            pixel_values=pixels,
            max_new_tokens=3,
            do_sample=False,
            record_attention=True,
        )
        fwd = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, record_attention=True)
    assert out.shape == (2, ids.shape[1] + 3)
    assert torch.equal(out[:, : ids.shape[1]], ids)
    torch.testing.assert_close(model.last_generation_ratios, fwd.head_ratios, atol=1e-6, rtol=0)
    # greedy first token = argmax of the forward's last logits
    assert torch.equal(out[:, ids.shape[1]], fwd.logits[:, -1].argmax(-1))


def test_gradient_checkpointing_same_loss_and_grads():
    results = []
    for ckpt in (False, True):
        base, model = _adapted("llava-tiny", align_weight=0.5, balance_weight=0.1)
        with torch.no_grad():
            for _, m in model.moe_modules():
                m.lora_B.normal_(0, 0.1, generator=torch.Generator().manual_seed(m.layer_idx))
        model.train()
        if ckpt:
            model.enable_gradient_checkpointing()
            layers = base.model.model.language_model.layers
            assert all(layer.gradient_checkpointing for layer in layers)
        ids, mask, labels, pixels = batch(base, [(3, 4, 3), (1, 2, 2)], side="right")
        out = model(
            input_ids=ids,
            attention_mask=mask,
            pixel_values=pixels,
            labels=labels,
            weak_masks=random_masks(2, 2, 4, seed=3),
        )
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.trainable_parameters().items() if p.grad is not None}
        results.append((out.loss.detach(), out.align_loss.detach(), grads))
    (l0, a0, g0), (l1, a1, g1) = results
    torch.testing.assert_close(l0, l1)
    torch.testing.assert_close(a0, a1)
    assert set(g0) == set(g1) and len(g0) > 0
    assert any("q_proj.lora_A" in n for n in g0)  # the alignment loss reaches the Q-MoE
    for n in g0:
        torch.testing.assert_close(g0[n], g1[n], atol=1e-6, rtol=1e-4)
