"""Adapter folder: bit-exact round trip, peft loads the LoRA part alone, bad inputs are refused untouched."""

from __future__ import annotations

import pytest
import torch
from a3_helpers import batch, tiny

from medpeft.a3tune import A3TuneConfig, A3TuneModel
from medpeft.a3tune.moe import KMoELinear, QMoELinear
from medpeft.errors import CheckpointError, OutputExistsError
from medpeft.io import read_json

CFG = A3TuneConfig(q_experts=2, k_experts=3, k_top=2, moe_rank=2, lora_rank=4, top_heads=3)


def _trained(name: str = "llava-tiny") -> tuple:
    base = tiny(name)
    model = A3TuneModel(base, CFG)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.trainable_parameters().values():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return base, model.eval()


def _untouched(llava) -> bool:
    return not hasattr(llava, "peft_config") and not any(
        isinstance(m, (QMoELinear, KMoELinear)) for m in llava.modules()
    )


def test_save_load_bit_exact_and_peft_alone(tmp_path):
    from peft import PeftModel

    base, model = _trained()
    out = model.save_pretrained(tmp_path / "adapter")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "a3tune_config.json",
        "a3tune_moe.safetensors",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    meta = read_json(out / "a3tune_config.json")
    assert meta["method"] == "a3tune" and meta["base_model"] == "llava-tiny" and meta["versions"]["peft"]
    ids, mask, labels, pixels = batch(base, [(2, 3, 2), (1, 2, 2)], side="left")
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels).logits
    loaded = A3TuneModel.from_pretrained(tiny("llava-tiny"), out)
    a, b = model.trainable_parameters(), loaded.eval().trainable_parameters()
    assert set(a) == set(b) and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        got = loaded(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels).logits
    assert torch.equal(got, want)
    # peft alone loads the LoRA part onto a plain base model
    plain = PeftModel.from_pretrained(tiny("llava-tiny").model, str(out))
    lora = {n: p for n, p in plain.named_parameters() if "lora_" in n}
    ours = {
        n: p
        for n, p in model.peft.named_parameters()
        if "lora_" in n and ".q_proj." not in n and ".k_proj." not in n
    }
    assert set(lora) == set(ours) and len(lora) == 2 * 2 * 5  # 2 layers x (A, B) x 5 targets
    assert all(torch.equal(lora[k], ours[k]) for k in lora)


def test_plain_lora_round_trip(tmp_path):
    base = tiny("llava-tiny-mistral")
    model = A3TuneModel(base, A3TuneConfig.plain_lora(lora_rank=4))
    assert not model.moe_modules()
    names = [n for n in model.trainable_parameters()]
    assert any(".q_proj.lora_A" in n for n in names) and any(".k_proj.lora_B" in n for n in names)
    assert not any("vision_tower" in n or "multi_modal_projector" in n for n in names)
    out = model.save_pretrained(tmp_path / "lora")
    assert not (out / "a3tune_moe.safetensors").exists()
    assert read_json(out / "a3tune_config.json")["method"] == "lora"
    loaded = A3TuneModel.from_pretrained(tiny("llava-tiny-mistral"), out)
    assert set(loaded.trainable_parameters()) == set(names)


def test_bad_inputs_raise_and_write_nothing(tmp_path):
    _, model = _trained()
    out = model.save_pretrained(tmp_path / "adapter")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputExistsError):
        model.save_pretrained(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    other = tiny("llava-tiny-mistral")
    with pytest.raises(CheckpointError, match="another base model.*num_key_value_heads"):
        A3TuneModel.from_pretrained(other, out)
    assert _untouched(other.model)
    renamed = tiny("llava-tiny")
    renamed.name = "someone/else"
    with pytest.raises(CheckpointError, match="built for base model 'llava-tiny', not 'someone/else'"):
        A3TuneModel.from_pretrained(renamed, out)
    assert _untouched(renamed.model)
    # a tampered MoE file: shapes checked before the model is touched
    from medpeft.io import safetensors_load, safetensors_save

    state = safetensors_load(out / "a3tune_moe.safetensors")
    key = sorted(state)[0]
    state[key] = state[key][:1]
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in out.iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    safetensors_save(state, bad / "a3tune_moe.safetensors")
    fresh = tiny("llava-tiny")
    with pytest.raises(CheckpointError, match="MoE weights do not match"):
        A3TuneModel.from_pretrained(fresh, bad)
    assert _untouched(fresh.model)
    with pytest.raises(CheckpointError, match="not found"):
        A3TuneModel.from_pretrained(fresh, tmp_path / "missing")
