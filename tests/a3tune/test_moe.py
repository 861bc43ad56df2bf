"""A³MoE: exact base behaviour at init, E = 1 equals LoRA, K-MoE on image rows only, router gradients, decode cache,
balance loss."""

from __future__ import annotations

import pytest
import torch
from a3_helpers import batch, tiny
from torch import nn

from medpeft.a3tune import A3TuneConfig, A3TuneModel
from medpeft.a3tune.context import build_context
from medpeft.a3tune.moe import KMoELinear, QMoELinear, balance_loss


def _ctx(seq: int = 6, image=(1, 2, 3)):
    ids = torch.full((1, seq), 20)
    ids[0, list(image)] = 4
    return build_context(ids, None, 4)


def test_moe_init_equals_base_exactly():
    torch.manual_seed(0)
    lin = nn.Linear(8, 6)
    x = torch.randn(1, 6, 8)
    for mod in (QMoELinear(lin, 3, 2, 4, 0.0, 0), KMoELinear(lin, 3, 2, 4, 0.0, 0, top_k=2)):
        mod.ctx = _ctx()
        assert torch.equal(mod(x), lin(x))
        assert (mod.out_features, mod.in_features) == (6, 8)


def test_single_expert_qmoe_equals_peft_lora():
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(0)
    holder = nn.Module()
    holder.proj = nn.Linear(8, 6)
    moe = QMoELinear(holder.proj, 1, 4, 8, 0.0, 0)
    nn.init.normal_(moe.lora_B)
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["proj"]), holder)
    with torch.no_grad():
        holder.proj.lora_A["default"].weight.copy_(moe.lora_A[0])
        holder.proj.lora_B["default"].weight.copy_(moe.lora_B[0])
    moe.ctx = _ctx()
    x = torch.randn(1, 6, 8)
    torch.testing.assert_close(moe(x), holder.proj(x), atol=1e-6, rtol=0)
    assert not torch.allclose(moe(x), moe.base(x))


def test_kmoe_touches_image_rows_only_and_official_overwrites():
    torch.manual_seed(0)
    lin = nn.Linear(8, 4)  # GQA-like: out != in
    k = KMoELinear(lin, 4, 2, 4, 0.0, 0, top_k=2)
    nn.init.normal_(k.lora_B)
    k.ctx = _ctx()
    x = torch.randn(1, 6, 8)
    y = k(x)
    text = [0, 4, 5]
    assert torch.equal(y[0, text], lin(x)[0, text])
    assert not torch.allclose(y[0, 1:4], lin(x)[0, 1:4])
    probs = torch.tensor([[0.1, 0.5, 0.3, 0.1]])
    w, chosen = k.weights(probs)
    assert chosen.tolist() == [[0, 1, 1, 0]] and torch.allclose(w, torch.tensor([[0, 0.5, 0.3, 0]]))
    k.routing = "official"
    w, _ = k.weights(probs)
    assert w.tolist() == [[0, 0, 1, 0]]  # the authors' loop keeps only the highest-index chosen expert


@pytest.mark.parametrize("routing,expect_grad", [("prob", True), ("official", False)])
def test_k_router_gradient_from_lm_loss(routing, expect_grad):
    base = tiny("llava-tiny-mistral")
    model = A3TuneModel(
        base,
        A3TuneConfig(
            k_routing=routing,
            align=False,
            align_weight=0.0,
            q_experts=2,
            k_experts=4,
            moe_rank=2,
            lora_rank=2,
        ),
    )
    with torch.no_grad():
        for _, m in model.moe_modules():
            m.lora_B.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    ids, mask, labels, pixels = batch(base, [(2, 3, 3)])
    model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels).loss.backward()
    ks = [m for _, m in model.moe_modules() if isinstance(m, KMoELinear)]
    qs = [m for _, m in model.moe_modules() if isinstance(m, QMoELinear)]
    assert len(ks) == 2 and len(qs) == 2
    got = [m.router.weight.grad is not None and m.router.weight.grad.abs().sum().item() > 0 for m in ks]
    assert got == [expect_grad] * 2
    assert all(m.router.weight.grad.abs().sum() > 0 for m in qs)  # the Q router always learns from the task


