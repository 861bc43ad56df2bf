"""The demo's stand-in for BiomedCLIP: a tiny CLIP pre-trained on loose, mostly lay-word captions.

Why: ACE-LoRA adapts a *generalist* that knows what medical images look like but not the vocabulary
of specific findings. The demo has no such model, so it makes one: every weight of a tiny CLIP of the
BiomedCLIP family (timm ViT + HF BERT) is trained with InfoNCE on synthetic radiographs and histology
tiles captioned in lay words (``captions.py``). The result is saved with ``Backbone.save`` and reloaded
with ``load_backbone(folder)``, the path a downloaded BiomedCLIP folder takes, so everything after it
is the real pipeline.

Two choices that make a few hundred CPU steps enough:

* the vision tower is the ``tiny`` preset's ViT with 16-pixel patches and JAX-style initialisation
  (``DemoSettings.vision``): with timm's default initialisation (tiny normal weights) the [CLS] token of
  a small ViT trained from scratch does not learn to find local lesions within the demo's budget;
* many captions say the same thing ("a normal chest film", "a normal chest x-ray"), and a plain InfoNCE
  batch would ask the model to tell them apart (the tiny towers then collapse to one embedding), so
  pairs with the same meaning are not used as negatives: the label-guided loss of ``medpeft.ace_lora.losses``
  with the caption's meaning as the label. It also makes each step far more informative than
  instance discrimination, which is what lets a few hundred CPU steps suffice.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from medpeft.backbones.clip import Backbone
from medpeft.data.synthetic.cxr import render_frontal, render_lateral
from medpeft.data.synthetic.findings import chexpert_findings, sample_chexpert_labels
from medpeft.data.synthetic.pathology import render_lc25000, render_mhist
from medpeft.demo.captions import cxr_caption, histology_caption
from medpeft.demo.settings import DemoSettings

NAME = "medpeft-demo-generalist"
#: A stream number of its own, so the generalist's images never coincide with a ``synth`` dataset's.
STREAM = 101
LATERAL_FRACTION = 0.15
_TILES: tuple[tuple[str, str], ...] = (
    ("lc25000", "lung_n"),
    ("lc25000", "lung_aca"),
    ("lc25000", "lung_scc"),
    ("lc25000", "colon_n"),
    ("lc25000", "colon_aca"),
    ("mhist", "HP"),
    ("mhist", "SSA"),
)


@dataclass(frozen=True)
class CaptionedImage:
    """One pre-training pair."""

    image: Image.Image
    caption: str
    meaning: str  # what the caption says, independent of its wording (see ``captions.cxr_caption``)


def render_corpus(
    n: int,
    seed: int,
    image_size: int,
    histology_fraction: float,
    progress: bool = True,
    named_fraction: float = 0.0,
) -> list[CaptionedImage]:
    """``n`` captioned images: frontal and lateral radiographs with CheXpert-like findings, and tiles."""
    from tqdm.auto import tqdm

    out: list[CaptionedImage] = []
    for index in tqdm(range(n), desc="generalist data", unit="img", disable=not progress, dynamic_ncols=True):
        rng = np.random.default_rng((seed, STREAM, index))
        if rng.random() < histology_fraction:
            dataset, klass = _TILES[int(rng.integers(len(_TILES)))]
            tile = (render_lc25000 if dataset == "lc25000" else render_mhist)(rng, klass, image_size)
            out.append(CaptionedImage(Image.fromarray(tile).convert("RGB"), *histology_caption(rng)))
            continue
        drawn = chexpert_findings(rng, sample_chexpert_labels(rng))
        render = render_lateral if rng.random() < LATERAL_FRACTION else render_frontal
        picture = render(rng, image_size, image_size, drawn)
        pixels = np.round(np.clip(picture.image, 0.0, 1.0) * 255.0).astype(np.uint8)
        out.append(
            CaptionedImage(Image.fromarray(pixels).convert("RGB"), *cxr_caption(rng, picture, named_fraction))
        )
    return out


def build_backbone(seed: int, vision: Mapping[str, Any]) -> Backbone:
    """A fresh tiny CLIP: the ``tiny`` preset's text tower and tokenizer, its ViT with ``vision`` overrides
    (timm ``VisionTransformer`` keyword arguments; ``img_size`` also sets the input size)."""
    from medpeft.backbones.clip import build_clip, load_backbone

    tiny = load_backbone("tiny", seed=seed)
    config = copy.deepcopy(tiny.config)
    vision_cfg = config["model_cfg"]["vision_cfg"]
    vision_cfg["medpeft_timm_kwargs"].update(vision)
    vision_cfg["image_size"] = int(vision_cfg["medpeft_timm_kwargs"]["img_size"])
    tokenizer = tiny.tokenizer
    return Backbone(
        clip=build_clip(config, seed=seed), tokenizer_factory=lambda: tokenizer, config=config, name=NAME
    )


def meaning_labels(meanings: Sequence[str]) -> torch.Tensor:
    """An integer per distinct meaning (sorted, so the numbering does not depend on the order seen)."""
    index = {m: i for i, m in enumerate(sorted(set(meanings)))}
    return torch.tensor([index[m] for m in meanings], dtype=torch.long)


def pretrain_from_settings(
    out: str | Path, settings: DemoSettings, *, seed: int, progress: bool = True
) -> Path:
    """``pretrain_generalist`` with every size and rate taken from ``settings`` (the one place that maps them)."""
    return pretrain_generalist(
        out,
        n_images=settings.n_generalist,
        seed=seed,
        vision=settings.vision,
        histology_fraction=settings.generalist_histology_fraction,
        epochs=settings.generalist_epochs,
        batch_size=settings.generalist_batch_size,
        lr=settings.generalist_lr,
        logit_scale=settings.generalist_logit_scale,
        named_fraction=settings.generalist_named_fraction,
        progress=progress,
    )


def pretrain_generalist(
    out: str | Path,
    *,
    n_images: int,
    seed: int,
    vision: Mapping[str, Any],
    histology_fraction: float,
    epochs: int,
    batch_size: int,
    lr: float,
    logit_scale: float,
    weight_decay: float = 0.05,
    named_fraction: float = 0.0,
    progress: bool = True,
) -> Path:
    """Train every weight of a fresh tiny CLIP on the captioned corpus and save it as a backbone folder.

    Returns ``out``, which ``medpeft.load_backbone(out)`` reads. ``logit_scale`` is the (fixed) inverse
    temperature, kept in the saved model so that adaptation starts from it. Deterministic given ``seed``;
    the global torch RNG is forked, so the caller's random state is left as it was.
    """
    from tqdm.auto import tqdm

    from medpeft.ace_lora.config import AceLoraConfig
    from medpeft.ace_lora.model import AceLoraModel
    from medpeft.runtime import make_scheduler

    corpus = render_corpus(
        n_images,
        seed,
        int(vision["img_size"]),
        histology_fraction,
        progress=progress,
        named_fraction=named_fraction,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = build_backbone(seed, vision)
        pixels = torch.stack([backbone.preprocess(item.image) for item in corpus])
        captions = [item.caption for item in corpus]
        ids = backbone.tokenizer(captions, padding="longest")
        lengths = (ids != backbone.pad_id).sum(dim=1)
        labels = meaning_labels([item.meaning for item in corpus])
        # The frozen-model view of the towers (CLS embeddings): exactly what zero-shot scoring uses.
        config = AceLoraConfig.base(label_guided=True, logit_scale=logit_scale)
        model = AceLoraModel(backbone, config)
        backbone.clip.requires_grad_(True)
        params = list(model.trainable_parameters().values())
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        steps_per_epoch = max(1, len(corpus) // batch_size)
        total = epochs * steps_per_epoch
        scheduler = make_scheduler(optimizer, total, warmup_steps=math.ceil(0.05 * total), schedule="cosine")
        order = torch.Generator().manual_seed(seed)
        model.train()
        bar = tqdm(
            total=total, desc="pretrain generalist", unit="step", disable=not progress, dynamic_ncols=True
        )
        for _ in range(epochs):
            perm = torch.randperm(len(corpus), generator=order)
            for step in range(steps_per_epoch):
                batch = perm[step * batch_size : (step + 1) * batch_size]
                width = int(lengths[batch].max())  # pad to this batch's longest caption only
                loss = model.contrastive_loss(pixels[batch], ids[batch, :width], labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        with torch.no_grad():  # AceLoraModel starts from the backbone's own temperature
            backbone.clip.logit_scale.fill_(math.log(logit_scale))
        backbone.clip.requires_grad_(False)
        backbone.clip.eval()
    return backbone.save(out)
