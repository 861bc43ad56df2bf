"""The one parser of ``--backbone`` names: a preset, ``hf-hub:org/repo``, a local folder or ``timm:NAME``.

Every command and loader reads a backbone name through :func:`parse_backbone_name`, so the same spelling
means the same thing everywhere (``load_backbone`` for the CLIP family, ``finetune``'s encoders for timm).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medpeft.errors import CheckpointError, ConfigError

BIOMEDCLIP_HUB_ID = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
PRESETS = ("biomedclip", "biomedclip-arch", "tiny")
HUB_PREFIX = "hf-hub:"
TIMM_PREFIX = "timm:"
KINDS = ("folder", "preset", "hub", "timm")


@dataclass(frozen=True)
class BackboneName:
    """``kind``: folder | preset | hub | timm; ``value``: the folder path, preset name, hub repo id or
    timm model name."""

    kind: str
    value: str


def parse_backbone_name(spec: str | os.PathLike[str]) -> BackboneName:
    """Classify a backbone name; a name that is none of the four raises, naming the choices."""
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        return BackboneName("folder", str(path))
    if text in ("biomedclip", BIOMEDCLIP_HUB_ID, f"{HUB_PREFIX}{BIOMEDCLIP_HUB_ID}"):
        return BackboneName("preset", "biomedclip")
    if text in PRESETS:
        return BackboneName("preset", text)
    if text.startswith(HUB_PREFIX):
        return BackboneName("hub", text.removeprefix(HUB_PREFIX))
    if text.startswith(TIMM_PREFIX):
        name = text.removeprefix(TIMM_PREFIX)
        if not name:
            raise ConfigError("--backbone timm:NAME needs a timm model name, e.g. timm:vit_base_patch16_224")
        return BackboneName("timm", name)
    if path.suffix or os.sep in text:
        raise CheckpointError(f"{text}: no such backbone folder")
    raise ConfigError(
        f"unknown backbone {text!r}: use one of {PRESETS}, 'hf-hub:org/repo', a local folder, or timm:NAME "
        "(image-only, finetune)"
    )
