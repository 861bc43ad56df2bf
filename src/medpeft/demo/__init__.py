"""``medpeft demo``: the whole method on synthetic data, on a CPU, in minutes, with no downloads.

``run_demo`` (``pipeline.py``) pre-trains a tiny generalist CLIP (``generalist.py``), adapts it with LoRA and
with ACE-LoRA on synthetic MIMIC-CXR through ``medpeft.train``, evaluates all three zero-shot on held-out
synthetic sets through ``medpeft.evaluation.zero_shot.evaluate`` and writes ``metrics.json``, ``report.md``,
ROC curves and heat maps (``outputs.py``, ``figures.py``). Sizes and schedules live in ``settings.py``.
"""

from __future__ import annotations

from medpeft.demo.folder import DemoResult
from medpeft.demo.pipeline import run_demo
from medpeft.demo.settings import DemoSettings

__all__ = ["run_demo", "DemoResult", "DemoSettings"]
