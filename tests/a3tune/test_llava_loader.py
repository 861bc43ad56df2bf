"""load_llava: presets, the original LLaVA-Med-1.5 layout converted on load, HF folders, offline misses."""

from __future__ import annotations

import json

import pytest
import torch
from a3_helpers import batch, tiny

from medpeft.backbones.llava import PRESETS, load_llava, preset_config
from medpeft.errors import CheckpointError
from medpeft.io import safetensors_save

_INVERSE = (
    ("model.multi_modal_projector.linear_1.", "model.mm_projector.0."),
    ("model.multi_modal_projector.linear_2.", "model.mm_projector.2."),
    ("model.vision_tower.", "model.vision_tower.vision_tower.vision_model."),
    ("model.language_model.", "model."),
)


def _original_layout(tmp_path, src) -> tuple:
    """Write ``src`` (a tiny HF Llava, Mistral text model) as an original LLaVA-Med-1.5 checkpoint."""
    tower = tmp_path / "clip_tower"
    src.model.config.vision_config.save_pretrained(str(tower))
    folder = tmp_path / "llava-med-tiny"
    folder.mkdir()
    state = {}
    for key, value in src.model.state_dict().items():
        for old, new in _INVERSE:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        state[key] = value
    state["model.vision_tower.vision_tower.vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    keys = sorted(state)
    half = len(keys) // 2
    safetensors_save({k: state[k] for k in keys[:half]}, folder / "model-00001-of-00002.safetensors")
    safetensors_save({k: state[k] for k in keys[half:]}, folder / "model-00002-of-00002.safetensors")
    t = src.model.config.text_config
    cfg = {
        "architectures": ["LlavaMistralForCausalLM"],
        "model_type": "llava_mistral",
        "hidden_size": t.hidden_size,
        "intermediate_size": t.intermediate_size,
        "num_attention_heads": t.num_attention_heads,
        "num_hidden_layers": t.num_hidden_layers,
        "num_key_value_heads": t.num_key_value_heads,
        "vocab_size": t.vocab_size,
        "rms_norm_eps": t.rms_norm_eps,
        "rope_theta": 10000.0,
        "max_position_embeddings": t.max_position_embeddings,
        "sliding_window": None,
        "mm_vision_tower": str(tower),
        "mm_hidden_size": 32,
        "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "image_aspect_ratio": "pad",
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_original_llava_med_layout_converted(tmp_path):
    src = tiny("llava-tiny-mistral")
    folder = _original_layout(tmp_path, src)
    conv = load_llava(str(folder))
    vocab = src.model.config.text_config.vocab_size
    assert conv.image_token_id == vocab  # <image> appended after the original vocabulary
    assert conv.model.config.text_config.vocab_size % 64 == 0
    assert conv.grid == 4 and conv.image_aspect_ratio == "pad"
    assert conv.model.config.text_config.num_key_value_heads == 2
    ids, mask, _, pixels = batch(src, [(2, 3, 2)])
    ids_conv = ids.clone()
    ids_conv[ids == src.image_token_id] = conv.image_token_id
    with torch.no_grad():
        want = src.model(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits
        got = conv.model(input_ids=ids_conv, attention_mask=mask, pixel_values=pixels).logits
    torch.testing.assert_close(got[..., :vocab], want, atol=1e-5, rtol=1e-5)


def test_original_layout_errors_name_the_problem(tmp_path):
    src = tiny("llava-tiny-mistral")
    folder = _original_layout(tmp_path, src)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["mm_vision_tower"] = str(tmp_path / "nowhere")
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="vision tower .*nowhere.* not found"):
        load_llava(str(folder))


def test_missing_hub_id_offline_names_what_was_tried(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CheckpointError, match=r"microsoft/llava-med-v1.5-mistral-7b.*local folder.*HF cache"):
        load_llava("microsoft/llava-med-v1.5-mistral-7b")


def test_hf_folder_round_trip(tmp_path):
    src = tiny("llava-tiny")
    src.model.save_pretrained(str(tmp_path / "hf"))
    src.tokenizer.save_pretrained(str(tmp_path / "hf"))
    back = load_llava(str(tmp_path / "hf"))
    assert back.image_token_id == src.image_token_id and back.grid == 4
    assert back.tokenizer.convert_tokens_to_ids("<image>") == src.image_token_id
    a, b = src.model.state_dict(), back.model.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_presets_and_tokenizer():
    assert PRESETS == ("llava-tiny", "llava-tiny-mistral", "llava-med-arch")
    base = tiny("llava-tiny")
    enc = base.tokenizer("<image> what is in the image ?")["input_ids"]
    assert enc[0] == base.image_token_id and base.tokenizer.unk_token_id not in enc
    a, b = tiny("llava-tiny", seed=3).model.state_dict(), tiny("llava-tiny", seed=3).model.state_dict()
    assert set(a) == set(b) and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)
    med = preset_config("llava-med-arch")  # cheap: a config, no weights
    t, v = med.text_config, med.vision_config
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads) == (
        4096,
        32,
        32,
        8,
    )
    assert (v.image_size, v.patch_size, v.hidden_size, v.num_hidden_layers) == (336, 14, 1024, 24)
    assert med.image_seq_length == 576 == (v.image_size // v.patch_size) ** 2


def test_hub_id_from_offline_cache(monkeypatch, tmp_path):
    src = tiny("llava-tiny")
    repo = tmp_path / "cache" / "models--someone--tiny-llava"
    snap = repo / "snapshots" / ("0" * 40)
    src.model.save_pretrained(str(snap))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "cache"))
    back = load_llava("someone/tiny-llava")
    assert back.name == "someone/tiny-llava" and back.grid == 4
    a, b = src.model.state_dict(), back.model.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_llava_med_arch_builds_on_meta_cheaply():
    base = load_llava("llava-med-arch", device="meta", dtype=torch.bfloat16)
    n = sum(p.numel() for p in base.model.parameters())
    assert 7.4e9 < n < 7.8e9  # Mistral-7B (32064 vocab) + CLIP ViT-L/14-336 + mlp2x_gelu projector
    assert base.grid == 24 and base.image_seq_length == 576 and base.image_token_id == 32000
    k = base.model.model.language_model.layers[0].self_attn.k_proj
    assert (k.in_features, k.out_features) == (4096, 1024) and k.weight.is_meta
