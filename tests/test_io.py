"""medpeft.io: the only atomic writers, safe loaders and output-folder guard."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medpeft.errors import CheckpointError, OutputExistsError
from medpeft.io import (
    atomic_path,
    check_out_dir,
    read_json,
    safe_torch_load,
    safetensors_load,
    safetensors_save,
    torch_save,
    write_json,
    write_text,
)


def test_write_json_plain_strict_json(tmp_path):
    obj = {
        "a": np.float32(0.5),
        "b": np.arange(3),
        "c": float("nan"),
        "d": torch.tensor([1.5]),
        "e": tmp_path,
    }
    out = write_json(tmp_path / "deep" / "er" / "metrics.json", obj)
    text = out.read_text()
    assert json.loads(text) == {"a": 0.5, "b": [0, 1, 2], "c": None, "d": [1.5], "e": str(tmp_path)}
    assert "NaN" not in text
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]


def test_atomic_path_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_writers_leave_no_temporary_files(tmp_path):
    write_text(tmp_path / "a.txt", "x")
    torch_save({"t": torch.ones(2)}, tmp_path / "b.pt")
    safetensors_save({"w": torch.arange(3.0)}, tmp_path / "c.safetensors", metadata={"format": "pt"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.pt", "c.safetensors"]
    assert torch.equal(safe_torch_load(tmp_path / "b.pt")["t"], torch.ones(2))
    assert torch.equal(safetensors_load(tmp_path / "c.safetensors")["w"], torch.arange(3.0))


def test_loaders_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="bad.json: not a readable JSON file"):
        read_json(bad)
    with pytest.raises(CheckpointError, match="missing.safetensors: weights file not found"):
        safetensors_load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        safe_torch_load(tmp_path / "junk.pt")


def test_check_out_dir(tmp_path):
    assert check_out_dir(tmp_path / "new", may_reuse=False) is False
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match="file exists and is not a folder"):
        check_out_dir(tmp_path / "file", may_reuse=True)
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("x")
    # only the named result files count when ``results`` is given
    assert check_out_dir(run, may_reuse=False, results=["metrics.json"]) is False
    with pytest.raises(OutputExistsError, match=r"already holds results \(notes.txt\); pass --resume"):
        check_out_dir(run, may_reuse=False, advice="pass --resume")
    assert check_out_dir(run, may_reuse=True) is True
