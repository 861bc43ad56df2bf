"""Head selection and the alignment loss against hand computations and a plain computation from eager attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from a3_helpers import batch, random_masks, tiny

from medpeft.a3tune import A3TuneConfig, A3TuneModel
from medpeft.a3tune.alignment import alignment_loss, check_weak_masks, sample_alignment
from medpeft.a3tune.heads import select_heads
from medpeft.errors import DataError


def test_select_heads_hand_built():
    ratios = torch.tensor([[[0.1, 0.9], [0.5, 0.2]], [[0.3, 0.0], [0.4, 0.8]]], requires_grad=True)
    sel = select_heads(ratios, 2)
    assert not sel.requires_grad and sel.dtype == torch.bool
    assert sel[0].tolist() == [[False, True], [True, False]]
    assert sel[1].tolist() == [[False, False], [True, True]]
    assert select_heads(ratios, 4).all() and select_heads(ratios, 100).all()
    assert select_heads(ratios, 1).sum().item() == 2


def test_alignment_2x2_hand_example():
    # two query rows, two image tokens; mask 1 covers token 0, mask 2 covers both
    abar = torch.tensor([[0.3, 0.1], [0.2, 0.2]])
    masks = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    loss, a = sample_alignment(abar, masks, "ratio")
    # a_{1,t} = 0.75, 0.5; a_{2,t} = 1, 1 -> (0.0625 + 0.25)/2 + 0
    assert torch.allclose(a, torch.tensor([[0.75, 1.0], [0.5, 1.0]]))
    assert loss.item() == pytest.approx(0.15625, abs=1e-7)
    kl, _ = sample_alignment(abar, masks, "kl")
    p2 = torch.tensor([0.5, 0.5])  # mask 2 normalised; mask 1 is one-hot on token 0
    q = torch.tensor([[0.75, 0.25], [0.5, 0.5]])
    want = (
        sum(1.0 * torch.log(1.0 / q[t, 0]) for t in range(2)) / 2
        + sum((p2 * torch.log(p2 / q[t])).sum() for t in range(2)) / 2
    )
    assert kl.item() == pytest.approx(want.item(), abs=1e-6)


def test_sample_without_masks_gives_zero_and_batch_mean():
    abar = torch.rand(2, 3, 4) + 0.1
    valid_r, valid_c = torch.ones(2, 3, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)
    m = torch.tensor([[1.0, 0, 0, 1]])
    mean, per, ratio = alignment_loss(abar, valid_r, valid_c, [None, m], "ratio")
    assert per[0].item() == 0.0 and per[1].item() > 0
    assert mean.item() == pytest.approx(per[1].item() / 2)
    mean, per, ratio = alignment_loss(abar, valid_r, valid_c, [None, None], "kl")
    assert mean.item() == 0.0 and ratio is None


def test_bad_masks_name_the_sample():
    with pytest.raises(
        DataError, match=r"weak_masks\[1\] has shape \(2, 3, 3\).*16 image tokens.*\[K, 4, 4\]"
    ):
        check_weak_masks([torch.ones(1, 4, 4), torch.ones(2, 3, 3)], [16, 16])
    with pytest.raises(DataError, match="2 entries for a batch of 3"):
        check_weak_masks([None, None], [16, 16, 16])
    base = tiny("llava-tiny")
    model = A3TuneModel(base, A3TuneConfig(q_experts=2, k_experts=2, moe_rank=2, lora_rank=2))
    ids, mask, labels, pixels = batch(base, [(2, 2, 2), (2, 2, 2)])
    with pytest.raises(DataError, match=r"weak_masks\[0\]"):
        model(
            input_ids=ids,
            attention_mask=mask,
            pixel_values=pixels,
            labels=labels,
            weak_masks=[torch.ones(1, 16), None],
        )
    ids[1, ids[1] == base.image_token_id] = 11
    with pytest.raises(DataError, match="sample 1 has no image tokens"):
        model(input_ids=ids, attention_mask=mask, pixel_values=pixels[:1], labels=labels)


@pytest.mark.parametrize("kind", ["ratio", "kl"])
def test_alignment_equals_plain_computation_from_eager(name, kind):
    top = 5
    base = tiny(name)
    model = A3TuneModel(
        base, A3TuneConfig(top_heads=top, align_loss=kind, q_experts=2, k_experts=2, moe_rank=2, lora_rank=2)
    )
    eager = tiny(name, attn="eager")
    ids, mask, labels, pixels = batch(base, [(3, 4, 3), (1, 2, 2)], side="left", seed=5)
    masks = random_masks(2, 3, 4, seed=7)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels, weak_masks=masks)
        att = torch.stack(
            eager.model(
                input_ids=ids, attention_mask=mask, pixel_values=pixels, output_attentions=True
            ).attentions,
            1,
        )  # [B, L, H, S, S]
    losses = []
    for b in range(2):
        pos = torch.arange(ids.shape[1])
        img = ids[b] == base.image_token_id
        rows = mask[b].bool() & (pos > pos[img].max())
        a_rows = att[b][:, :, rows]  # [L, H, T, S]
        ratio = a_rows[..., img].sum((2, 3)) / a_rows.sum((2, 3))
        flat = ratio.flatten()
        chosen = torch.zeros_like(flat, dtype=torch.bool)
        chosen[flat.argsort(descending=True)[:top]] = True
        abar = (a_rows[..., img] * chosen.view_as(ratio)[..., None, None]).sum((0, 1))  # [T, P]
        m = masks[b].reshape(masks[b].shape[0], -1)
        if kind == "ratio":
            a = (abar @ m.T) / abar.sum(-1, keepdim=True)
            losses.append(((1 - a) ** 2).mean(0).sum())
        else:
            q = abar / (abar.sum(-1, keepdim=True) + 1e-8)
            p = m / (m.sum(-1, keepdim=True) + 1e-8)
            losses.append(
                sum(F.kl_div(q.log(), p[k].expand_as(q), reduction="batchmean") for k in range(len(p)))
            )
        torch.testing.assert_close(out.head_ratios[b], ratio, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.align_loss, torch.stack(losses).mean(), atol=1e-5, rtol=1e-5)


def test_all_zero_mask_edge_cases():
    abar = (torch.rand(3, 4) + 0.1).requires_grad_(True)
    zero = torch.zeros(1, 4)
    loss, _ = sample_alignment(abar, zero, "ratio")
    assert loss.item() == pytest.approx(1.0)  # a = 0 for every row: constant, as in the authors' code
    loss.backward()
    assert torch.count_nonzero(abar.grad) == 0
    kl, _ = sample_alignment(abar.detach(), zero, "kl")
    assert kl.item() == 0.0


def test_recorder_in_bf16_close_to_eager():
    base = tiny("llava-tiny-mistral")
    base.model.to(torch.bfloat16)
    eager = tiny("llava-tiny-mistral", attn="eager")
    eager.model.to(torch.bfloat16)
    model = A3TuneModel(base, A3TuneConfig(top_heads=3, q_experts=2, k_experts=2, moe_rank=2, lora_rank=2))
    ids, mask, labels, pixels = batch(base, [(3, 4, 3), (1, 2, 2)], side="left")
    pixels = pixels.to(torch.bfloat16)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels)
        att = eager.model(input_ids=ids, attention_mask=mask, pixel_values=pixels, output_attentions=True)
    for b in range(2):
        pos = torch.arange(ids.shape[1])
        img = ids[b] == base.image_token_id
        rows = mask[b].bool() & (pos > pos[img].max())
        for layer in range(2):
            a = att.attentions[layer][b][:, rows].float()
            ratio = a[..., img].sum((1, 2)) / a.sum((1, 2))
            torch.testing.assert_close(out.head_ratios[b, layer], ratio, atol=2e-2, rtol=0)
