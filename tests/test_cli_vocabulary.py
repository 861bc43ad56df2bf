"""One CLI vocabulary: every command that has a shared knob spells it, parses it and explains it the same
way (``commands/options.py``), and no old spelling survives in any ``--help``."""

from __future__ import annotations

import argparse

import pytest

from medpeft.cli import build_parser

OLD_SPELLINGS = ("--num-workers", "--mixed-precision", "--amp", "--cpu")
SAME_EVERYWHERE = ("--backbone", "--device", "--precision", "--quiet", "--on-bad-image")


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command and sub-command parser, by its command line ("finetune segmentation", ...)."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[f"{prefix} {name}".strip()] = sub
                    walk(f"{prefix} {name}", sub)

    walk("", build_parser())
    return found


PARSERS = _parsers()


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_every_command_is_found():
    assert {"train", "eval", "predict", "finetune segmentation", "weak-labels", "serve"} <= set(PARSERS)


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_no_old_spelling_in_help(command):
    text = PARSERS[command].format_help()
    assert [old for old in OLD_SPELLINGS if old in text] == []


@pytest.mark.parametrize("flag", SAME_EVERYWHERE)
def test_shared_flags_are_one_definition(flag):
    actions = {c: a for c, p in PARSERS.items() if (a := _option(p, flag)) is not None}
    assert len(actions) >= 2, f"{flag} is shared by fewer than two commands: {sorted(actions)}"
    helps = {a.help for a in actions.values()}
    choices = {tuple(a.choices) if a.choices else None for a in actions.values()}
    assert len(helps) == 1, {c: a.help for c, a in actions.items()}
    assert len(choices) == 1


def test_device_and_precision_vocabulary():
    precision = _option(PARSERS["eval"], "--precision")
    assert tuple(precision.choices) == ("fp32", "bf16", "fp16") and precision.default == "fp32"
    assert _option(PARSERS["finetune detection"], "--device").default == "auto"
