"""The released ACE-LoRA checkpoint format (read, validate, write).

``{"weights": {"layer_{i}": {"q_proj": {"w_lora_A": [r, in], "w_lora_B": [out, r]}, ...}, ...,
"{img,text}_{edge,node}_adapter": {"down.weight", "down.bias", "up.weight", "up.bias"},
"logit_scale": scalar}, "metadata": {...}}``. Layers 0..T-1 are the BERT layers, T..T+V-1 the ViT
blocks (fused qkv split in thirds). Loading never unpickles code (``weights_only=True``).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from medpeft.errors import CheckpointError

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


def safe_torch_load(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only``), so a file can never
    execute code; a refused or unreadable file raises ``CheckpointError`` naming it (``what`` says what
    it should have been)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to load: the file contains pickled objects other than tensors and plain "
            f"containers, which could execute code (weights_only=True). Detail: {str(err).splitlines()[0]}"
        ) from err
    except Exception as err:  # noqa: BLE001 - corrupt/truncated files, re-raised with the path
        raise CheckpointError(f"{path}: not a readable {what} ({type(err).__name__}: {err})") from err


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
