"""Run ``medpeft a3tune ...`` in this process (not a test module).

The parser is built from ``medpeft.commands.a3tune.register`` alone — the very code ``medpeft.cli`` dispatches
to — so these tests do not depend on the other commands' modules importing cleanly.
"""

from __future__ import annotations

import argparse
import sys

from medpeft.commands import a3tune


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medpeft")
    sub = p.add_subparsers(dest="command")
    a3tune.register(sub)
    return p


def run(argv: list[str]) -> int:
    """Like ``medpeft.cli.main``: a MedpeftError becomes exit status 1 with the message on stderr."""
    from medpeft.errors import MedpeftError

    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MedpeftError as err:
        print(f"medpeft {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # torchrun / accelerate launch entry point of the multi-process test
    sys.exit(run(sys.argv[1:]))
