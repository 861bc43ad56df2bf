"""Helpers for the zero-shot tests (not a test module): hand-built prepared sets and a stub model whose
probabilities are known in closed form."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from medpeft.data.manifest import DatasetInfo, write_dataset_info


def write_grey_png(path: Path, value: int, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, dtype=np.uint8), mode="L").save(path)
    return path


def write_noise_png(path: Path, seed: int, size: int = 48, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, 3)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def make_prepared(
    root: Path,
    name: str,
    task: str,
    classes: Sequence[str],
    labels: np.ndarray,
    values: Sequence[int] | None = None,
    *,
    positive_class: str | None = None,
    noise: bool = False,
    split: str = "test",
) -> Path:
    """A ``prepare``-style folder: ``images/*.png``, ``<split>.csv`` (relative paths, one column per class)
    and ``dataset.json``. ``labels`` is [N] class indices or an [N, C] 0/1 matrix; ``values`` the grey level
    of each image (noise images when ``noise``)."""
    root.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    n = labels.shape[0]
    onehot = labels if labels.ndim == 2 else np.eye(len(classes), dtype=int)[labels]
    rows = []
    for i in range(n):
        rel = f"images/img_{i:03d}.png"
        if noise:
            write_noise_png(root / rel, seed=i)
        else:
            write_grey_png(root / rel, int(values[i]))
        rows.append(
            {
                "image": rel,
                **{c: int(onehot[i, j]) for j, c in enumerate(classes)},
                "image_id": f"img_{i:03d}",
            }
        )
    pd.DataFrame(rows).to_csv(root / f"{split}.csv", index=False)
    info = DatasetInfo(
        name=name,
        task=task,
        classes=list(classes),
        class_names=list(classes),
        splits={split: f"{split}.csv"},
        positive_class=positive_class,
    )
    write_dataset_info(root, info)
    return root


class StubTokenizer:
    """Each prompt becomes one id: the index of the longest known phrase it contains (negations first)."""

    def __init__(self, phrases: Sequence[str]) -> None:
        self.phrases = list(phrases)

    def __call__(self, texts: Sequence[str], padding: str = "max_length") -> torch.Tensor:
        ids = []
        for text in texts:
            hits = [i for i, p in enumerate(self.phrases) if p in text]
            ids.append(max(hits, key=lambda i: len(self.phrases[i])))
        return torch.tensor(ids, dtype=torch.long)[:, None]


class StubBackbone:
    def __init__(self, phrases: Sequence[str]) -> None:
        self.tokenizer = StubTokenizer(phrases)
        self.name = "stub"

    @staticmethod
    def preprocess(image: Image.Image) -> torch.Tensor:
        """The grey level in [0, 1] (one number per image)."""
        return torch.tensor([float(np.asarray(image.convert("L"), dtype=np.float64).mean()) / 255.0])


class StubModel(nn.Module):
    """Image embedding = (cos πt, sin πt) for grey level t; phrase k embeds as ``table[k]``; fixed scale.
    So ``p = softmax(scale · x·Eᵀ)`` can be computed by hand for every image."""

    def __init__(self, phrases: Sequence[str], table: torch.Tensor, scale: float = 10.0) -> None:
        super().__init__()
        self.backbone = StubBackbone(phrases)
        self.register_buffer("table", torch.nn.functional.normalize(table.double(), dim=-1).float())
        self.logit_scale = scale

    @staticmethod
    def embed(t: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.cos(math.pi * t), torch.sin(math.pi * t)], dim=-1)

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.embed(pixel_values[:, 0])

    def encode_prompts(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.table[input_ids[:, 0, 0]]  # every template of a class names the same phrase


def angles_table(n: int) -> torch.Tensor:
    """n unit vectors spread over the upper half circle (where the image embeddings live)."""
    return StubModel.embed(torch.linspace(0.1, 0.9, n))


def deep_model(backbone, **config):
    """An ``AceLoraModel`` on a copy of ``backbone`` (LoRA is injected in place), with non-zero LoRA B so
    the adapter changes the outputs."""
    import medpeft

    model = medpeft.AceLoraModel(copy.deepcopy(backbone), medpeft.AceLoraConfig(**config))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()
