"""``environment_info``: versions, devices and where BiomedCLIP's weights are looked for.

What a bug report needs and what a user asks first ("is my cache found?"), without touching the network.
"""

from __future__ import annotations

import os
import platform
from typing import Any


def _cached_file(repo: str, filename: str) -> str | None:
    """Path of ``filename`` of ``repo`` in the local HF cache, or None (never downloads)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return found if isinstance(found, str) else None


def weights_info() -> dict[str, Any]:
    """Where ``load_backbone("biomedclip")`` looks, and whether it finds the files offline."""
    from huggingface_hub import constants

    from medpeft.backbones.clip import BIOMEDBERT_HUB_ID, BIOMEDCLIP_HUB_ID, CONFIG_FILE, WEIGHT_FILES

    weights = next((p for f in WEIGHT_FILES if (p := _cached_file(BIOMEDCLIP_HUB_ID, f))), None)
    return {
        "biomedclip_hub_id": BIOMEDCLIP_HUB_ID,
        "hf_hub_cache": str(constants.HF_HUB_CACHE),
        "hf_hub_offline": bool(constants.HF_HUB_OFFLINE),
        "biomedclip_config_cached": _cached_file(BIOMEDCLIP_HUB_ID, CONFIG_FILE),
        "biomedclip_weights_cached": weights,
        "tokenizer_repo": BIOMEDBERT_HUB_ID,
        "tokenizer_vocab_cached": _cached_file(BIOMEDCLIP_HUB_ID, "vocab.txt")
        or _cached_file(BIOMEDBERT_HUB_ID, "vocab.txt"),
        "local_folder": "pass a folder with open_clip_config.json, open_clip_pytorch_model.bin "
        "(or open_clip_model.safetensors) and vocab.txt/tokenizer.json as --backbone",
    }


def devices_info() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    out: dict[str, Any] = {
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
        "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    from medpeft.runtime import cpu_model

    out["cpu"] = cpu_model()
    return out


def environment_info() -> dict[str, Any]:
    """Everything ``medpeft info`` prints, as a dict (JSON-serialisable)."""
    from medpeft.runtime import package_versions

    packages = package_versions(
        ("huggingface_hub", "safetensors", "tokenizers", "torchvision", "pydicom", "torchmetrics")
    )
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
        "devices": devices_info(),
        "weights": weights_info(),
    }


def format_info(info: dict[str, Any]) -> str:
    """A readable two-column listing of ``environment_info()``."""
    lines = [f"python        {info['python']}  ({info['platform']})"]
    for title, key in (("packages", "packages"), ("devices", "devices"), ("weights", "weights")):
        lines.append(f"{title}:")
        for name, value in info[key].items():
            shown = "not installed" if value is None and key == "packages" else value
            if value is None and key == "weights":
                shown = "not found"
            lines.append(f"  {name:<26}{shown}")
    return "\n".join(lines)
