"""A³Tune (ACL 2025, arXiv 2505.18503): attention-alignment tuning of LLaVA-style models with A³MoE.

Exports are imported lazily, so importing a light submodule (weak-label queries, the CLI's help) does not
pay for torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "A3TuneConfig": "medpeft.a3tune.config",
    "A3TuneModel": "medpeft.a3tune.model",
    "A3TuneOutput": "medpeft.a3tune.model",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medpeft.a3tune' has no attribute {name!r}")
