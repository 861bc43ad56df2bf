"""medpeft: parameter-efficient adaptation of medical vision-language models.

The public API is imported lazily so that ``import medpeft`` (and ``medpeft --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_backbone": "medpeft.backbones.clip",
    "Backbone": "medpeft.backbones.clip",
    "AceLoraConfig": "medpeft.ace_lora.config",
    "AceLoraModel": "medpeft.ace_lora.model",
    "evaluate": "medpeft.evaluation.zero_shot",
    "evaluate_many": "medpeft.evaluation.zero_shot",
    "predict": "medpeft.evaluation.predict",
    "train": "medpeft.training.loop",
    "TrainConfig": "medpeft.training.config",
    "load_run_config": "medpeft.training.run_config",
    "synthesize": "medpeft.data.synthetic",
    "prepare": "medpeft.data.prepare",
    "convert": "medpeft.ace_lora.conversion",
    "run_demo": "medpeft.demo",
    "environment_info": "medpeft.info",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medpeft' has no attribute {name!r}")
