"""Helpers for the A³Tune data tests (not a test module): synth once, prepare, read every split back."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medpeft.data.conversations import ConversationSample, read_conversations
from medpeft.data.prepare import prepare
from medpeft.data.synthetic import synthesize


def synth(root: Path, dataset: str, n: int = 16, seed: int = 0, size: int = 64) -> Path:
    out = root / f"{dataset}-raw"
    synthesize(dataset, out, n=n, seed=seed, image_size=size)
    return out


def run(dataset: str, raw: Path, out: Path, **kw) -> dict:
    return prepare(dataset, raw, out, progress=False, **kw)


def read_all(out: Path) -> dict[str, list[ConversationSample]]:
    """Every split the folder's dataset.json lists, read back with ``read_conversations``."""
    info = json.loads((out / "dataset.json").read_text())
    assert info["splits"], "dataset.json lists no split"
    return {split: read_conversations(out, split) for split in info["splits"]}


def truth(raw: Path) -> dict:
    return json.loads((raw / "synthetic_truth.json").read_text())["images"]


def images_by_split(samples: dict[str, list[ConversationSample]]) -> dict[str, set[str]]:
    return {split: {s.image for s in rows} for split, rows in samples.items()}


def assert_no_image_in_two_splits(samples: dict[str, list[ConversationSample]]) -> None:
    sets = list(images_by_split(samples).values())
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            assert not sets[i] & sets[j]


def cli(command: str, argv: list[str]) -> int:
    """Run one command module's parser (``prepare``/``synth``) as ``medpeft`` would."""
    import importlib

    module = importlib.import_module(f"medpeft.commands.{command}")
    parser = argparse.ArgumentParser(prog="medpeft")
    module.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([command, *argv])
    return args.func(args)
