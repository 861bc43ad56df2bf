"""``train(..., compile=True)``: the same adapter as eager training (the warm-up leaves no trace), the
warm-up logged apart from training time, and an eager run with a warning where compilation is unavailable."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from safetensors.torch import load_file

from medpeft.backbones.compilation import compile_support
from medpeft.training.loop import train
from medpeft.training.run_config import load_run_config


def _config(**train_overrides):
    overrides = {f"train.{k}": v for k, v in train_overrides.items()}
    overrides.setdefault("train.tensorboard", False)
    overrides.setdefault("train.progress", False)
    return load_run_config("tiny", overrides)


def _adapter(final) -> dict[str, torch.Tensor]:
    return load_file(str(final / "adapter_model.safetensors"))


def test_train_falls_back_to_eager_when_compile_is_unavailable(
    eight, pristine_tiny, tmp_path, monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise RuntimeError("Compiler: cc is not found")

    compile_support.cache_clear()
    monkeypatch.setattr(torch, "compile", broken)
    try:
        rc = _config(epochs=1, max_steps=1, checkpoint_every=0, compile=True)
        with caplog.at_level(logging.WARNING, logger="medpeft.train"), pytest.warns(RuntimeWarning):
            final = train(copy.deepcopy(pristine_tiny), eight, tmp_path / "run", rc.train, rc.model)
    finally:
        compile_support.cache_clear()
    assert any("torch.compile is unavailable" in r.getMessage() for r in caplog.records)
    assert (final / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_compiled_training_gives_the_eager_adapter(eight, pristine_tiny, tmp_path, caplog):
    runs = {}
    for compiled in (False, True):
        rc = _config(epochs=1, max_steps=2, checkpoint_every=0, compile=compiled)
        with caplog.at_level(logging.INFO, logger="medpeft.train"):
            final = train(
                copy.deepcopy(pristine_tiny), eight, tmp_path / f"run{compiled}", rc.train, rc.model
            )
        runs[compiled] = _adapter(final)
    assert any("not counted as training time" in r.getMessage() for r in caplog.records)
    eager, comp = runs[False], runs[True]
    assert set(eager) == set(comp) and len(eager) > 0
    worst = max((eager[k] - comp[k]).abs().max().item() for k in eager)
    assert worst <= 1e-5, worst
