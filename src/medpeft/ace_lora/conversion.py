"""Convert adapters between the released ACE-LoRA ``.pt`` format and medpeft's adapter folder.

An adapter holds no backbone weights, so converting needs only the backbone's *architecture*:
a BiomedCLIP adapter is converted on ``biomedclip-arch`` (no download), other adapters on the
backbone named in their ``adapter_config.json`` (or ``backbone``).
"""

from __future__ import annotations

import json
from pathlib import Path

from medpeft.errors import CheckpointError, OutputExistsError

#: Backbones whose architecture can be built without their weights, by the name an adapter records.
ARCHITECTURE_OF = {"biomedclip": "biomedclip-arch", "biomedclip-arch": "biomedclip-arch", "tiny": "tiny"}


def _recorded_backbone(folder: Path) -> str | None:
    from medpeft.ace_lora.model import ADAPTER_CONFIG

    cfg = folder / ADAPTER_CONFIG
    if not cfg.is_file():
        raise CheckpointError(f"{folder}: not an adapter folder (no {ADAPTER_CONFIG})")
    try:
        return json.loads(cfg.read_text()).get("backbone")
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{cfg}: invalid JSON ({err})") from err


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    backbone: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Released ``.pt`` -> adapter folder, or adapter folder -> released ``.pt`` (direction from ``src``).
    ``src`` may be a Hub name (``org/name``, ``hf-hub:org/name[/file.pt][@rev]``; see ``medpeft.hub``).

    ``backbone``: the backbone (or its architecture preset / folder) the adapter belongs to; by default
    ``biomedclip-arch`` for a released checkpoint and the recorded backbone for a folder. Returns ``dst``.
    """
    from medpeft.ace_lora.model import ADAPTER_WEIGHTS, AceLoraModel
    from medpeft.backbones.clip import load_backbone
    from medpeft.hub import HF_PREFIX, is_repo_id, resolve_adapter

    text, dst = str(src), Path(dst)
    if not Path(text).exists() and not text.startswith(HF_PREFIX) and not is_repo_id(text.split("@", 1)[0]):
        raise CheckpointError(f"{text}: no such adapter file or folder")
    src = resolve_adapter(text)  # a local path, or a Hub name fetched into the HF cache
    if src.is_dir():
        recorded = _recorded_backbone(src)
        spec = backbone or ARCHITECTURE_OF.get(recorded or "", recorded)
        if spec is None:
            raise CheckpointError(f"{src}: adapter_config.json names no backbone; pass backbone=")
        if dst.exists() and not overwrite:
            raise OutputExistsError(f"{dst} exists; pass --overwrite to replace it")
        if dst.is_dir():
            raise OutputExistsError(f"{dst} is a folder; give the path of the .pt file to write")
        model = AceLoraModel.from_pretrained(load_backbone(spec), src)
        return model.save_official(dst)
    if dst.exists() and not dst.is_dir():
        raise OutputExistsError(f"{dst} exists and is not a folder; the adapter folder must be new or empty")
    if (dst / ADAPTER_WEIGHTS).exists() and not overwrite:
        raise OutputExistsError(f"{dst / ADAPTER_WEIGHTS} exists; pass --overwrite to replace it")
    spec = backbone or "biomedclip-arch"
    model = AceLoraModel.from_pretrained(load_backbone(spec), src)
    recorded = "biomedclip" if spec == "biomedclip-arch" else None
    return model.save_pretrained(dst, overwrite=overwrite, backbone_name=recorded)
