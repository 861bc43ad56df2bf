"""`medpeft push`: upload an adapter folder to the Hugging Face Hub with a generated model card."""

from __future__ import annotations

import argparse

_DESCRIPTION = """\
Upload an adapter folder (ACE-LoRA or A³Tune) to a Hugging Face Hub model repo, creating the repo if needed,
in one commit. A model card (README.md: YAML metadata, the configuration, how to load the adapter in Python
and on the command line, and the tables of any `medpeft eval` results kept in the folder) is generated and
written into the folder first; it is the only file written there. A README.md you wrote yourself (one
without medpeft's marker line) is kept and uploaded as it is.

Uploaded: README.md, adapter_config.json, a3tune_config.json, *.safetensors and medpeft eval's results.md,
metrics.json and summary.json. Not uploaded: predictions.csv (one row per image), plots, checkpoints.
The token comes from the usual places (HF_TOKEN, `hf auth login`) or --token.
"""

_EPILOG = """\
examples:
  medpeft push runs/paper/best my-lab/ace-lora-mimic
  medpeft push runs/paper/best my-lab/ace-lora-mimic --private --message "40 epochs, best on NIH"
  medpeft push runs/paper/best my-lab/ace-lora-mimic --revision v1 --dataset mimic-cxr --license cc-by-4.0
then, anywhere:
  medpeft eval --backbone biomedclip --adapter my-lab/ace-lora-mimic --dataset rsna --data prepared/rsna
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push",
        help="upload an adapter folder to the Hugging Face Hub with a model card",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("adapter", metavar="ADAPTER", help="the adapter folder (save_pretrained / medpeft train)")
    p.add_argument(
        "repo_id", metavar="REPO", help="the Hub model repo, ORG/NAME (hf-hub:ORG/NAME also taken)"
    )
    p.add_argument(
        "--private", action="store_true", help="create the repo private (an existing repo keeps its setting)"
    )
    p.add_argument(
        "--message",
        default=None,
        metavar="M",
        help="commit message (default 'Upload medpeft adapter')",
    )
    p.add_argument(
        "--revision",
        default=None,
        metavar="BRANCH",
        help="branch to commit to, created from main if missing (default main); load it with ORG/NAME@BRANCH",
    )
    p.add_argument(
        "--license", default="mit", metavar="ID", help="license id for the card's metadata (default mit)"
    )
    p.add_argument(
        "--dataset",
        action="append",
        default=None,
        metavar="NAME",
        help="a training dataset for the card's metadata (repeat for several), e.g. mimic-cxr",
    )
    p.add_argument(
        "--tag", action="append", default=None, metavar="TAG", help="an extra tag for the card (repeatable)"
    )
    p.add_argument(
        "--token", default=None, metavar="T", help="Hub token (default: HF_TOKEN or the saved login)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medpeft.model_card import publish

    info = publish(
        args.adapter,
        args.repo_id,
        private=args.private or None,
        commit_message=args.message,
        revision=args.revision,
        token=args.token,
        license=args.license,
        datasets=args.dataset or (),
        tags=args.tag or (),
    )
    url = getattr(info, "commit_url", None) or getattr(info, "repo_url", None) or args.repo_id
    print(f"pushed {args.adapter} to {url}")
    return 0
