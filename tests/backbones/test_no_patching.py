"""medpeft never modifies timm, transformers or open_clip classes, and leaves no hooks behind."""

from __future__ import annotations

import copy
import inspect

import torch


def _origin(fn) -> str:
    return inspect.getsourcefile(fn) or ""


def test_library_classes_untouched(tiny_backbone):
    import open_clip
    import timm.layers.attention as timm_attention
    import transformers.models.bert.modeling_bert as bert

    import medpeft

    before = {
        "timm": timm_attention.Attention.forward,
        "bert_self": bert.BertSelfAttention.forward,
        "bert_model": bert.BertModel.forward,
        "hf_text": open_clip.hf_model.HFTextEncoder.forward,
        "timm_model": open_clip.timm_model.TimmModel.forward,
    }
    model = medpeft.AceLoraModel(copy.deepcopy(tiny_backbone), medpeft.AceLoraConfig(width=8))
    px = torch.randn(2, 3, 64, 64)
    ids = torch.tensor([[2, 10, 11, 3, 0, 0], [2, 12, 3, 0, 0, 0]])
    loss = model.contrastive_loss(px, ids, torch.tensor([[1, 0], [0, 1]]))
    loss.backward()
    model.merge_lora()
    model.encode_prompts(ids[:, None])
    after = {
        "timm": timm_attention.Attention.forward,
        "bert_self": bert.BertSelfAttention.forward,
        "bert_model": bert.BertModel.forward,
        "hf_text": open_clip.hf_model.HFTextEncoder.forward,
        "timm_model": open_clip.timm_model.TimmModel.forward,
    }
    assert after == before
    assert "timm" in _origin(after["timm"]) and "transformers" in _origin(after["bert_self"])
    for module in model.modules():
        assert "forward" not in vars(module), f"{type(module).__name__} has an instance-level forward"
        assert not module._forward_hooks and not module._forward_pre_hooks, type(module).__name__
    # The towers still use the libraries' fast attention, except nothing: all layers keep SDPA.
    assert model.clip.visual.trunk.blocks[-1].attn.fused_attn
    assert model.clip.text.transformer.config._attn_implementation == "sdpa"
