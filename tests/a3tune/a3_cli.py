"""Run ``medpeft a3tune ...`` in this process through the real dispatcher (not a test module)."""

from __future__ import annotations

import argparse
import sys

from medpeft.cli import build_parser, main


def parser() -> argparse.ArgumentParser:
    return build_parser()


def run(argv: list[str]) -> int:
    """``medpeft.cli.main``: a MedpeftError becomes exit status 1 with the message on stderr."""
    return main(argv)


if __name__ == "__main__":  # torchrun / accelerate launch entry point of the multi-process test
    sys.exit(run(sys.argv[1:]))
