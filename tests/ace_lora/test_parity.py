"""The released ACE-LoRA checkpoint reproduces the reference outputs (../shared/parity)."""

from __future__ import annotations

import copy

import pytest
import torch

import medpeft
from medpeft.ace_lora.released_format import state_to_official

TOL = 1e-4


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.detach().float() - b.float()).abs().max().item()


def forward_outputs(model, ref) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        image = model.encode_image(ref["images"])
        classes = model.encode_prompts(ref["prompt_ids"])
        return {
            "image_tokens": model.image_features(ref["images"]).tokens,
            "image_embeds": image,
            "report_embeds": model.encode_text(ref["report_ids"]),
            "class_embeds": classes,
            "probs": (model.logit_scale * image @ classes.t()).softmax(dim=-1),
        }


def assert_forward_parity(model, ref) -> None:
    out = forward_outputs(model, ref)
    for key, value in out.items():
        assert max_err(value, ref[key]) <= TOL, f"{key}: max abs error {max_err(value, ref[key]):.2e}"


def test_released_checkpoint_shape(released_model):
    assert released_model.num_trainable() == 969_217
    assert released_model.logit_scale.item() == pytest.approx(78.35, abs=0.01)


def test_forward_parity(released_model, reference):
    assert_forward_parity(released_model, reference)


def test_losses_parity(released_model, reference):
    with torch.no_grad():
        guided = released_model.contrastive_loss(
            reference["images"], reference["report_ids"], reference["labels"]
        )
        plain = released_model.contrastive_loss(reference["images"], reference["report_ids"], None)
    assert abs(guided.item() - reference["loss_label_guided"].item()) <= TOL
    assert abs(plain.item() - reference["loss_plain"].item()) <= TOL
    assert guided.item() != pytest.approx(plain.item(), abs=1e-3)  # the label mask matters on this batch


def test_gradient_parity(released_model, reference):
    model = released_model
    model.zero_grad(set_to_none=True)
    loss = model.contrastive_loss(reference["images"], reference["report_ids"], reference["labels"])
    loss.backward()
    grads = {n: p.grad for n, p in model.trainable_parameters().items()}
    assert all(g is not None for g in grads.values())
    official = state_to_official(grads, model._official_layout(), list(model._adapter_prefixes()))
    assert len(reference["grads"]) == 161
    for key, expected in reference["grads"].items():
        head, *rest = key.split(".")
        if head.startswith("layer_"):
            mine = official[head][rest[0]][rest[1]]
        elif head == "logit_scale":
            mine = official["logit_scale"]
        else:
            mine = official[head][".".join(rest)]
        assert max_err(mine, expected) <= TOL, f"grad {key}: {max_err(mine, expected):.2e}"
    model.zero_grad(set_to_none=True)


def test_parity_after_save_pretrained(released_model, filled_arch_backbone, reference, tmp_path):
    released_model.save_pretrained(tmp_path / "adapter")
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    reloaded = medpeft.AceLoraModel.from_pretrained(
        copy.deepcopy(filled_arch_backbone), tmp_path / "adapter"
    ).eval()
    assert_forward_parity(reloaded, reference)


def test_parity_after_save_official(released_model, filled_arch_backbone, parity_dir, reference, tmp_path):
    out = released_model.save_official(tmp_path / "ace.pt")
    original = torch.load(parity_dir / "ACE_LoRA.pt", map_location="cpu", weights_only=True)
    written = torch.load(out, map_location="cpu", weights_only=True)
    assert written["metadata"]["r"] == original["metadata"]["r"]
    assert sorted(written["weights"]) == sorted(original["weights"])
    for key in ("layer_0", "layer_23"):
        for proj in ("q_proj", "k_proj", "v_proj"):
            for ab in ("w_lora_A", "w_lora_B"):
                assert torch.equal(written["weights"][key][proj][ab], original["weights"][key][proj][ab])
    reloaded = medpeft.AceLoraModel.from_pretrained(copy.deepcopy(filled_arch_backbone), out).eval()
    assert_forward_parity(reloaded, reference)


def test_parity_with_merged_lora(filled_arch_backbone, parity_dir, reference):
    model = medpeft.AceLoraModel.from_pretrained(
        copy.deepcopy(filled_arch_backbone), parity_dir / "ACE_LoRA.pt"
    ).eval()
    before = model.clip.visual.trunk.blocks[0].attn.qkv.base.weight.clone()
    model.merge_lora()
    assert model.is_merged
    assert not torch.equal(before, model.clip.visual.trunk.blocks[0].attn.qkv.base.weight)
    assert_forward_parity(model, reference)
    model.unmerge_lora()
    assert max_err(model.clip.visual.trunk.blocks[0].attn.qkv.base.weight, before) < 1e-6
    assert_forward_parity(model, reference)
