"""Options shared by the inference commands (``eval``, ``predict``): which model, and how to run it.

Not a sub-command (``cli.COMMANDS`` does not list it). Heavy imports stay inside the functions so that
``medpeft --help`` does not pay for torch.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BASE = "none"


def add_model_options(p: argparse.ArgumentParser, *, several_adapters: bool) -> None:
    p.add_argument(
        "--backbone",
        required=True,
        metavar="B",
        help="biomedclip (HF hub/cache), a local BiomedCLIP folder, hf-hub:org/repo, biomedclip-arch or tiny",
    )
    adapter_help = (
        "adapter folder (save_pretrained) or released .pt checkpoint; 'none' = the base model (default)"
    )
    if several_adapters:
        p.add_argument(
            "--adapter",
            action="append",
            default=None,
            metavar="A",
            help=adapter_help + "; repeat to compare several adapters in one table",
        )
    else:
        p.add_argument("--adapter", default=None, metavar="A", help=adapter_help)


def add_runtime_options(p: argparse.ArgumentParser, *, batch_size: int, templates_default: str) -> None:
    p.add_argument(
        "--templates",
        default=None,
        metavar="FILE",
        help=(
            "prompt templates: a text file (one template with '{}' per line), a JSON list or {class: [prompts]}, "
            f"or a named set: chest-xray, histopathology, biomedclip (default: {templates_default})"
        ),
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=batch_size,
        metavar="N",
        help=f"images per batch (default {batch_size})",
    )
    p.add_argument(
        "--workers", type=int, default=0, metavar="N", help="image decoding worker processes (default 0)"
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument(
        "--amp",
        choices=["auto", "bf16", "fp16", "none"],
        default="auto",
        help="mixed precision on CUDA (auto = bf16 where supported, else fp16); never used on the CPU",
    )
    p.add_argument(
        "--on-bad-image",
        choices=["error", "skip"],
        default="error",
        help="an unreadable image: fail naming it (default), or skip it and report the count",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing results")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def amp_value(args: argparse.Namespace) -> str | None:
    return None if args.amp == "auto" else args.amp


def check_adapter(adapter: str | None) -> str | None:
    """``None`` for the base model; otherwise the path, which must exist (checked before loading anything)."""
    from medpeft.errors import CheckpointError

    if adapter is None or adapter.lower() == BASE:
        return None
    if not Path(adapter).exists():
        raise CheckpointError(
            f"adapter not found: {adapter} (an adapter folder, a released .pt file, or 'none')"
        )
    return adapter


def adapter_labels(adapters: Sequence[str | None]) -> list[str]:
    """Table names: 'base' for no adapter, else the folder/file name (made unique)."""
    labels: list[str] = []
    for adapter in adapters:
        label = "base" if adapter is None else Path(adapter.rstrip("/")).stem or adapter
        while label in labels:
            label += "'"
        labels.append(label)
    return labels


def build_model(backbone: Any, adapter: str | None) -> Any:
    """The base model (frozen BiomedCLIP, its own logit scale) or ``backbone`` + an adapter."""
    from medpeft.ace_lora.config import AceLoraConfig
    from medpeft.ace_lora.model import AceLoraModel

    if adapter is None:
        return AceLoraModel(backbone, AceLoraConfig(lora_encoders=(), hgnn=(), learn_logit_scale=False))
    return AceLoraModel.from_pretrained(backbone, adapter)


def model_factories(backbone_spec: str, adapters: Sequence[str | None]) -> list[Callable[[], Any]]:
    """One lazily built model per adapter over a backbone loaded once (deep-copied for all but the last:
    LoRA is injected into the backbone in place)."""
    from medpeft.backbones.clip import load_backbone

    loaded: dict[str, Any] = {}

    def factory(index: int, adapter: str | None) -> Callable[[], Any]:
        def make() -> Any:
            if "bb" not in loaded:
                loaded["bb"] = load_backbone(backbone_spec)
            bb = loaded["bb"] if index == len(adapters) - 1 else copy.deepcopy(loaded["bb"])
            if index == len(adapters) - 1:
                loaded.clear()
            return build_model(bb, adapter)

        return make

    return [factory(i, a) for i, a in enumerate(adapters)]
