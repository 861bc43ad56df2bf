"""The one definition of every command-line flag that more than one command has.

Every command spells a shared knob the same way, with the same help text and the same parser:
``--backbone``, ``--adapter``, ``--device``, ``--precision``, ``--workers``, ``--batch-size``, ``--seed``,
``--out``, ``--overwrite``, ``--quiet``, ``--on-bad-image``, ``--templates``, ``--compile``. No hidden defaults:
``--backbone`` is required wherever a run would otherwise silently pick a model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medpeft.runtime import PRECISIONS

BACKBONE_HELP = (
    "biomedclip (HF hub or cache), hf-hub:ORG/REPO, a local open_clip folder, biomedclip-arch or tiny "
    "(random weights, offline), or timm:NAME (an image-only timm ViT; finetune only)"
)
ADAPTER_HELP = (
    "adapter folder (save_pretrained), released .pt checkpoint, or Hugging Face Hub adapter: ORG/NAME or "
    "hf-hub:ORG/NAME[@REVISION] (HF cache and HF_HUB_OFFLINE honoured; a local path of that name wins); "
    "'none' = the base model"
)


def add_backbone(p: argparse.ArgumentParser, *, required: bool = True, default: str | None = None) -> None:
    p.add_argument("--backbone", required=required, default=default, metavar="B", help=BACKBONE_HELP)


def add_adapter(p: argparse.ArgumentParser, *, several: bool = False) -> None:
    if several:
        p.add_argument(
            "--adapter",
            action="append",
            default=None,
            metavar="A",
            help=ADAPTER_HELP + " (default none); repeat to compare several adapters in one table",
        )
    else:
        p.add_argument("--adapter", default=None, metavar="A", help=ADAPTER_HELP + " (default none)")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        metavar="D",
        help="auto (CUDA when available, else the CPU), cpu, cuda or cuda:N (default auto)",
    )


def add_precision(p: argparse.ArgumentParser, *, default: str | None = "fp32") -> None:
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=default,
        help="fp32 (exact; the default), bf16 (autocast) or fp16 (autocast + loss scaling; CUDA only)",
    )


def add_workers(p: argparse.ArgumentParser, *, default: int | None = 0) -> None:
    shown = "" if default is None else f" (default {default})"
    p.add_argument(
        "--workers", type=int, default=default, metavar="N", help=f"data-loading worker processes{shown}"
    )


def add_batch_size(
    p: argparse.ArgumentParser, *, default: int | None, what: str = "images per batch"
) -> None:
    shown = "" if default is None else f" (default {default})"
    p.add_argument("--batch-size", type=int, default=default, metavar="N", help=f"{what}{shown}")


def add_seed(p: argparse.ArgumentParser, *, default: int | None = 0) -> None:
    shown = "" if default is None else f" (default {default})"
    p.add_argument("--seed", type=int, default=default, metavar="N", help=f"random seed{shown}")


def add_out(p: argparse.ArgumentParser, *, required: bool = True, help: str = "output folder") -> None:
    p.add_argument("--out", type=Path, required=required, default=None, metavar="DIR", help=help)


def add_overwrite(p: argparse.ArgumentParser, *, what: str = "existing results") -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace {what} (never done without it)")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_on_bad_image(p: argparse.ArgumentParser, *, default: str | None = "error") -> None:
    p.add_argument(
        "--on-bad-image",
        choices=["error", "skip"],
        default=default,
        help="an unreadable image: fail naming it (default error), or skip it and report the count",
    )


COMPILE_HELP = (
    "run the towers through torch.compile: the same numbers (within float rounding, <= 1e-6 measured), "
    "faster once compiled; the first batch of each shape compiles (seconds to a minute, not counted as "
    "training time); falls back to eager mode with a warning where compilation is unavailable"
)


def add_compile(p: argparse.ArgumentParser, *, default: bool | None = False) -> None:
    """``--compile`` (``default=None`` for commands whose config file may set it)."""
    p.add_argument("--compile", action="store_true", default=default, help=COMPILE_HELP)


def add_templates(p: argparse.ArgumentParser, *, default_text: str) -> None:
    p.add_argument(
        "--templates",
        default=None,
        metavar="FILE",
        help=(
            "prompt templates: a text file (one template with '{}' per line), a JSON list or {class: [prompts]}, "
            f"or a named set: chest-xray, histopathology, biomedclip (default: {default_text})"
        ),
    )


def add_inference_options(p: argparse.ArgumentParser, *, batch_size: int, templates_default: str) -> None:
    """The flags of a zero-shot inference command (``eval``, ``predict``)."""
    add_templates(p, default_text=templates_default)
    add_batch_size(p, default=batch_size)
    add_workers(p)
    add_device(p)
    add_precision(p)
    add_compile(p)
    add_on_bad_image(p)
    add_overwrite(p)
    add_quiet(p)


def inference_options(args: argparse.Namespace):
    """The ``InferenceOptions`` the flags of :func:`add_inference_options` describe."""
    from medpeft.evaluation.options import InferenceOptions

    return InferenceOptions(
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        precision=args.precision,
        on_bad_image=args.on_bad_image,
        progress=not args.quiet,
        compile=bool(getattr(args, "compile", False)),
    )
