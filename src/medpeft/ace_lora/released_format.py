"""The released ACE-LoRA checkpoint format (read, validate, write).

``{"weights": {"layer_{i}": {"q_proj": {"w_lora_A": [r, in], "w_lora_B": [out, r]}, ...}, ...,
"{img,text}_{edge,node}_adapter": {"down.weight", "down.bias", "up.weight", "up.bias"},
"logit_scale": scalar}, "metadata": {...}}``. Layers 0..T-1 are the BERT layers, T..T+V-1 the ViT
blocks (fused qkv split in thirds). Loading never unpickles code (``weights_only=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medpeft.errors import CheckpointError
from medpeft.io import safe_torch_load

PROJ = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"}
ADAPTERS = {
    ("image", "edge"): "img_edge_adapter",
    ("image", "node"): "img_node_adapter",
    ("text", "edge"): "text_edge_adapter",
    ("text", "node"): "text_node_adapter",
}
ADAPTER_KEYS = ("down.weight", "down.bias", "up.weight", "up.bias")


def read_official(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a released ``.pt`` safely and check its top-level structure; returns (weights, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    obj = safe_torch_load(path, "torch checkpoint")
    if not isinstance(obj, dict) or "weights" not in obj:
        kind = type(obj).__name__ if not isinstance(obj, dict) else f"dict with keys {sorted(obj)[:6]}"
        raise CheckpointError(f"{path}: expected a dict with 'weights' and 'metadata', found {kind}")
    weights, metadata = obj["weights"], obj.get("metadata", {})
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: 'weights' must be a dict, found {type(weights).__name__}")
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: 'metadata' must be a dict, found {type(metadata).__name__}")
    return weights, metadata


def _tensor(container: dict, key: str, where: str, shape: tuple[int, ...] | None) -> torch.Tensor:
    if key not in container:
        raise CheckpointError(f"{where}: missing {key!r}")
    value = container[key]
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{where}[{key!r}] must be a tensor, found {type(value).__name__}")
    if shape is not None and tuple(value.shape) != shape:
        raise CheckpointError(f"{where}[{key!r}] has shape {tuple(value.shape)}, expected {shape}")
    if not value.is_floating_point() or not torch.isfinite(value).all():
        raise CheckpointError(f"{where}[{key!r}] must hold finite floating-point numbers")
    return value


def official_to_state(
    weights: dict[str, Any],
    metadata: dict[str, Any],
    lora_layout: dict[str, tuple[str, str, dict[str, tuple[int, int]], int]],
    adapter_dims: dict[str, tuple[int, int]],
    source: str,
) -> dict[str, torch.Tensor]:
    """Map and validate official weights onto medpeft parameter names.

    ``lora_layout``: medpeft module path -> (official layer key, kind, parts, in_features);
    ``adapter_dims``: medpeft module prefix of each expected bottleneck -> (dim, width).
    Every expected tensor must exist with the right shape; unexpected layers are named too.
    """
    rank = metadata.get("r")
    if not isinstance(rank, int) or rank <= 0:
        raise CheckpointError(f"{source}: metadata['r'] must be a positive int, found {rank!r}")
    state: dict[str, torch.Tensor] = {}
    used = set()
    for path, (layer_key, _kind, parts, in_features) in lora_layout.items():
        if layer_key not in weights:
            raise CheckpointError(f"{source}: missing weights[{layer_key!r}] (LoRA for {path})")
        layer = weights[layer_key]
        if not isinstance(layer, dict):
            raise CheckpointError(
                f"{source}: weights[{layer_key!r}] must be a dict, found {type(layer).__name__}"
            )
        used.add(layer_key)
        for part, (start, stop) in parts.items():
            where = f"{source}: weights[{layer_key!r}][{PROJ[part]!r}]"
            if PROJ[part] not in layer:
                raise CheckpointError(
                    f"{source}: weights[{layer_key!r}] has no {PROJ[part]!r} (found {sorted(layer)})"
                )
            proj = layer[PROJ[part]]
            if not isinstance(proj, dict):
                raise CheckpointError(f"{where} must be a dict, found {type(proj).__name__}")
            state[f"clip.{path}.lora_A.{part}"] = _tensor(proj, "w_lora_A", where, (rank, in_features))
            state[f"clip.{path}.lora_B.{part}"] = _tensor(proj, "w_lora_B", where, (stop - start, rank))
    for prefix, (dim, width) in adapter_dims.items():
        official = _official_adapter_name(prefix)
        if official not in weights:
            raise CheckpointError(f"{source}: missing weights[{official!r}]")
        used.add(official)
        block = weights[official]
        if not isinstance(block, dict):
            raise CheckpointError(
                f"{source}: weights[{official!r}] must be a dict, found {type(block).__name__}"
            )
        shapes = {
            "down.weight": (width, dim),
            "down.bias": (width,),
            "up.weight": (dim, width),
            "up.bias": (dim,),
        }
        for key in ADAPTER_KEYS:
            state[f"{prefix}.{key}"] = _tensor(block, key, f"{source}: weights[{official!r}]", shapes[key])
    if "logit_scale" in weights:
        used.add("logit_scale")
        scale = _tensor(weights, "logit_scale", f"{source}: weights", None)
        if scale.numel() != 1 or float(scale) <= 0:
            raise CheckpointError(
                f"{source}: weights['logit_scale'] must be one positive number, found {scale.tolist()}"
            )
        state["logit_scale"] = scale.reshape(())
    unexpected = sorted(set(weights) - used)
    if unexpected:
        raise CheckpointError(f"{source}: unexpected entries {unexpected} for this configuration")
    return state


def _official_adapter_name(prefix: str) -> str:
    encoder = "image" if prefix.startswith("image") else "text"
    stage = "edge" if prefix.endswith("edge") else "node"
    return ADAPTERS[(encoder, stage)]


def state_to_official(
    state: dict[str, torch.Tensor],
    lora_layout: dict[str, tuple[str, str, dict[str, tuple[int, int]], int]],
    adapter_prefixes: list[str],
) -> dict[str, Any]:
    """The inverse of ``official_to_state``: medpeft tensors -> the released nested dict."""
    weights: dict[str, Any] = {}
    for path, (layer_key, _kind, parts, _in) in lora_layout.items():
        layer = weights.setdefault(layer_key, {})
        for part in parts:
            layer[PROJ[part]] = {
                "w_lora_A": state[f"clip.{path}.lora_A.{part}"].detach().cpu().clone(),
                "w_lora_B": state[f"clip.{path}.lora_B.{part}"].detach().cpu().clone(),
            }
    for prefix in adapter_prefixes:
        weights[_official_adapter_name(prefix)] = {
            k: state[f"{prefix}.{k}"].detach().cpu().clone() for k in ADAPTER_KEYS
        }
    weights["logit_scale"] = state["logit_scale"].detach().cpu().clone().reshape(())
    return weights


def official_metadata(config: Any) -> dict[str, Any]:
    """The released file's ``metadata`` for an ``AceLoraConfig``; refuses configs the format cannot hold."""
    import math

    if set(config.hgnn) != {"image", "text"} or set(config.lora_encoders) != {"image", "text"}:
        raise CheckpointError(
            "the released format holds LoRA and ACE-HGNN on both encoders; this model has "
            f"lora_encoders={config.lora_encoders}, hgnn={config.hgnn}"
        )
    if not math.isclose(config.alpha, 1.0):
        raise CheckpointError(
            f"the released format implies alpha=1 (scale 1/sqrt(r)); this model has alpha={config.alpha}"
        )
    position = "all" if config.layers in ("all", None) else list(config.layers)
    return {
        "r": config.rank,
        "topk": config.top_k,
        "k_nearest": config.top_k,
        "params": list(config.targets),
        "position": position,
        "loss_type": "clip_loss_ace_hgat",
    }


