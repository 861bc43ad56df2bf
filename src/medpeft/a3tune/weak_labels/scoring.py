"""Scoring masked crops against the query text with a CLIP-family model, and the top-K ranking (A3TUNE.md §A.3).

``score = 100 · cos(image(crop), text(query))``: each crop (uint8) → PIL → the model's own preprocessing →
``encode_image`` → L2-normalise; the text → tokenizer → ``encode_text`` → L2-normalise. Crops are encoded in
batches. Any medpeft CLIP-family model works: BiomedCLIP (hub/folder), an ACE-LoRA adapter on it, or
``tiny``. Channel order is RGB; ``bgr=True`` flips the crops to BGR first (the pipeline's ``bgr`` flips the
whole image before proposing, reproducing the authors, who fed OpenCV's BGR array to SAM and BiomedCLIP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class CropScorer:
    """``encode_image(pixels) -> [B, D]`` and ``encode_text(ids) -> [B, D]`` (normalised here again),
    the model's ``preprocess`` (PIL -> tensor) and ``tokenizer`` (list[str] -> ids)."""

    encode_image: Callable[[torch.Tensor], torch.Tensor]
    encode_text: Callable[[torch.Tensor], torch.Tensor]
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    device: torch.device = torch.device("cpu")
    name: str = "scorer"
    batch_size: int = 64

    @torch.no_grad()
    def embed_crops(self, crops: Sequence[np.ndarray], bgr: bool = False) -> torch.Tensor:
        """L2-normalised embeddings ``[N, D]`` of ``crops`` (uint8 ``[h, w, 3]``), ``batch_size`` at a time."""
        from PIL import Image

        out = []
        for start in range(0, len(crops), self.batch_size):
            chunk = crops[start : start + self.batch_size]
            pixels = torch.stack(
                [self.preprocess(Image.fromarray(c[..., ::-1].copy() if bgr else c)) for c in chunk]
            )
            out.append(F.normalize(self.encode_image(pixels.to(self.device)).float(), dim=-1).cpu())
        if not out:
            return torch.zeros(0, 0)
        return torch.cat(out)

    @torch.no_grad()
    def embed_text(self, text: str) -> torch.Tensor:
        """L2-normalised ``[D]`` embedding of one query (the mean over one description, as the authors)."""
        ids = self.tokenizer([text]).to(self.device)
        emb = F.normalize(self.encode_text(ids).float(), dim=-1).mean(0)
        return F.normalize(emb, dim=-1).cpu()


def load_scorer(
    backbone: str,
    adapter: str | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    seed: int = 0,
) -> CropScorer:
    """A scorer from a medpeft backbone spec (``biomedclip``, folder, hub id, ``tiny``...) and an optional
    ACE-LoRA adapter (folder or released ``.pt``)."""
    from medpeft.backbones.clip import load_backbone

    device = torch.device(device)
    bb = load_backbone(backbone, seed=seed)
    if adapter is not None:
        from medpeft.ace_lora.model import AceLoraModel

        model = AceLoraModel.from_pretrained(bb, adapter).to(device).eval()
        enc_img, enc_txt = model.encode_image, model.encode_text
        name = f"{bb.name}+{adapter}"
    else:
        clip = bb.clip.to(device).eval()
        enc_img, enc_txt = clip.encode_image, clip.encode_text
        name = bb.name
    return CropScorer(enc_img, enc_txt, bb.preprocess, bb.tokenizer, device, name, batch_size)


def score_crops(scorer: CropScorer, crops: Sequence[np.ndarray], text: str, bgr: bool = False) -> np.ndarray:
    """``100 · cos`` of each crop with ``text`` (float64 ``[N]``)."""
    if not crops:
        return np.zeros(0)
    img = scorer.embed_crops(crops, bgr=bgr)
    txt = scorer.embed_text(text)
    return (100.0 * (img.double() @ txt.double())).numpy()


def rank_crops(scores: Sequence[float] | np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the ``top_k`` highest scores, descending; ties keep the proposal order (stable sort)."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.argsort(-scores, kind="stable")[: max(int(top_k), 0)]
