"""``make_proposer``: a proposer by name. Its own module because it imports every backend, and the
backends import the shared mask types of ``proposers`` (one place each, no import circle)."""

from __future__ import annotations

from medpeft.a3tune.weak_labels.proposers import PROPOSERS, AmgSettings, MaskProposer, RegionProposer
from medpeft.errors import ConfigError


def make_proposer(
    name: str,
    checkpoint: str | None = None,
    *,
    device: str | None = "cpu",
    settings: AmgSettings | None = None,
    seed: int = 0,
) -> MaskProposer:
    """A proposer by name: ``sam`` (needs ``checkpoint``, a SAM ``.pth``), ``hf-sam`` (``checkpoint`` = hub id,
    local folder, or ``random-tiny``/``random-vit_b`` for random weights) or ``regions``."""
    settings = settings or AmgSettings()
    if name == "regions":
        return RegionProposer(min_area=settings.min_mask_region_area)
    if name == "sam":
        from medpeft.a3tune.weak_labels.sam_proposer import SamProposer

        if checkpoint is None:
            raise ConfigError(
                "--proposer sam needs --checkpoint PATH (a SAM .pth such as sam_vit_h_4b8939.pth)"
            )
        return SamProposer.from_checkpoint(checkpoint, settings=settings, device=device)
    if name == "hf-sam":
        from medpeft.a3tune.weak_labels.hf_sam_proposer import HfSamProposer

        return HfSamProposer.from_pretrained(
            checkpoint or "facebook/sam-vit-huge", settings=settings, device=device, seed=seed
        )
    raise ConfigError(f"unknown proposer {name!r}: use one of {', '.join(PROPOSERS)}")