def config_fields(weights: dict[str, Any], metadata: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``AceLoraConfig`` fields implied by a released file (its metadata and bottleneck shapes)."""
    params = metadata.get("params", ["q", "k", "v"])
    if not isinstance(params, (list, tuple)) or not set(params) <= {"q", "k", "v", "o"}:
        raise CheckpointError(f"{path}: metadata['params'] must list q/k/v/o, found {params!r}")
    position = metadata.get("position", "all")
    if position != "all" and not isinstance(position, (list, tuple)):
        raise CheckpointError(
            f"{path}: metadata['position'] {position!r} is not supported (use 'all' or indices)"
        )
    block = weights.get("img_edge_adapter") or weights.get("text_edge_adapter")
    hgnn = tuple(
        e for e, key in (("image", "img_edge_adapter"), ("text", "text_edge_adapter")) if key in weights
    )
    fields: dict[str, Any] = {
        "rank": metadata.get("r", 4) if isinstance(metadata.get("r"), int) else 4,
        "alpha": 1.0,
        "targets": tuple(params),
        "layers": "all" if position == "all" else tuple(position),
        "top_k": int(metadata.get("topk", 5)),
        "hgnn": hgnn,
    }
    if isinstance(block, dict) and isinstance(block.get("down.weight"), torch.Tensor):
        fields["width"] = int(block["down.weight"].shape[0])
    return fields


def write_official(weights: dict[str, Any], metadata: dict[str, Any], path: str | Path) -> Path:
    """Write ``{"weights", "metadata"}`` atomically (never a half-written file)."""
    from medpeft.io import torch_save

    return torch_save({"weights": weights, "metadata": metadata}, path)
