"""``medpeft serve``: a local web page to try a backbone and adapters on your own images.

``build_app`` is imported lazily, so the library parts (uploads, results, inference) load without Gradio.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_app"]


def __getattr__(name: str) -> Any:
    if name == "build_app":
        from medpeft.serve.app import build_app

        return build_app
    raise AttributeError(f"module 'medpeft.serve' has no attribute {name!r}")
