"""`medpeft convert` (released .pt <-> adapter folder) and `medpeft info`."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import medpeft
from medpeft.cli import main
from medpeft.errors import CheckpointError, OutputExistsError


def _flatten(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.fixture
def tiny_adapter(tiny_backbone, tmp_path):
    torch.manual_seed(1)
    model = medpeft.AceLoraModel(copy.deepcopy(tiny_backbone), medpeft.AceLoraConfig(width=16, top_k=3))
    with torch.no_grad():
        for p in model.trainable_parameters().values():
            p.add_(torch.randn_like(p) * 0.01)
    return model, model.save_pretrained(tmp_path / "adapter")


def test_folder_to_official_and_back_is_lossless(tiny_adapter, tmp_path):
    model, folder = tiny_adapter
    assert json.loads((folder / "adapter_config.json").read_text())["backbone"] == "tiny"
    assert main(["convert", str(folder), str(tmp_path / "ace.pt")]) == 0
    ckpt = torch.load(tmp_path / "ace.pt", map_location="cpu", weights_only=True)
    assert ckpt["metadata"]["topk"] == 3 and ckpt["metadata"]["r"] == 4
    assert main(["convert", str(tmp_path / "ace.pt"), str(tmp_path / "back"), "--backbone", "tiny"]) == 0
    back = load_file(str(tmp_path / "back" / "adapter_model.safetensors"))
    original = model.adapter_state_dict()
    assert sorted(back) == sorted(original)
    for k, v in original.items():
        assert torch.equal(back[k], v), k
    cfg = json.loads((tmp_path / "back" / "adapter_config.json").read_text())
    assert cfg["top_k"] == 3 and cfg["width"] == 16 and cfg["backbone"] == "tiny"


def test_convert_refuses_to_overwrite(tiny_adapter, tmp_path, capsys):
    _, folder = tiny_adapter
    target = tmp_path / "ace.pt"
    target.write_bytes(b"keep me")
    assert main(["convert", str(folder), str(target)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert target.read_bytes() == b"keep me"
    assert main(["convert", str(folder), str(target), "--overwrite"]) == 0
    assert torch.load(target, weights_only=True)["metadata"]["r"] == 4
    with pytest.raises(OutputExistsError, match="adapter_model.safetensors exists"):
        medpeft.convert(target, folder, backbone="tiny")
    (tmp_path / "a_folder").mkdir()
    with pytest.raises(OutputExistsError, match="a_folder is a folder; give the path of the .pt file"):
        medpeft.convert(folder, tmp_path / "a_folder", overwrite=True)
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="keep.txt exists and is not a folder"):
        medpeft.convert(target, tmp_path / "keep.txt", backbone="tiny", overwrite=True)
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_convert_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such adapter file or folder"):
        medpeft.convert(tmp_path / "missing.pt", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty: not an adapter folder \(no adapter_config.json\)"):
        medpeft.convert(tmp_path / "empty", tmp_path / "x.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"weights": {"layer_0": {}}, "metadata": {"r": 4}}, bad)
    with pytest.raises(CheckpointError, match=r"bad.pt: .*layer_0"):
        medpeft.convert(bad, tmp_path / "out", backbone="tiny")
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


def test_released_checkpoint_round_trips(parity_dir, tmp_path):
    """The released .pt -> folder (recorded as BiomedCLIP) -> .pt gives back every tensor and the metadata."""
    released = parity_dir / "ACE_LoRA.pt"
    medpeft.convert(released, tmp_path / "ace-lora")
    cfg = json.loads((tmp_path / "ace-lora" / "adapter_config.json").read_text())
    assert cfg["backbone"] == "biomedclip" and cfg["num_trainable"] == 969_217
    medpeft.convert(tmp_path / "ace-lora", tmp_path / "again.pt")
    a = torch.load(released, map_location="cpu", weights_only=True)
    b = torch.load(tmp_path / "again.pt", map_location="cpu", weights_only=True)
    fa, fb = _flatten(a["weights"]), _flatten(b["weights"])
    assert sorted(fa) == sorted(fb)
    for k in fa:
        assert torch.equal(fa[k].reshape(-1), fb[k].reshape(-1)), k
    for key in ("r", "topk", "params"):
        assert b["metadata"][key] == a["metadata"][key]


def test_info_json_reports_versions_and_cache(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run(
        [sys.executable, "-m", "medpeft.cli", "info", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = json.loads(out)
    assert info["packages"]["torch"] == torch.__version__
    assert info["packages"]["medpeft"] == medpeft.__version__
    assert info["weights"]["hf_hub_cache"] == str(tmp_path / "hf" / "hub")
    assert info["weights"]["hf_hub_offline"] is True
    assert info["weights"]["biomedclip_weights_cached"] is None
    assert info["devices"]["cpu_count"] == os.cpu_count()


def test_info_table_names_missing_weights(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "biomedclip_weights_cached" in text and "timm" in text
