"""Run configurations in YAML: ``backbone``, ``data``, ``model`` (``AceLoraConfig``) and ``train``
(``TrainConfig``); presets ship as package data (``paper``, ``fast``, ``tiny``).

A run's ``resolved_config.yaml`` has the same shape, so ``--config out/resolved_config.yaml`` repeats
a run. Overrides use dotted keys (``train.lr=1e-4``, ``model.rank=8``) or bare field names, which are
unambiguous because the two sections share none.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medpeft.ace_lora.config import AceLoraConfig
from medpeft.errors import ConfigError
from medpeft.training.config import TrainConfig

PRESETS = ("paper", "fast", "tiny")
TOP_LEVEL = ("backbone", "data", "model", "train")
INFORMATIONAL = ("run", "val_data")  # written into resolved configs; ignored when read back
SECTIONS = {"model": AceLoraConfig, "train": TrainConfig}


@dataclass
class RunConfig:
    """Everything a ``medpeft train`` run needs besides ``--out``."""

    backbone: str = "biomedclip"
    data: str | None = None
    model: AceLoraConfig = field(default_factory=AceLoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "data": self.data,
            "model": self.model.to_dict(),
            "train": self.train.to_dict(),
        }


def preset_path(name: str) -> Path:
    """The packaged YAML of a preset (``paper``, ``fast``, ``tiny``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)} (or pass a YAML file)")
    return Path(str(importlib.resources.files("medpeft") / "configs" / f"{name}.yaml"))


def read_yaml(source: str | Path) -> dict[str, Any]:
    """A YAML file, or a preset name when no such file exists."""
    import yaml

    path = Path(source)
    if not path.is_file():
        if str(source) in PRESETS:
            path = preset_path(str(source))
        else:
            raise ConfigError(f"config {source}: no such file (presets: {', '.join(PRESETS)})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping with {', '.join(TOP_LEVEL)}")
    unknown = sorted(set(data) - set(TOP_LEVEL) - set(INFORMATIONAL))
    if unknown:
        raise ConfigError(f"config {path}: unknown top-level keys {unknown}; expected {list(TOP_LEVEL)}")
    for section in SECTIONS:
        if data.get(section) is not None and not isinstance(data[section], dict):
            raise ConfigError(f"config {path}: '{section}' must be a mapping")
    return data


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``["train.lr=1e-4", "hgnn=[image]"]`` -> ``{"train.lr": 0.0001, "hgnn": ["image"]}`` (values are YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=1e-4")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({err})") from err
    return out


def _section_of(key: str) -> tuple[str | None, str]:
    """``"train.lr"`` -> ("train", "lr"); a bare field name -> its section; top-level keys -> (None, key)."""
    if "." in key:
        section, name = key.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section {section!r} in {key!r}; use model.* or train.*")
        return section, name
    if key in TOP_LEVEL:
        return None, key
    owners = [s for s, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
    if not owners:
        known = sorted({f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)})
        raise ConfigError(f"unknown config key {key!r}; known: backbone, data, {', '.join(known)}")
    return owners[0], key


def _coerce(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """YAML reads ``1e-3`` as a string (it wants ``1.0e-3``): convert numbers for numeric fields."""
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    out = dict(values)
    for key, value in values.items():
        if not isinstance(value, str) or key not in types:
            continue
        kind = types[key]
        try:
            if "float" in kind:
                out[key] = float(value)
            elif kind.startswith("int"):
                out[key] = int(value)
        except ValueError as err:
            raise ConfigError(f"{cls.__name__}.{key}: {value!r} is not a number") from err
    return out


def load_run_config(
    source: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> RunConfig:
    """Read a YAML file or preset (``None``: the paper's defaults) and apply ``overrides``."""
    data = read_yaml(source) if source is not None else {}
    sections: dict[str, dict[str, Any]] = {s: dict(data.get(s) or {}) for s in SECTIONS}
    top = {k: data[k] for k in ("backbone", "data") if data.get(k) is not None}
    for key, value in (overrides or {}).items():
        section, name = _section_of(key)
        if section is None:
            if name in SECTIONS:
                raise ConfigError(f"override {key!r}: set single fields, e.g. {name}.<field>=VALUE")
            top[name] = value
        else:
            sections[section][name] = value
    return RunConfig(
        backbone=str(top.get("backbone", RunConfig.backbone)),
        data=None if top.get("data") is None else str(top["data"]),
        model=AceLoraConfig.from_dict(_coerce(AceLoraConfig, sections["model"])),
        train=TrainConfig.from_dict(_coerce(TrainConfig, sections["train"])),
    )
