"""Two processes (torchrun, gloo on CPU) train together: both end with the same adapter, and with
embeddings gathered across processes the run equals one process on the same global batches."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import small_manifest

from medpeft.training.loop import train
from medpeft.training.run_config import load_run_config


def test_two_processes_with_gather_match_one_process(tiny_dir, pristine_tiny, mimic, tmp_path):
    data = small_manifest(mimic, tmp_path / "data", 8)
    overrides = {
        "backbone": str(tiny_dir),
        "train.epochs": 2,
        "train.gather": True,
        "train.checkpoint_every": 0,
        "train.tensorboard": False,
        "model.dropout": 0.0,  # dropout masks differ by process; everything else must match
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "medpeft.cli", "train", "--config", "tiny", "--data", str(data), "--out", str(tmp_path / "two"),
        "--quiet", *[f"--set={k}={json.dumps(v)}" for k, v in overrides.items()],
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]

    rc = load_run_config("tiny", overrides)
    one = train(copy.deepcopy(pristine_tiny), data, tmp_path / "one", rc.train, rc.model)

    summary = json.loads((tmp_path / "two" / "train_summary.json").read_text())
    assert summary["num_processes"] == 2
    digests = summary["adapter_sha256_per_process"]
    assert len(digests) == 2 and digests[0] == digests[1]  # both ranks hold the same adapter, bit for bit

    def losses(out):
        return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]

    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    two = load_file(str(tmp_path / "two" / "final" / "adapter_model.safetensors"))
    ref = load_file(str(one / "adapter_model.safetensors"))
    # Adam scales each update to about lr, so rounding noise in a near-zero gradient can move an element
    # by up to one step; the loss equality above is the tight check
    for name in ref:
        torch.testing.assert_close(two[name], ref[name], rtol=0, atol=rc.train.lr, msg=name)
