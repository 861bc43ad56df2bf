"""The released checkpoint under ``compile_towers``: the parity fixtures hold (forward, losses, gradients).

Slow on a CPU (compiling the full-size towers takes about a minute); the fast compiled checks live in
``tests/backbones/test_compile_towers.py``.
"""

from __future__ import annotations

import copy

import pytest
import torch
from test_parity import TOL, assert_forward_parity, forward_outputs, max_err

import medpeft
from medpeft.ace_lora.released_format import state_to_official

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compiled_released(filled_arch_backbone, parity_dir):
    model = medpeft.AceLoraModel.from_pretrained(
        copy.deepcopy(filled_arch_backbone), parity_dir / "ACE_LoRA.pt"
    ).eval()
    report = model.compile_towers()
    if not report.compiled:
        pytest.skip(report.message)
    return model


def test_compiled_forward_parity(compiled_released, reference):
    assert_forward_parity(compiled_released, reference)
    out = forward_outputs(compiled_released, reference)
    errors = {k: max_err(v, reference[k]) for k, v in out.items()}
    assert set(errors) == {"image_tokens", "image_embeds", "report_embeds", "class_embeds", "probs"}
    print("compiled forward max abs errors:", {k: f"{v:.1e}" for k, v in errors.items()})


def test_compiled_loss_and_gradient_parity(compiled_released, reference):
    model = compiled_released
    with torch.no_grad():
        plain = model.contrastive_loss(reference["images"], reference["report_ids"], None)
    assert abs(plain.item() - reference["loss_plain"].item()) <= TOL
    model.zero_grad(set_to_none=True)
    loss = model.contrastive_loss(reference["images"], reference["report_ids"], reference["labels"])
    assert abs(loss.item() - reference["loss_label_guided"].item()) <= TOL
    loss.backward()
    grads = {n: p.grad for n, p in model.trainable_parameters().items()}
    assert len(grads) > 0 and all(g is not None for g in grads.values())
    official = state_to_official(grads, model._official_layout(), list(model._adapter_prefixes()))
    assert len(reference["grads"]) == 161
    worst = 0.0
    for key, expected in reference["grads"].items():
        head, *rest = key.split(".")
        if head.startswith("layer_"):
            mine = official[head][rest[0]][rest[1]]
        elif head == "logit_scale":
            mine = official["logit_scale"]
        else:
            mine = official[head][".".join(rest)]
        err = max_err(mine, expected)
        worst = max(worst, err)
        assert err <= TOL, f"grad {key}: {err:.2e}"
    print(f"compiled gradient max abs error: {worst:.1e}")
    model.zero_grad(set_to_none=True)
