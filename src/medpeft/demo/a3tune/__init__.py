"""``medpeft demo a3tune``: A³Tune end to end on synthetic chest X-ray VQA, on a CPU, with no downloads.

``run_a3tune_demo`` (``pipeline.py``): synthetic SLAKE-layout data with lesion masks (``data.py``), weak labels
from the ``regions`` proposer (``weak.py``), a generalist fine-tuned from the ``llava-tiny-demo`` preset
(``preset.py``, ``generalist.py``), plain LoRA and
A³Tune from it on the same steps, all three evaluated by ``evaluate_generation`` (``outputs.py`` writes
``metrics.json`` and ``report.md``). Sizes and schedules live in ``settings.py``.
"""

from __future__ import annotations

from medpeft.demo.a3tune.pipeline import run_a3tune_demo
from medpeft.demo.a3tune.settings import A3DemoSettings
from medpeft.demo.folder import DemoResult as A3DemoResult

__all__ = ["run_a3tune_demo", "A3DemoResult", "A3DemoSettings"]
