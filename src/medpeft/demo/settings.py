"""``DemoSettings``: every size, epoch count and learning rate of ``medpeft demo`` in one place.

The defaults are tuned so the whole demo (synthetic data, generalist pre-training, two adaptations,
nine zero-shot evaluations) finishes in about four minutes on two CPU cores while the adapted models
beat the generalist on the held-out RSNA and SIIM sets (by how much depends on the seed: see the README);
``quick()`` shrinks everything for tests (the numbers it produces are not meant to show anything).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from medpeft.errors import ConfigError

#: The held-out zero-shot sets, in report order (never used for training).
EVAL_DATASETS: tuple[str, ...] = ("chexpert-5x200", "rsna", "siim")
#: The adaptation set (the paper's pre-training data).
TRAIN_DATASET = "mimic-cxr"


def check_fields(settings: object, *, non_negative: tuple[str, ...] = (),
                 fractions: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Both demos' settings rule: every numeric field positive, but ``non_negative`` ones >= 0 and
    ``fractions`` in [0, 1); the first bad field is named."""
    for f in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, f.name)
        if f.name in fractions:
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{f.name} must be in [0, 1), got {value}")
        elif f.name in non_negative:
            if value < 0:
                raise ConfigError(f"{f.name} must be >= 0, got {value}")
        elif isinstance(value, int | float) and value <= 0:
            raise ConfigError(f"{f.name} must be positive, got {value}")


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the synthetic sets and the optimisation settings of the three training stages."""

    image_size: int = 64  # synthetic images are drawn at the model's input size: no resizing cost
    patch_size: int = 16  # the generalist's ViT patches (a 4x4 grid at 64 px)
    # synthetic data (``synthesize`` n: images; per class for chexpert-5x200)
    n_mimic: int = 1600
    n_chexpert_per_class: int = 100
    n_rsna: int = 800
    n_siim: int = 800
    # (a) generalist pre-training: all weights, coarse captions
    n_generalist: int = 1536
    generalist_histology_fraction: float = 0.15
    generalist_epochs: int = 15
    generalist_batch_size: int = 64
    generalist_lr: float = 2e-3
    generalist_logit_scale: float = 30.0
    # fraction of finding mentions in its captions that use the radiological name instead of lay words
    generalist_named_fraction: float = 0.3
    # (b) adaptation on synthetic MIMIC-CXR through ``medpeft.train``
    adapt_epochs: int = 10
    adapt_batch_size: int = 64
    adapt_lr: float = 5e-3
    lora_rank: int = 4
    lora_alpha: float = 2.0
    hgnn_width: int = 32
    top_k: int = 5
    # (c) zero-shot evaluation
    eval_batch_size: int = 128
    n_bootstrap: int = 200
    n_overlays: int = 4

    def __post_init__(self) -> None:
        check_fields(
            self,
            non_negative=("n_overlays",),
            fractions=("generalist_histology_fraction", "generalist_named_fraction"),
        )

    @classmethod
    def quick(cls) -> DemoSettings:
        """A run of a few seconds per stage: checks the plumbing end to end, not the margins."""
        return cls(
            n_mimic=160,
            n_chexpert_per_class=8,
            n_rsna=60,
            n_siim=60,
            n_generalist=128,
            generalist_epochs=1,
            generalist_batch_size=32,
            adapt_epochs=1,
            adapt_batch_size=32,
            n_bootstrap=20,
            n_overlays=2,
        )

    @property
    def vision(self) -> dict[str, int | str]:
        """timm ``VisionTransformer`` overrides of the generalist (see ``generalist.py`` for why JAX init)."""
        return {"img_size": self.image_size, "patch_size": self.patch_size, "weight_init": "jax"}

    def to_dict(self) -> dict[str, int | float]:
        return dataclasses.asdict(self)
