"""``AceLoraConfig``: every architectural switch of ACE-LoRA, with the paper's values as defaults."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from medpeft.errors import ConfigError

ENCODERS = ("image", "text")


def check_known_fields(cls: type, data: dict[str, Any], what: str) -> None:
    """``ConfigError`` listing the keys of ``data`` that are not fields of the dataclass ``cls`` (a typo in
    a config file must not be dropped silently)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {what} {unknown}; known: {sorted(names)}")


@dataclass
class AceLoraConfig:
    """Paper defaults: rank 4, alpha 1, dropout 0.1 on q/k/v of all layers of both encoders,
    ACE-HGNN (top-k 5, width 128) on both encoders, label-guided InfoNCE, learnable logit scale.

    Ablations: ``hgnn=()`` with ``label_guided=False`` is the CLIP-LoRA-style baseline;
    ``lora_encoders=()`` with ``hgnn=()`` is the frozen base model.
    """

    rank: int = 4
    alpha: float = 1.0
    dropout: float = 0.1
    targets: tuple[str, ...] = ("q", "k", "v")
    layers: tuple[int, ...] | str = "all"
    lora_encoders: tuple[str, ...] = ENCODERS
    hgnn: tuple[str, ...] = ENCODERS
    top_k: int = 5
    width: int = 128
    label_guided: bool = True
    learn_logit_scale: bool = True
    logit_scale: float | None = None  # initial scale; None = the base model's exp(logit_scale)
    mask_padding: bool = False  # keep text padding out of the hypergraph (not in the paper)
    text_padding: str = "max_length"  # or "longest": pad each batch to its longest text (fast path)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("targets", "lora_encoders", "hgnn"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,) if value not in ("", "none") else ()
            setattr(self, name, tuple(value))
        if isinstance(self.layers, list):
            self.layers = tuple(self.layers)
        for name in ("lora_encoders", "hgnn"):
            bad = set(getattr(self, name)) - set(ENCODERS)
            if bad:
                raise ConfigError(f"{name}: unknown encoders {sorted(bad)}; use 'image' and/or 'text'")
        bad = set(self.targets) - {"q", "k", "v", "o"}
        if bad:
            raise ConfigError(f"targets: unknown {sorted(bad)}; use q, k, v, o")
        if self.rank <= 0:
            raise ConfigError(f"rank must be positive, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.top_k < 1 or self.width < 1:
            raise ConfigError(f"top_k and width must be positive, got top_k={self.top_k}, width={self.width}")
        if self.text_padding not in ("max_length", "longest"):
            raise ConfigError(f"text_padding must be 'max_length' or 'longest', got {self.text_padding!r}")

    @classmethod
    def base(cls, **overrides: Any) -> AceLoraConfig:
        """The frozen base model: no LoRA, no hypergraph, the backbone's own fixed logit scale (the zero-shot
        baseline every command and the demo compare against); ``overrides`` adjust it."""
        return cls(**{"lora_encoders": (), "hgnn": (), "learn_logit_scale": False, **overrides})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AceLoraConfig:
        check_known_fields(cls, data, "AceLoraConfig fields")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
