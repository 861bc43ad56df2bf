"""Command line: a thin dispatcher over the ``medpeft.commands`` modules.

Each sub-command lives in ``medpeft/commands/<name>.py`` and exposes
``register(subparsers)``; that module parses nothing else and calls the library API.
Heavy imports (torch, open_clip) happen inside each command's ``run`` so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# module names under medpeft.commands (the command ``weak-labels`` lives in ``weak_labels.py``)
COMMANDS = [
    "demo",
    "synth",
    "prepare",
    "train",
    "eval",
    "predict",
    "finetune",
    "convert",
    "push",
    "weak_labels",
    "a3tune",
    "serve",
    "info",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medpeft",
        description="Parameter-efficient adaptation of medical vision-language models: ACE-LoRA (BiomedCLIP) and A³Tune (LLaVA).",
        epilog="Run 'medpeft COMMAND --help' for the options of one command.",
    )
    from medpeft.runtime import medpeft_version

    parser.add_argument("--version", action="version", version=f"medpeft {medpeft_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"medpeft.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from medpeft.errors import MedpeftError

    try:
        result = args.func(args)
    except MedpeftError as err:
        print(f"medpeft {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"medpeft {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
