"""``--compile`` on train/eval/predict/finetune (one definition), the options it sets, and the training
warm-up that leaves no trace (RNG states and gradients as before)."""

from __future__ import annotations

import argparse
import copy
import importlib

import pytest
import torch

import medpeft
from medpeft.commands.options import COMPILE_HELP, inference_options
from medpeft.evaluation.options import InferenceOptions
from medpeft.training.config import TrainConfig
from medpeft.training.warmup import compile_warmup
from medpeft.transfer.finetune_loop import LoopConfig


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medpeft")
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(f"medpeft.commands.{command}").register(sub)
    parser = sub.choices[command]
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return nested[0].choices["segmentation"] if nested else parser  # finetune TASK ...


@pytest.mark.parametrize("command", ["train", "eval", "predict", "finetune"])
def test_compile_flag_on_the_four_commands(command):
    parser = _subparser(command)
    flags = {a.dest: a for a in parser._actions} | {
        a.dest: a for g in parser._action_groups for a in g._group_actions
    }
    assert "compile" in flags and flags["compile"].option_strings == ["--compile"]
    assert flags["compile"].help == COMPILE_HELP  # the one shared definition
    assert "--compile" in parser.format_help()


def test_eval_and_predict_flags_reach_inference_options():
    for command, argv in (
        ("eval", ["--backbone", "tiny", "--dataset", "rsna", "--compile"]),
        ("predict", ["--backbone", "tiny", "--labels", "a,b", "x.png", "--compile"]),
    ):
        parser = _subparser(command)
        options = inference_options(parser.parse_args(argv))
        assert options.compile is True, command
        assert inference_options(parser.parse_args(argv[:-1])).compile is False
    assert InferenceOptions().compile is False
    assert InferenceOptions.make(None, compile=True).compile is True


def test_train_flag_sets_train_compile():
    from medpeft.commands.train import build_overrides
    from medpeft.training.run_config import load_run_config

    parser = _subparser("train")
    given = build_overrides(parser.parse_args(["--data", "d", "--out", "o", "--compile"]))
    assert given.get("train.compile") is True
    config = load_run_config(None, given)
    assert config.train.compile is True
    absent = build_overrides(parser.parse_args(["--data", "d", "--out", "o"]))
    assert "train.compile" not in absent  # the config file's value stands
    assert TrainConfig().compile is False


def test_finetune_compile_is_not_a_resume_invariant(tmp_path):
    """Compilation changes no number, so a run may resume with or without it."""
    a = LoopConfig(out_dir=tmp_path, compile=True).result_affecting()
    b = LoopConfig(out_dir=tmp_path, compile=False).result_affecting()
    assert "compile" not in a and a == b


def test_warmup_leaves_rng_and_gradients_untouched(tiny_backbone):
    """The warm-up draws dropout masks and fills gradients; afterwards both are as before, so the first
    real step equals the first step of a run without warm-up."""
    torch.manual_seed(0)
    model = medpeft.AceLoraModel(copy.deepcopy(tiny_backbone)).train()
    twin = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.trainable_parameters().values(), lr=1e-3)
    g = torch.Generator().manual_seed(3)
    size = tiny_backbone.image_size
    pixels = torch.randn(2, 3, size, size, generator=g)
    ids = tiny_backbone.tokenizer(["small effusion", "normal heart"], padding="max_length")
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])

    torch.manual_seed(7)
    before = torch.get_rng_state()
    seconds = compile_warmup(
        model,
        lambda loss: loss.backward(),
        opt,
        lambda texts: tiny_backbone.tokenizer(texts, padding="max_length"),
        2,
        size,
        2,
        torch.device("cpu"),
    )
    assert seconds > 0
    assert torch.equal(torch.get_rng_state(), before)
    assert all(p.grad is None for p in model.trainable_parameters().values())

    results = []
    for m in (model, twin):
        torch.manual_seed(7)
        loss = m(pixels, ids, labels)
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in m.trainable_parameters().values()]))
    (la, ga), (lb, gb) = results
    assert la == lb and len(ga) == len(gb) > 0
    assert all(torch.equal(x, y) for x, y in zip(ga, gb, strict=True))
