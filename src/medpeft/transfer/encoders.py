"""Frozen image encoders for dense transfer: base BiomedCLIP, LoRA-only, ACE-LoRA (LoRA merged) or any timm ViT.

Segmentation and detection compare *encoders*, so every encoder is wrapped the same way: a timm
``VisionTransformer`` whose weights never change, exposing feature maps [B, C, h, w] after chosen blocks
through timm's own ``forward_intermediates`` (no patching of library classes). LoRA is merged into the
ViT weights first, so an adapted encoder costs exactly what the base one does. For open_clip backbones the
``AceLoraModel`` is kept too, because the zero-shot maps need its text tower and ACE-HGNN-refined tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from medpeft.backbones.names import TIMM_PREFIX, parse_backbone_name
from medpeft.errors import ConfigError


def default_blocks(depth: int, count: int = 4) -> tuple[int, ...]:
    """Evenly spaced 1-based block numbers ending at the last block: (3, 6, 9, 12) for a 12-block ViT."""
    count = max(1, min(count, depth))
    return tuple(sorted({max(1, round(depth * (i + 1) / count)) for i in range(count)}))


class FrozenViTEncoder(nn.Module):
    """A frozen timm ViT returning one feature map [B, C, h, w] per requested block (1-based numbers).

    ``pixel_values`` are already normalised with ``mean``/``std`` (what the backbone was trained with).
    ``clip_model`` is the ``AceLoraModel`` around an open_clip backbone (None for a bare timm ViT).
    """

    def __init__(
        self,
        trunk: nn.Module,
        *,
        blocks: Sequence[int],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        name: str,
        clip_model: nn.Module | None = None,
    ) -> None:
        super().__init__()
        depth = len(trunk.blocks)
        bad = [b for b in blocks if not 1 <= int(b) <= depth]
        if not blocks or bad:
            raise ConfigError(f"encoder blocks must be in 1..{depth} for {name}, got {list(blocks)}")
        self.trunk = trunk
        self.clip_model = clip_model
        self.blocks = tuple(sorted({int(b) for b in blocks}))
        self.image_size = int(image_size)
        self.patch_size = int(trunk.patch_embed.patch_size[0])
        self.channels = int(trunk.embed_dim)
        self.name = name
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.requires_grad_(False)
        super().train(False)

    @property
    def grid(self) -> int:
        """Tokens per side of the final feature map (14 for a 224-px ViT-B/16)."""
        return self.image_size // self.patch_size

    def train(self, mode: bool = True) -> FrozenViTEncoder:
        """Always stays in eval mode: the encoder is frozen, so dropout/drop-path must stay off."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps [B, C, h, w] after each of ``self.blocks``, shallow to deep."""
        return self.trunk.forward_intermediates(
            pixel_values,
            indices=[b - 1 for b in self.blocks],
            output_fmt="NCHW",
            intermediates_only=True,
            stop_early=True,
        )

    def with_blocks(self, blocks: Sequence[int]) -> FrozenViTEncoder:
        """The same frozen weights read at other blocks (no copy): e.g. the last block only, for detection."""
        return FrozenViTEncoder(
            self.trunk,
            blocks=blocks,
            image_size=self.image_size,
            mean=self.mean,
            std=self.std,
            name=self.name,
            clip_model=self.clip_model,
        )

    def describe(self) -> dict:
        """What goes into a run's config: enough to tell which encoder produced a result."""
        return {
            "name": self.name,
            "blocks": list(self.blocks),
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "channels": self.channels,
            "has_text_tower": self.clip_model is not None,
        }


def _resize_trunk(trunk: nn.Module, image_size: int, name: str) -> None:
    """Set the ViT's input size (position embeddings resampled by timm) when it differs from the native one."""
    patch = int(trunk.patch_embed.patch_size[0])
    if image_size % patch:
        raise ConfigError(f"--image-size {image_size} must be a multiple of {name}'s patch size {patch}")
    native = tuple(trunk.patch_embed.img_size)
    if native != (image_size, image_size):
        trunk.set_input_size(img_size=(image_size, image_size))


def _timm_encoder(
    model_name: str, image_size: int | None, blocks: Sequence[int] | None, num_levels: int
) -> FrozenViTEncoder:
    import timm
    from timm.data import resolve_data_config

    spec = f"{TIMM_PREFIX}{model_name}"
    try:
        kwargs = {"img_size": image_size} if image_size else {}
        trunk = timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)
    except RuntimeError as err:  # timm's "Unknown model"
        raise ConfigError(f"--backbone {spec}: {err}") from err
    except TypeError as err:
        raise ConfigError(f"--backbone {spec}: not a timm VisionTransformer ({err})") from err
    if not hasattr(trunk, "forward_intermediates") or not hasattr(trunk, "blocks"):
        raise ConfigError(
            f"--backbone {spec}: not a timm VisionTransformer (no blocks/forward_intermediates)"
        )
    data = resolve_data_config({}, model=trunk)
    size = int(image_size or data["input_size"][-1])
    _resize_trunk(trunk, size, spec)
    chosen = tuple(blocks) if blocks else default_blocks(len(trunk.blocks), num_levels)
    return FrozenViTEncoder(
        trunk.eval(), blocks=chosen, image_size=size, mean=data["mean"], std=data["std"], name=spec
    )


def build_encoder(
    backbone: str,
    *,
    adapter: str | Path | None = None,
    image_size: int | None = None,
    blocks: Sequence[int] | None = None,
    num_levels: int = 4,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> FrozenViTEncoder:
    """Build the frozen encoder a fine-tuning run transfers from.

    ``backbone``: anything ``load_backbone`` takes (``tiny``, ``biomedclip``, a folder, ``hf-hub:…``) or
    ``timm:NAME`` for a randomly initialised timm ViT (offline baseline). ``adapter``: an adapter folder or a
    released ``.pt`` (LoRA is merged into the ViT; ACE-HGNN is kept for zero-shot maps). ``image_size``
    defaults to the backbone's own (224 for BiomedCLIP, 64 for ``tiny``); ``blocks`` to ``num_levels`` evenly
    spaced 1-based block numbers ending at the last (3, 6, 9, 12 for ViT-B and 4 levels; 12 for 1 level).
    """
    name = parse_backbone_name(backbone)
    if name.kind == "timm":
        if adapter is not None:
            raise ConfigError(
                "--adapter applies to open_clip backbones (BiomedCLIP family), not timm: models"
            )
        return _timm_encoder(name.value, image_size, blocks, num_levels).to(device)

    from medpeft.ace_lora.config import AceLoraConfig
    from medpeft.ace_lora.model import AceLoraModel
    from medpeft.backbones.clip import load_backbone

    bb = load_backbone(backbone, seed=seed)
    if adapter is not None:
        model = AceLoraModel.from_pretrained(bb, adapter)
        model.merge_lora()
        name = f"{bb.name}+{Path(adapter).name}"
    else:
        model = AceLoraModel(bb, AceLoraConfig.base())
        name = bb.name
    model.requires_grad_(False)
    model.eval()
    trunk = bb.clip.visual.trunk
    size = int(image_size or bb.image_size)
    _resize_trunk(trunk, size, name)
    mean, std = bb.mean, bb.std
    chosen = tuple(blocks) if blocks else default_blocks(len(trunk.blocks), num_levels)
    encoder = FrozenViTEncoder(
        trunk, blocks=chosen, image_size=size, mean=mean, std=std, name=name, clip_model=model
    )
    return encoder.to(device)
