"""`medpeft info`: versions, devices and where BiomedCLIP's weights are looked for."""

from __future__ import annotations

import argparse

_DESCRIPTION = """\
Print medpeft's and its libraries' versions, the compute devices torch sees, and where
'--backbone biomedclip' looks for weights (the Hugging Face cache; HF_HOME / HF_HUB_CACHE
move it, HF_HUB_OFFLINE=1 forbids downloads) and whether they are already there.
Nothing is downloaded. Paste the output into bug reports.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="versions, devices and where weights are looked for",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from medpeft.info import environment_info, format_info

    info = environment_info()
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