def test_decode_uses_cached_q_routing():
    base = tiny("llava-tiny")
    model = A3TuneModel(base, A3TuneConfig(q_experts=3, k_experts=2, moe_rank=2, lora_rank=2))
    calls = []
    for _, m in model.moe_modules():
        if isinstance(m, QMoELinear):
            m.router.register_forward_hook(lambda mod, i, o: calls.append(i[0].shape))
    ids, mask, _, pixels = batch(base, [(2, 3, 1)])
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=4, do_sample=False
        )
    assert out.shape[1] == ids.shape[1] + 4
    assert len(calls) == 2  # one router call per layer, at prefill only
    routing = model._generation["prefill"].routing
    assert set(routing) == {0, 1} and all(r.shape == (1, 3) for r in routing.values())


def test_balance_loss_normalisation():
    e, n = 4, 6
    sample = torch.zeros(n, dtype=torch.long)
    uniform = torch.full((n, e), 1 / e)
    chosen = torch.zeros(n, e).scatter(1, torch.arange(n)[:, None] % e, 1.0)
    assert balance_loss({0: (uniform, chosen, sample)}, 1, e, 1).item() == pytest.approx(1.0)
    collapsed = torch.zeros(n, e)
    collapsed[:, 0] = 1.0
    assert balance_loss({0: (collapsed, collapsed, sample)}, 1, e, 1).item() == pytest.approx(4.0)
    assert balance_loss({0: (uniform, chosen, sample)}, 1, e, 1, scaled=False).item() == pytest.approx(0.25)
    # hand example, two samples, two layers
    p = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    c = torch.tensor([[1.0, 0], [0, 1], [1, 0]])
    s = torch.tensor([0, 0, 1])
    v0 = (0.55 * 0.5 + 0.45 * 0.5) * 2
    v1 = (0.9 * 1.0 + 0.1 * 0.0) * 2
    got = balance_loss({0: (p, c, s), 1: (p, c, s)}, 2, 2, 1)
    assert got.item() == pytest.approx((v0 + v1) / 2)


def test_trainable_parameters_are_language_model_adapters_only():
    base = tiny("llava-tiny-mistral")
    model = A3TuneModel(base, A3TuneConfig(q_experts=2, k_experts=3, moe_rank=2, lora_rank=4))
    names = set(model.trainable_parameters())
    assert names and all(".language_model.layers." in n for n in names)
    kinds = {n.split(".self_attn.")[-1] if ".self_attn." in n else n.split(".mlp.")[-1] for n in names}
    assert kinds == {
        "q_proj.lora_A", "q_proj.lora_B", "q_proj.router.weight", "q_proj.router.bias",
        "k_proj.lora_A", "k_proj.lora_B", "k_proj.router.weight", "k_proj.router.bias",
        *{f"{t}.lora_{ab}.default.weight" for t in ("v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
          for ab in "AB"},
    }  # fmt: skip
    k = base.model.model.language_model.layers[0].self_attn.k_proj
    assert isinstance(k, KMoELinear) and k.lora_B.shape == (3, 32, 2)  # GQA: out = k_proj.out_features


def test_config_validation_and_presets():
    from medpeft.errors import ConfigError

    with pytest.raises(ConfigError, match="align_loss='cosine'"):
        A3TuneConfig(align_loss="cosine")
    with pytest.raises(ConfigError, match="k_top=5"):
        A3TuneConfig(k_experts=4, k_top=5)
    vqa, rep = A3TuneConfig.preset("paper-vqa"), A3TuneConfig.preset("paper-report")
    assert (vqa.align_weight, vqa.balance_weight, vqa.q_experts, vqa.k_experts, vqa.k_top) == (
        0.03,
        0.0,
        8,
        16,
        1,
    )
    assert (rep.align_weight, rep.balance_weight, rep.q_experts, rep.k_experts, rep.k_top) == (
        0.08,
        0.01,
        1,
        8,
        2,
    )
    assert vqa.top_heads == 32 and A3TuneConfig().top_heads == 128
    plain = A3TuneConfig.plain_lora()
    assert (plain.moe, plain.align, plain.method) == (False, False, "lora")
    assert A3TuneConfig.from_dict(vqa.to_dict()) == vqa


def test_official_k_router_learns_through_balance_loss_only():
    base = tiny("llava-tiny")
    cfg = A3TuneConfig(k_routing="official", balance_weight=0.1, align=False, align_weight=0.0, q_experts=2,
                       k_experts=4, moe_rank=2, lora_rank=2)  # fmt: skip
    model = A3TuneModel(base, cfg)
    ids, mask, labels, pixels = batch(base, [(2, 3, 3)])
    out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels)
    assert out.balance_loss.item() > 0
    out.loss.backward()
    ks = [m for _, m in model.moe_modules() if isinstance(m, KMoELinear)]
    assert all(m.router.weight.grad.abs().sum() > 0 for m in ks)
