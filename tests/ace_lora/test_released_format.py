"""The released format: keys, shapes and metadata are checked on load; pickled code is refused."""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path

import pytest
import torch

import medpeft
from medpeft.errors import CheckpointError, OutputExistsError


@pytest.fixture
def official(tiny_backbone, tmp_path):
    torch.manual_seed(0)
    model = medpeft.AceLoraModel(copy.deepcopy(tiny_backbone), medpeft.AceLoraConfig(width=16))
    with torch.no_grad():
        for p in model.trainable_parameters().values():
            p.add_(torch.randn_like(p) * 0.01)
    path = model.save_official(tmp_path / "ace.pt")
    return model, path


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _reload(tiny_backbone, path):
    return medpeft.AceLoraModel.from_pretrained(copy.deepcopy(tiny_backbone), path)


def test_roundtrip_official(tiny_backbone, official):
    model, path = official
    ckpt = _load(path)
    n_text = len(tiny_backbone.clip.text.transformer.encoder.layer)
    n_vis = len(tiny_backbone.clip.visual.trunk.blocks)
    assert sorted(k for k in ckpt["weights"] if k.startswith("layer_")) == sorted(
        f"layer_{i}" for i in range(n_text + n_vis)
    )
    assert ckpt["metadata"]["r"] == 4 and ckpt["metadata"]["params"] == ["q", "k", "v"]
    reloaded = _reload(tiny_backbone, path)
    assert reloaded.config.width == 16
    for k, v in model.adapter_state_dict().items():
        assert torch.equal(reloaded.adapter_state_dict()[k], v), k


def _write(ckpt, path):
    torch.save(ckpt, path)
    return path


def test_missing_layer_is_named(tiny_backbone, official, tmp_path):
    ckpt = _load(official[1])
    del ckpt["weights"]["layer_2"]
    with pytest.raises(CheckpointError, match=r"missing weights\['layer_2'\]"):
        _reload(tiny_backbone, _write(ckpt, tmp_path / "bad.pt"))


def test_wrong_rank_is_named(tiny_backbone, official, tmp_path):
    ckpt = _load(official[1])
    ckpt["weights"]["layer_1"]["k_proj"]["w_lora_A"] = torch.zeros(8, 96)
    with pytest.raises(
        CheckpointError, match=r"layer_1'\]\['k_proj'\].*w_lora_A'\] has shape \(8, 96\), expected \(4, 96\)"
    ):
        _reload(tiny_backbone, _write(ckpt, tmp_path / "bad.pt"))


def test_non_tensor_payload_is_named(tiny_backbone, official, tmp_path):
    ckpt = _load(official[1])
    ckpt["weights"]["img_edge_adapter"]["up.bias"] = [0.0] * 64
    with pytest.raises(
        CheckpointError, match=r"img_edge_adapter'\]\['up.bias'\] must be a tensor, found list"
    ):
        _reload(tiny_backbone, _write(ckpt, tmp_path / "bad.pt"))


def test_bad_metadata_and_structure(tiny_backbone, official, tmp_path):
    ckpt = _load(official[1])
    ckpt["metadata"]["params"] = ["q", "x"]
    with pytest.raises(CheckpointError, match=r"metadata\['params'\]"):
        _reload(tiny_backbone, _write(ckpt, tmp_path / "bad.pt"))
    with pytest.raises(CheckpointError, match="expected a dict with 'weights'"):
        _reload(tiny_backbone, _write({"state_dict": {}}, tmp_path / "bad2.pt"))
    ckpt = _load(official[1])
    ckpt["weights"]["layer_99"] = {}
    with pytest.raises(CheckpointError, match=r"unexpected entries \['layer_99'\]"):
        _reload(tiny_backbone, _write(ckpt, tmp_path / "bad3.pt"))
    ckpt = _load(official[1])
    ckpt["weights"]["logit_scale"] = torch.tensor(float("nan"))
    with pytest.raises(CheckpointError, match="finite"):
        _reload(tiny_backbone, _write(ckpt, tmp_path / "bad4.pt"))


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_executes_code_is_refused(tiny_backbone, tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weights": {"x": _Exploit()}, "metadata": {}}, fh)
    with pytest.raises(CheckpointError, match="refused to load"):
        _reload(tiny_backbone, path)


def test_every_torch_loader_refuses_pickled_code(tmp_path):
    """Backbone weights and fine-tuning checkpoints go through the same guarded loader as adapters."""
    from medpeft.backbones.clip import load_state_dict_file
    from medpeft.training.checkpoint import load_checkpoint

    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": {"x": _Exploit()}}, fh)
    for loader in (load_state_dict_file, load_checkpoint):
        with pytest.raises(CheckpointError, match="evil.pt: refused to load"):
            loader(path)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt: not a readable weights file"):
        load_state_dict_file(tmp_path / "empty.pt")


def test_torch_load_is_called_only_by_the_guarded_loader():
    """Every checkpoint medpeft reads goes through ``medpeft.io.safe_torch_load`` (weights_only=True)."""
    src = Path(medpeft.__file__).parent
    callers = sorted(
        str(f.relative_to(src)) for f in src.rglob("*.py") if "torch.load(" in f.read_text(encoding="utf-8")
    )
    assert callers == ["io.py"]


def test_truncated_and_missing_files(tiny_backbone, official, tmp_path):
    data = official[1].read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pt: not a readable torch checkpoint"):
        _reload(tiny_backbone, tmp_path / "trunc.pt")
    with pytest.raises(CheckpointError, match="no adapter folder"):
        _reload(tiny_backbone, tmp_path / "nothing_here")


def test_adapter_folder_errors(tiny_backbone, official, tmp_path):
    model, _ = official
    folder = model.save_pretrained(tmp_path / "adapter")
    with pytest.raises(OutputExistsError, match="exists; pass overwrite=True"):
        model.save_pretrained(folder)
    (folder / "adapter_config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="adapter_config.json: invalid JSON"):
        _reload(tiny_backbone, folder)
    model.save_pretrained(folder, overwrite=True)
    (folder / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        _reload(tiny_backbone, folder)
    other = medpeft.AceLoraModel(
        copy.deepcopy(tiny_backbone), medpeft.AceLoraConfig(width=8, hgnn=("image",))
    )
    other.save_pretrained(tmp_path / "other")
    folder2 = tmp_path / "other"
    import json

    cfg = json.loads((folder2 / "adapter_config.json").read_text())
    cfg["width"] = 16
    (folder2 / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        _reload(tiny_backbone, folder2)


def test_save_official_requires_full_method(tiny_backbone, tmp_path):
    model = medpeft.AceLoraModel(copy.deepcopy(tiny_backbone), medpeft.AceLoraConfig(hgnn=("image",)))
    with pytest.raises(CheckpointError, match="both encoders"):
        model.save_official(tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
