"""`medpeft a3tune train|eval --help`: every flag is explained, the examples are there, the flags of the issue
are spelled exactly, and "a3tune" is registered in medpeft.cli."""

from __future__ import annotations

import argparse

import pytest
from a3_cli import parser

from medpeft.cli import COMMANDS

ISSUE_FLAGS = {
    "train": {"--base", "--data", "--weak-labels", "--out", "--method", "--no-moe", "--no-align", "--preset",
              "--epochs", "--max-steps", "--batch-size", "--grad-accum", "--lr", "--precision",
              "--gradient-checkpointing", "--seed", "--workers", "--resume", "--checkpoint-every", "--quiet"},
    "eval": {"--base", "--adapter", "--data", "--split", "--out", "--weak-labels", "--batch-size", "--num-beams",
             "--max-new-tokens", "--device", "--precision", "--overwrite", "--quiet", "--overlays"},
}  # fmt: skip


def subparser(name: str) -> argparse.ArgumentParser:
    a3 = parser()._subparsers._group_actions[0].choices["a3tune"]
    return a3._subparsers._group_actions[0].choices[name]


@pytest.mark.parametrize("name", ["train", "eval"])
def test_every_flag_is_explained_and_examples_are_given(name):
    p = subparser(name)
    actions = [a for a in p._actions if a.option_strings and "--help" not in a.option_strings]
    flags = {s for a in actions for s in a.option_strings}
    assert ISSUE_FLAGS[name] <= flags
    assert all(a.help and len(a.help) > 10 for a in actions), [
        a.option_strings for a in actions if not a.help
    ]
    assert p.epilog.startswith("Examples:") and f"medpeft a3tune {name} --base" in p.epilog
    assert "--method lora" in subparser("train").description or name == "eval"


def test_registered_in_the_cli():
    assert "a3tune" in COMMANDS


def test_method_choices_and_defaults():
    args = parser().parse_args(["a3tune", "train", "--base", "b", "--data", "d", "--out", "o"])
    assert (args.method, args.preset, args.precision, args.resume) == ("a3tune", "paper-vqa", "fp32", False)
    with pytest.raises(SystemExit):
        parser().parse_args(
            ["a3tune", "train", "--base", "b", "--data", "d", "--out", "o", "--method", "dora"]
        )
    ev = parser().parse_args(["a3tune", "eval", "--base", "b", "--data", "d", "--out", "o", "--adapter", "none",
                              "--adapter", "x"])  # fmt: skip
    assert ev.adapter == ["none", "x"] and ev.split == "test" and ev.num_beams == 1
