"""Backbone loading: local folder, HF cache (offline), architecture presets, preprocessing, tokenizer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import medpeft
from medpeft.backbones.clip import BIOMEDBERT_HUB_ID, BIOMEDCLIP_HUB_ID, load_backbone
from medpeft.backbones.tokenizer import build_wordpiece_tokenizer
from medpeft.errors import CheckpointError, ConfigError

CORPUS = [
    "findings: no focal consolidation. impression: no acute cardiopulmonary process.",
    "there is a small left pleural effusion with adjacent atelectasis.",
    "the heart is enlarged. mild pulmonary edema. possible right lower lobe pneumonia.",
] * 20


def write_biomedclip_folder(backbone, folder: Path, safetensors: bool) -> dict[str, torch.Tensor]:
    """The layout a user's BiomedCLIP download has: config, weights as open_clip saves them, tokenizer files."""
    folder.mkdir(parents=True)
    cfg = json.loads((Path(medpeft.__file__).parent / "assets/biomedclip/open_clip_config.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    torch.manual_seed(123)
    state = {
        k: torch.randn_like(v) if v.is_floating_point() else v for k, v in backbone.clip.state_dict().items()
    }
    if safetensors:
        from safetensors.torch import save_file

        save_file(state, str(folder / "open_clip_model.safetensors"))
    else:
        torch.save(state, folder / "open_clip_pytorch_model.bin")
    build_wordpiece_tokenizer(CORPUS, vocab_size=200, context_length=256).save(folder)
    return state


def test_local_folder_loads_saved_weights(filled_arch_backbone, tmp_path):
    state = write_biomedclip_folder(filled_arch_backbone, tmp_path / "bmc", safetensors=False)
    bb = load_backbone(tmp_path / "bmc")
    loaded = bb.clip.state_dict()
    assert len(loaded) == 351 and set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    ids = bb.tokenizer(["No pleural effusion.", "mild   edema"])
    assert ids.shape == (2, 256) and ids[:, 0].tolist() == [2, 2] and bb.pad_id == 0
    assert int((ids[0] == 3).nonzero()[0]) == int((ids[0] != 0).sum()) - 1  # [SEP] closes the text
    assert bb.tokenizer(["a b c"], padding="longest").shape[1] < 256
    assert bb.image_size == 224 and bb.context_length == 256 and bb.embed_dim == 512


def test_preprocess_uses_biomedclip_mean_std(tiny_backbone):
    from PIL import Image

    grey = Image.new("L", (100, 80), color=0)
    x = tiny_backbone.preprocess(grey)
    assert x.shape == (3, 64, 64)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711])
    torch.testing.assert_close(x[:, 0, 0], -mean / std)


def test_hf_cache_offline(filled_arch_backbone, tmp_path):
    """A user's HF cache (hub/models--org--name/snapshots/<rev> + refs/main) loads with HF_HUB_OFFLINE=1."""
    hub = tmp_path / "hf" / "hub"
    rev = "0123456789abcdef0123456789abcdef01234567"
    for repo in (BIOMEDCLIP_HUB_ID, BIOMEDBERT_HUB_ID):
        base = hub / ("models--" + repo.replace("/", "--"))
        (base / "refs").mkdir(parents=True)
        (base / "refs" / "main").write_text(rev)
        (base / "snapshots" / rev).mkdir(parents=True)
    clip_snap = hub / ("models--" + BIOMEDCLIP_HUB_ID.replace("/", "--")) / "snapshots" / rev
    state = write_biomedclip_folder(filled_arch_backbone, tmp_path / "staging", safetensors=True)
    for f in ("open_clip_config.json", "open_clip_model.safetensors"):
        (clip_snap / f).write_bytes((tmp_path / "staging" / f).read_bytes())
    bert_snap = hub / ("models--" + BIOMEDBERT_HUB_ID.replace("/", "--")) / "snapshots" / rev
    for f in (tmp_path / "staging").iterdir():
        if f.name.startswith(("tokenizer", "special")) or f.name == "vocab.txt":
            (bert_snap / f.name).write_bytes(f.read_bytes())
    (bert_snap / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 30522}))
    torch.save({k: state[k] for k in ("logit_scale", "visual.head.proj.weight")}, tmp_path / "expected.pt")
    script = textwrap.dedent(f"""
        import torch, medpeft
        bb = medpeft.load_backbone("biomedclip")
        exp = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
        sd = bb.clip.state_dict()
        assert set(exp) <= set(sd) and len(exp) == 2
        assert all(torch.equal(sd[k], v) for k, v in exp.items())
        print("OK", bb.name, bb.tokenizer(["pleural effusion"]).shape[1])
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK biomedclip 256" in out.stdout


def test_hf_cache_missing_offline_gives_clear_error(tmp_path):
    script = "import medpeft; medpeft.load_backbone('biomedclip')"
    env = {**os.environ, "HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "no open_clip_config.json on the hub or in the HF cache" in out.stderr


def test_bad_backbone_specs(tmp_path):
    with pytest.raises(ConfigError, match="unknown backbone 'nope'"):
        load_backbone("nope")
    with pytest.raises(CheckpointError, match="no such backbone folder"):
        load_backbone(str(tmp_path / "missing" / "dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no open_clip_config.json"):
        load_backbone(tmp_path / "empty")


def test_folder_weight_mismatch_is_named(tiny_backbone, tmp_path):
    folder = tiny_backbone.save(tmp_path / "tiny")
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "open_clip_model.safetensors"))
    del state["visual.head.proj.weight"]
    state["text.proj.0.weight"] = torch.zeros(3, 3)
    save_file(state, str(folder / "open_clip_model.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"1 missing keys \(first: \['visual.head.proj.weight'\]\).*1 shape mismatches"
    ):
        load_backbone(folder)
    (folder / "open_clip_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_backbone(folder)


def test_tiny_roundtrip_and_determinism(tiny_backbone, tmp_path):
    folder = tiny_backbone.save(tmp_path / "tiny")
    again = load_backbone(folder)
    for k, v in tiny_backbone.clip.state_dict().items():
        assert torch.equal(again.clip.state_dict()[k], v), k
    text = ["small right pleural effusion", "no pneumothorax"]
    assert torch.equal(again.tokenizer(text), tiny_backbone.tokenizer(text))
    fresh = load_backbone("tiny")
    assert all(torch.equal(fresh.clip.state_dict()[k], v) for k, v in tiny_backbone.clip.state_dict().items())
    other = load_backbone("tiny", seed=1)
    assert not torch.equal(
        other.clip.state_dict()["visual.head.proj.weight"],
        tiny_backbone.clip.state_dict()["visual.head.proj.weight"],
    )
