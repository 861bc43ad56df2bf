"""``A3DemoSettings``: every size, step count and learning rate of ``medpeft demo a3tune`` in one place.

The model is the demo preset of ``preset.py`` (llava-tiny sizes, 2 layers x 4 heads, 112 px: 8x8 tokens). The
weak-label scorer is ``medpeft demo``'s tiny CLIP at that demo's own size (``clip_images``, ``clip_epochs``).
``quick()`` shrinks everything for tests (its numbers are not meant to show anything).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from medpeft.demo.settings import DemoSettings, check_fields


@dataclass(frozen=True)
class A3DemoSettings:
    """Sizes of the synthetic sets and the optimisation settings of the three training stages."""

    image_size: int = 112  # synthetic images drawn at the demo preset's input size (112 px, 8x8 tokens)
    # synthetic SLAKE-layout chest X-ray VQA: images (each gives several questions)
    n_generalist_images: int = 96  # a separate synthetic draw (seed + 1) for the generalist
    n_task_images: int = 64  # the adaptation set (its train split) and the held-out test split
    # the weak-label scorer: medpeft demo's tiny CLIP, at DemoSettings' n_generalist / generalist_epochs
    clip_images: int = DemoSettings.n_generalist
    clip_epochs: int = DemoSettings.generalist_epochs
    # (a) the generalist: every weight of the demo preset, on a separate draw
    generalist_steps: int = 150
    generalist_lr: float = 3e-3
    # (b) plain LoRA and A³Tune (weak labels; true masks) from the generalist, same steps, batches, rate
    adapt_steps: int = 300
    adapt_lr: float = 2e-3
    batch_size: int = 16
    lora_rank: int = 8
    lora_alpha: float = 16.0
    moe_rank: int = 4
    moe_alpha: float = 8.0
    top_heads: int = 4  # of the tiny model's 2 layers x 4 heads
    align_weight: float = 1.0
    weak_top_k: int = 4
    # (c) evaluation
    eval_batch_size: int = 16
    max_new_tokens: int = 8
    n_bootstrap: int = 200
    n_overlays: int = 4

    def __post_init__(self) -> None:
        check_fields(self, non_negative=("align_weight", "n_overlays"))

    @classmethod
    def quick(cls) -> A3DemoSettings:
        """A run of seconds: checks the plumbing end to end, not the margins."""
        return cls(
            n_generalist_images=8,
            n_task_images=8,
            clip_images=64,
            clip_epochs=1,
            generalist_steps=3,
            adapt_steps=3,
            batch_size=8,
            n_bootstrap=20,
            n_overlays=2,
        )

    def to_dict(self) -> dict[str, int | float]:
        return dataclasses.asdict(self)
