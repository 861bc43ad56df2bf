"""Checkpoints: atomic, safely loaded, RNG round trip, and fallback past a damaged newest file."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from medpeft.errors import CheckpointError
from medpeft.runtime import capture_rng_state, restore_rng_state
from medpeft.training.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    load_latest,
    save_checkpoint,
    stray_temp_files,
)


def state(step: int) -> dict:
    return {
        "adapter": {"w": torch.full((3,), float(step))},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
        "scheduler": {"last_epoch": step},
        "scaler": None,
        "progress": {"global_step": step, "epoch": 0, "step_in_epoch": step},
        "rng": [{"rng": capture_rng_state(), "skipped_images": 0}],
        "config": {"train": {}, "model": {}, "run": {}},
    }


def draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    draws()
    path = save_checkpoint(tmp_path, 7, state(7), keep=2)
    expected = draws()
    draws()
    restore_rng_state(load_checkpoint(path)["rng"][0]["rng"])  # torch.load(weights_only=True) inside
    assert draws() == expected


def test_old_checkpoints_are_pruned_and_temp_files_ignored(tmp_path):
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, step, state(step), keep=2)
    (tmp_path / ".step-00000008.pt.abc.tmp").write_bytes(b"half a checkpoint")
    assert [s for s, _ in list_checkpoints(tmp_path)] == [4, 6]
    assert len(stray_temp_files(tmp_path)) == 1
    ckpt, path = load_latest(tmp_path)
    assert path.name == "step-00000006.pt" and ckpt["progress"]["global_step"] == 6


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
    for step in (2, 4):
        save_checkpoint(tmp_path, step, state(step), keep=2)
    newest = tmp_path / "step-00000004.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    ckpt, path = load_latest(tmp_path)
    assert path.name == "step-00000002.pt" and torch.equal(ckpt["adapter"]["w"], torch.full((3,), 2.0))
    assert "skipping unreadable checkpoint" in caplog.text and "step-00000004.pt" in caplog.text
    (tmp_path / "step-00000002.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        load_latest(tmp_path)


class Evil:
    """A class a weights-only load must refuse to reconstruct."""


def test_checkpoints_never_unpickle_code(tmp_path):
    path = tmp_path / "step-00000001.pt"
    torch.save({"format": "medpeft-train-checkpoint", "format_version": 1, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path)
    assert load_latest(tmp_path / "nothing-here") is None
