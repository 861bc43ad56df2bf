"""Checkpoints you can trust: SIGKILL a run (after a checkpoint, or in the middle of writing one),
``--resume``, and the final adapter equals that of an uninterrupted run bit for bit (CPU)."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import TRAIN_SCRIPT, one_thread, small_manifest

from medpeft.training.loop import train
from medpeft.training.run_config import load_run_config

STEPS = {"epochs": 3, "checkpoint_every": 2}  # 8 samples, batch 4: 6 steps, checkpoints at 2, 4, 6


def run_config(backbone_dir: Path):
    return load_run_config(
        "tiny",
        {
            "backbone": str(backbone_dir),
            **{f"train.{k}": v for k, v in STEPS.items()},
            "train.tensorboard": False,
        },
    )


def killed_run(mode: str, step: int, backbone_dir: Path, data: Path, out: Path) -> None:
    cmd = [
        sys.executable,
        str(TRAIN_SCRIPT),
        mode,
        str(step),
        str(torch.get_num_threads()),
        "--",
        "--config",
        "tiny",
        "--backbone",
        str(backbone_dir),
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        str(STEPS["epochs"]),
        "--checkpoint-every",
        str(STEPS["checkpoint_every"]),
        "--set",
        "train.tensorboard=false",
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_dir, pristine_tiny, mimic):
    root = tmp_path_factory.mktemp("uninterrupted")
    data = small_manifest(mimic, root / "data", 8)
    rc = run_config(tiny_dir)
    with one_thread():  # module-scoped: set up before the per-test thread fixture
        final = train(copy.deepcopy(pristine_tiny), data, root / "run", rc.train, rc.model)
    return data, root / "run", adapter(final)


def test_sigkill_after_a_checkpoint_then_resume_is_bit_identical(
    uninterrupted, tiny_dir, pristine_tiny, tmp_path
):
    data, reference_out, reference = uninterrupted
    out = tmp_path / "run"
    killed_run("after", 4, tiny_dir, data, out)
    assert not (out / "final").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002.pt", "step-00000004.pt"]
    rc = run_config(tiny_dir)
    final = train(copy.deepcopy(pristine_tiny), data, out, rc.train, rc.model, resume=True)
    assert_bit_identical(adapter(final), reference)
    assert losses(out) == losses(reference_out)  # the log reads like the uninterrupted run's


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_usable(
    uninterrupted, tiny_dir, pristine_tiny, tmp_path
):
    data, _, reference = uninterrupted
    out = tmp_path / "run"
    killed_run("during", 4, tiny_dir, data, out)
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == [".step-00000004.pt.killed.tmp", "step-00000002.pt"]  # half-written, never renamed
    rc = run_config(tiny_dir)
    final = train(copy.deepcopy(pristine_tiny), data, out, rc.train, rc.model, resume=True)
    assert_bit_identical(adapter(final), reference)
    assert not list((out / "checkpoints").glob(".*.tmp"))  # cleaned up on resume


def test_resume_of_a_finished_run_returns_its_adapter(uninterrupted, tiny_dir, pristine_tiny):
    data, out, reference = uninterrupted
    rc = run_config(tiny_dir)
    final = train(copy.deepcopy(pristine_tiny), data, out, rc.train, rc.model, resume=True)
    assert_bit_identical(adapter(final), reference)
