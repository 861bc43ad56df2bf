"""Shared helpers for the weak-label tests: synthetic images/CSVs, a stub scorer and a stub proposer."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medpeft.a3tune.weak_labels import CropScorer, make_mask


def write_images(folder: Path, n: int, size: int = 96, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` grey PNGs with one bright square each; returns (id, relative path)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = (rng.random((size, size)) * 60).astype(np.uint8)
        x, y = rng.integers(10, size - 40, size=2)
        img[y : y + 25, x : x + 25] = 220
        name = f"img{i}.png"
        Image.fromarray(img, mode="L").save(folder / name)
        rows.append((f"s{i}", name))
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_dataset(folder: Path, n: int = 6) -> Path:
    rows = write_images(folder, n)
    return write_csv(
        folder / "data.csv",
        [{"id": i, "image": p, "question": "Is there a lesion?", "location": "chest"} for i, p in rows],
    )


def brightness_scorer() -> CropScorer:
    """Scores a crop by how bright it is: image embedding (mean, 1 - mean) of an 8x8 resize; text (1, 0)."""
    from torchvision.transforms import Compose, Resize, ToTensor

    pre = Compose([Resize((8, 8)), ToTensor()])

    def enc_img(px: torch.Tensor) -> torch.Tensor:
        m = px.mean(dim=(1, 2, 3))
        return torch.stack([m, 1 - m], dim=1)

    return CropScorer(
        encode_image=enc_img,
        encode_text=lambda ids: torch.tensor([[1.0, 0.0]]).expand(len(ids), 2),
        preprocess=pre,
        tokenizer=lambda texts: torch.zeros(len(texts), 1, dtype=torch.long),
        name="stub-brightness",
        batch_size=4,
    )


class GridProposer:
    """Deterministic proposals: 3x3 grid cells of the image plus the bright pixels; ``delay`` s per image."""

    name = "grid"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def describe(self) -> dict:
        return {"name": self.name}

    def propose(self, image: np.ndarray) -> list:
        time.sleep(self.delay)
        h, w = image.shape[:2]
        masks = []
        for i in range(3):
            for j in range(3):
                seg = np.zeros((h, w), bool)
                seg[i * h // 3 + 5 : (i + 1) * h // 3 - 5, j * w // 3 + 5 : (j + 1) * w // 3 - 5] = True
                masks.append(make_mask(seg))
        masks.append(make_mask(image.mean(-1) > 150))
        return masks


# segment_anything -> transformers SamModel parameter names (the renames of transformers' SAM conversion).
SAM_TO_HF = [
    (r"^image_encoder\.", "vision_encoder."),
    (r"patch_embed\.proj\.", "patch_embed.projection."),
    (r"vision_encoder\.blocks\.", "vision_encoder.layers."),
    (r"(vision_encoder\.layers\.\d+)\.norm(\d)", r"\1.layer_norm\2"),
    (r"neck\.0\.", "neck.conv1."),
    (r"neck\.1\.", "neck.layer_norm1."),
    (r"neck\.2\.", "neck.conv2."),
    (r"neck\.3\.", "neck.layer_norm2."),
    (r"pe_layer\.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
    (r"point_embeddings\.", "point_embed."),
    (r"mask_downscaling\.0\.", "mask_embed.conv1."),
    (r"mask_downscaling\.1\.", "mask_embed.layer_norm1."),
    (r"mask_downscaling\.3\.", "mask_embed.conv2."),
    (r"mask_downscaling\.4\.", "mask_embed.layer_norm2."),
    (r"mask_downscaling\.6\.", "mask_embed.conv3."),
    (r"(transformer\.layers\.\d+)\.norm(\d)", r"\1.layer_norm\2"),
    (r"norm_final_attn", "layer_norm_final_attn"),
    (r"output_upscaling\.0\.", "upscale_conv1."),
    (r"output_upscaling\.1\.", "upscale_layer_norm."),
    (r"output_upscaling\.3\.", "upscale_conv2."),
    (r"(mlps\.\d+|prediction_head)\.layers\.0\.", r"\1.proj_in."),
    (r"(mlps\.\d+|prediction_head)\.layers\.1\.", r"\1.layers.0."),
    (r"(mlps\.\d+|prediction_head)\.layers\.2\.", r"\1.proj_out."),
]


def sam_to_hf_state(state: dict) -> dict:
    """A segment_anything ``Sam`` state dict under transformers ``SamModel`` names."""
    import re

    out = {}
    for key, value in state.items():
        for pattern, repl in SAM_TO_HF:
            key = re.sub(pattern, repl, key)
        out[key] = value
    out["shared_image_embedding.positional_embedding"] = out[
        "prompt_encoder.shared_embedding.positional_embedding"
    ]
    return out
