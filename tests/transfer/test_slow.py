"""Slow end-to-end checks: a killed run resumes to the same bits; synthetic SIIM/RSNA through prepare."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "medpeft.cli", "finetune", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_resume_after_kill_is_bit_for_bit(blob_data, tmp_path) -> None:
    args = ["segmentation", "--backbone", "tiny", "--data", str(blob_data), "--epochs", "6", "--batch-size", "4",
            "--decoder-width", "32", "--checkpoint-every", "3", "--overlays", "0"]  # fmt: skip
    reference = tmp_path / "reference"
    subprocess.run(_cli(*args, "--out", str(reference)), check=True, env=_env(), capture_output=True)

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(*args, "--out", str(out)), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while (
        not (out / "checkpoints" / "last.pt").is_file()
        and time.monotonic() < deadline
        and proc.poll() is None
    ):
        time.sleep(0.05)
    time.sleep(1.0)  # let it train past the checkpoint, so the resume repeats some steps
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "test_metrics.json").exists(), "the run finished before it could be killed"
    subprocess.run(_cli(*args, "--out", str(out), "--resume"), check=True, env=_env(), capture_output=True)

    mine, theirs = (json.loads((d / "test_metrics.json").read_text()) for d in (out, reference))
    assert mine["metrics"] == theirs["metrics"] and mine["best_step"] == theirs["best_step"]
    assert json.loads((out / "history.json").read_text()) == json.loads(
        (reference / "history.json").read_text()
    )
    a, b = (torch.load(d / "best.pt", weights_only=True)["head"] for d in (out, reference))
    assert set(a) == set(b) and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    from medpeft.data.prepare import prepare
    from medpeft.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("synthetic")
    out = {}
    for name in ("siim", "rsna"):
        synthesize(name, root / f"{name}_raw", n=200, seed=0, image_size=128)
        prepare(name, root / f"{name}_raw", root / name, image_size=64, fractions=[0.5], progress=False)
        out[name] = root / name
    return out


def test_synthetic_siim_segmentation_learns(tiny_encoder, synthetic, tmp_path) -> None:
    from medpeft.transfer.finetune_loop import LoopConfig, evaluate, run_finetune
    from medpeft.transfer.segmentation import SegmentationTask

    task = SegmentationTask(tiny_encoder, synthetic["siim"], decoder_width=64, seed=0, overlays=2)
    before = evaluate(task, task.test_set)
    after = run_finetune(task, LoopConfig(out_dir=tmp_path / "seg", epochs=10, batch_size=8, lr=3e-3), {})[
        "metrics"
    ]
    assert after["dice_mgca"] > before["dice_mgca"] + 0.3, (before, after)
    assert after["dice_foreground"] > before["dice_foreground"] + 0.3, (before, after)


def test_synthetic_rsna_detection_learns(tiny_encoder, synthetic, tmp_path) -> None:
    from medpeft.transfer.detection import DetectionTask
    from medpeft.transfer.finetune_loop import LoopConfig, evaluate, run_finetune

    task = DetectionTask(
        tiny_encoder.with_blocks([4]), synthetic["rsna"], fpn_channels=64, seed=0, overlays=2
    )
    before = evaluate(task, task.test_set)
    after = run_finetune(task, LoopConfig(out_dir=tmp_path / "det", epochs=10, batch_size=8, lr=1e-3), {})[
        "metrics"
    ]
    assert after["map"] > before["map"] + 0.3, (before, after)
    assert after["n_images_scored"] == after["n_images"]


def test_synthetic_fraction_and_zero_shot(synthetic, tmp_path) -> None:
    """--fraction reads the prepared subset; --zero-shot-map scores the same test split."""
    from medpeft.cli import main

    base = ["finetune", "segmentation", "--backbone", "tiny", "--data", str(synthetic["siim"])]
    assert (
        main([*base, "--out", str(tmp_path / "f"), "--fraction", "0.5", "--epochs", "1", "--overlays", "0"])
        == 0
    )
    result = json.loads((tmp_path / "f" / "test_metrics.json").read_text())
    assert result["config"]["head"]["manifests"]["train"].endswith("train_fraction_0.5.csv")
    assert main([*base, "--out", str(tmp_path / "z"), "--zero-shot-map"]) == 0
    zs = json.loads((tmp_path / "z" / "test_metrics.json").read_text())
    assert zs["metrics"]["n_images"] == result["metrics"]["n_images"]
