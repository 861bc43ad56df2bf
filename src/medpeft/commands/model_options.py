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
