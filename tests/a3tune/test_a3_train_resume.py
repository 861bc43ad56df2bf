"""Resume after SIGKILL: `medpeft a3tune train` killed in a subprocess right after a checkpoint, then run again
with --resume, ends with the adapter bytes and the metrics of an uninterrupted run (CPU, one thread)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from a3_cli import run
from a3_vqa_data import write_vqa

KILLABLE = Path(__file__).with_name("a3_killable_train.py")
ADAPTER_FILES = ("adapter_model.safetensors", "a3tune_moe.safetensors", "adapter_config.json")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def args(data: Path, weak: Path, out: Path) -> list[str]:
    # 8 samples, batch 4, accumulation 2: 2 steps per epoch, 6 steps, checkpoints at 2, 4, 6
    return ["--base", "llava-tiny", "--data", str(data), "--weak-labels", str(weak), "--out", str(out),
            "--epochs", "3", "--batch-size", "4", "--grad-accum", "2", "--lr", "3e-3", "--checkpoint-every", "2",
            "--quiet"]  # fmt: skip


def metrics(out: Path) -> list[dict]:
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in recs:
        r.pop("samples_per_s")  # wall time
    return recs


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    data, weak = write_vqa(root / "vqa", {"train": 8})
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run(["a3tune", "train", *args(data, weak, root / "run")]) == 0
    finally:
        torch.set_num_threads(before)
    return data, weak, root / "run"


def killed(mode: str, step: int, data: Path, weak: Path, out: Path) -> None:
    cmd = [
        sys.executable,
        str(KILLABLE),
        mode,
        str(step),
        str(torch.get_num_threads()),
        "--",
        *args(data, weak, out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def test_sigkill_then_resume_is_bit_identical(reference, tmp_path):
    data, weak, ref = reference
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        str(KILLABLE),
        "after",
        "4",
        str(torch.get_num_threads()),
        "--",
        *args(data, weak, out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not (out / "final").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002.pt", "step-00000004.pt"]
    assert [r["step"] for r in metrics(out)] == [1, 2, 3, 4]

    assert run(["a3tune", "train", *args(data, weak, out), "--resume"]) == 0
    for name in ADAPTER_FILES:
        assert (out / "final" / name).read_bytes() == (ref / "final" / name).read_bytes(), name
    assert metrics(out) == metrics(ref)
    # resuming a finished run returns its adapter untouched
    before = (out / "final" / "adapter_model.safetensors").read_bytes()
    assert run(["a3tune", "train", *args(data, weak, out), "--resume"]) == 0
    assert (out / "final" / "adapter_model.safetensors").read_bytes() == before


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_usable(reference, tmp_path):
    data, weak, ref = reference
    out = tmp_path / "killed"
    killed("during", 4, data, weak, out)
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == [".step-00000004.pt.killed.tmp", "step-00000002.pt"]  # half-written, never renamed
    assert run(["a3tune", "train", *args(data, weak, out), "--resume"]) == 0
    for name in ADAPTER_FILES:
        assert (out / "final" / name).read_bytes() == (ref / "final" / name).read_bytes(), name
    assert metrics(out) == metrics(ref)
    assert not list((out / "checkpoints").glob(".*.tmp"))  # cleaned up on resume


def test_resume_refuses_changed_settings(reference, tmp_path, capsys):
    data, weak, _ = reference
    out = tmp_path / "run"
    killed("after", 2, data, weak, out)
    changed = args(data, weak, out)
    changed[changed.index("--lr") + 1] = "1e-3"
    assert run(["a3tune", "train", *changed, "--resume"]) == 1
    err = capsys.readouterr().err
    assert "cannot resume" in err and "train.lr: checkpoint 0.003, now 0.001" in err


@pytest.mark.slow  # ~15 s: two fresh Python processes importing torch and transformers
def test_two_processes_train_one_adapter(tmp_path):
    """torchrun, 2 CPU processes (gloo): a global batch of 4 is split 2 + 2, gradients are averaged, both ranks
    end with the same adapter (the loop raises otherwise) and the folder is a normal run."""
    data, weak = write_vqa(tmp_path / "vqa", {"train": 8})
    out = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "medpeft.cli",
           "a3tune", "train", *args(data, weak, out)[:-1], "--max-steps", "2", "--quiet"]  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["steps"] == 2
    assert [r["step"] for r in metrics(out)] == [1, 2]
    assert (out / "final" / "a3tune_moe.safetensors").is_file()
