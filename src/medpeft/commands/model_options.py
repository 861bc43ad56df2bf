"""Building the models that ``--backbone``/``--adapter`` name, for the inference commands.

Not a sub-command (``cli.COMMANDS`` does not list it). Heavy imports stay inside the functions so that
``medpeft --help`` does not pay for torch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BASE = "none"


def check_adapter(adapter: str | None) -> str | None:
    """``None`` for the base model; otherwise the local path it stands for (a folder or file that exists, or a
    Hub repo fetched into the HF cache by ``medpeft.hub``), resolved before any model is loaded."""
    from medpeft.hub import resolve_adapter

    if adapter is None or adapter.lower() == BASE:
        return None
    return str(resolve_adapter(adapter))


def adapter_spec(adapter: str | None) -> str | None:
    """What the user typed, or ``None`` for the base model (for labels and run records)."""
    return None if adapter is None or adapter.lower() == BASE else adapter


def adapter_labels(adapters: Sequence[str | None]) -> list[str]:
    """Table names: 'base' for no adapter, else the folder/file name as typed (``org/name`` -> ``name``), made
    unique."""
    labels: list[str] = []
    for adapter in adapters:
        label = (
            "base" if adapter is None else Path(adapter.removeprefix("hf-hub:").rstrip("/")).stem or adapter
        )
        while label in labels:
            label += "'"
        labels.append(label)
    return labels


def build_model(backbone: Any, adapter: str | None) -> Any:
    """The base model (frozen BiomedCLIP, its own logit scale) or ``backbone`` + an adapter."""
    from medpeft.ace_lora.config import AceLoraConfig
    from medpeft.ace_lora.model import AceLoraModel

    if adapter is None:
        return AceLoraModel(backbone, AceLoraConfig.base())
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
