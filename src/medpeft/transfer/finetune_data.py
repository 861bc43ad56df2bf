"""Manifest splits -> fixed-size tensors for segmentation (image + mask) and detection (image + boxes).

Every image is resized to ``size``×``size`` (no crop), so masks and boxes follow the same map and the
metrics are computed at the model's resolution (MGCA's protocol); boxes are kept in the manifest's pixel
coordinates as well, for the predictions CSV. Bad rows fail when the split is opened — a mask whose size
differs from its image, a box outside its image or with a negative size — with the manifest line named,
not deep inside a DataLoader. Augmentation is off by default; when on it is seeded by
(seed, epoch, row), so it does not depend on worker count, process count or RNG state (resume-safe).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from medpeft.errors import ConfigError, DataError

SPLIT_FILES = {"train": "train.csv", "validate": "validate.csv", "test": "test.csv"}


def split_path(data_dir: str | Path, split: str, fraction: float | None = None) -> Path:
    """Manifest path of a split; ``fraction`` picks ``train_fraction_<f>.csv`` (written by ``prepare``)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"--data {data_dir} is not a folder (expected the output of 'medpeft prepare')")
    if split == "train" and fraction is not None and fraction != 1.0:
        from medpeft.data.prepare.splits import check_fraction, fraction_name

        path = data_dir / fraction_name(check_fraction(fraction))
        if not path.is_file():
            found = sorted(p.name for p in data_dir.glob("train_fraction_*.csv"))
            raise DataError(
                f"{path} not found: prepare the dataset with --fraction {fraction:g} "
                f"(fraction manifests here: {', '.join(found) or 'none'})"
            )
        return path
    path = data_dir / SPLIT_FILES[split]
    if not path.is_file():
        raise DataError(f"{path} not found: fine-tuning needs train.csv, validate.csv and test.csv in --data")
    return path


def read_split(path: Path, task: str) -> pd.DataFrame:
    """Read and validate one manifest for ``task`` ('segmentation' needs ``mask``, 'detection' ``boxes``)."""
    from medpeft.data.manifest import read_manifest

    if task == "segmentation":
        df = read_manifest(path, required_columns=("mask",), check_mask_sizes=True)
        empty = [i + 2 for i, m in enumerate(df["mask"]) if not m]
        if empty:
            raise DataError(f"manifest {path} line {empty[0]}: empty 'mask' (every row needs a mask PNG)")
    elif task == "detection":
        df = read_manifest(path, required_columns=("boxes",))
        _check_boxes_inside(df, path)
    else:
        raise ConfigError(f"unknown task {task!r}: use 'segmentation' or 'detection'")
    df["manifest_line"] = np.arange(len(df)) + 2
    return df.reset_index(drop=True)


def _check_boxes_inside(df: pd.DataFrame, path: Path) -> None:
    """Boxes must lie inside their image; the manifest reader checks it only when width/height are given."""
    from medpeft.data.images import image_size

    if "width" in df.columns and "height" in df.columns:
        return
    for i, (image, boxes) in enumerate(zip(df["image"], df["boxes"], strict=True)):
        if not boxes:
            continue
        w, h = image_size(image)
        for x, y, bw, bh in boxes:
            if x + bw > w + 1e-6 or y + bh > h + 1e-6:
                raise DataError(
                    f"manifest {path} line {i + 2}: box {[x, y, bw, bh]} lies outside the {w}x{h} image {image}"
                )


def load_rgb(path: str | Path, size: int) -> np.ndarray:
    """[size, size, 3] uint8: the image as every task and overlay sees it (resized, no crop)."""
    from medpeft.data.images import load_image

    img = load_image(path).convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), resample=Image.Resampling.BICUBIC)
    return np.array(img, dtype=np.uint8)  # a writable copy: torch refuses read-only buffers


def load_mask(path: str | Path, size: int) -> np.ndarray:
    """[size, size] bool mask (nearest-neighbour resize keeps it binary)."""
    try:
        with Image.open(path) as m:
            m.load()
            mask = m.convert("L")
    except OSError as err:
        raise DataError(f"cannot read mask {path}: {err}") from err
    if mask.size != (size, size):
        mask = mask.resize((size, size), resample=Image.Resampling.NEAREST)
    return np.asarray(mask) > 127


@dataclass(frozen=True)
class Normalise:
    """Per-channel mean/std of the encoder, applied to [0, 1] pixels."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, rgb: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std

    def undo(self, x: torch.Tensor) -> np.ndarray:
        """[3, H, W] normalised tensor -> [H, W, 3] float image in [0, 1] (for overlays)."""
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x.detach().float().cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


class _Augment:
    """Horizontal flip and a mild brightness/contrast change, drawn from (seed, epoch, row) only."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.epoch = 0

    def draw(self, index: int) -> tuple[bool, float, float]:
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        return bool(rng.random() < 0.5), float(rng.uniform(0.9, 1.1)), float(rng.uniform(-0.05, 0.05))


def _jitter(rgb: np.ndarray, gain: float, bias: float) -> np.ndarray:
    out = rgb.astype(np.float32) * gain + bias * 255.0
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


class ManifestDataset(Dataset):
    """One split of a prepared SIIM/RSNA-style folder as tensors; ``task`` picks masks or boxes.

    Items: ``{"index", "pixel_values" [3,S,S]}`` plus ``"mask"`` [1,S,S] float (segmentation) or ``"boxes"``
    [K,4] xyxy in S-pixel units (detection).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        task: str,
        size: int,
        normalise: Normalise,
        *,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        self.frame = frame.reset_index(drop=True)
        self.task = task
        self.size = int(size)
        self.normalise = normalise
        self.augment = _Augment(seed) if augment else None

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on the epoch (called by the loop before each epoch)."""
        if self.augment is not None:
            self.augment.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.frame)

    def scale(self, index: int) -> tuple[float, float]:
        """(sx, sy): manifest pixels -> model pixels for row ``index``."""
        row = self.frame.iloc[index]
        if "width" in self.frame.columns and "height" in self.frame.columns:
            w, h = float(row["width"]), float(row["height"])
        else:
            from medpeft.data.images import image_size

            w, h = image_size(row["image"])
        return self.size / w, self.size / h

    def boxes_xyxy(self, index: int) -> torch.Tensor:
        """Ground-truth boxes of row ``index`` in manifest pixels, xyxy [K, 4]."""
        boxes = self.frame["boxes"].iat[index]
        t = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        return torch.cat([t[:, :2], t[:, :2] + t[:, 2:]], dim=1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.frame.iloc[index]
        rgb = load_rgb(row["image"], self.size)
        flip, gain, bias = self.augment.draw(index) if self.augment is not None else (False, 1.0, 0.0)
        if self.augment is not None:
            rgb = _jitter(rgb, gain, bias)
        if flip:
            rgb = rgb[:, ::-1]
        item: dict[str, Any] = {"index": index, "pixel_values": self.normalise(rgb)}
        if self.task == "segmentation":
            mask = load_mask(row["mask"], self.size)
            if flip:
                mask = mask[:, ::-1]
            item["mask"] = torch.from_numpy(np.ascontiguousarray(mask)).float()[None]
        else:
            sx, sy = self.scale(index)
            boxes = self.boxes_xyxy(index) * torch.tensor([sx, sy, sx, sy])
            if flip:
                boxes = torch.stack(
                    [self.size - boxes[:, 2], boxes[:, 1], self.size - boxes[:, 0], boxes[:, 3]], 1
                )
            item["boxes"] = boxes
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images (and masks); boxes stay a list (a different count per image)."""
    batch: dict[str, Any] = {
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "pixel_values": torch.stack([it["pixel_values"] for it in items]),
    }
    if "mask" in items[0]:
        batch["mask"] = torch.stack([it["mask"] for it in items])
    if "boxes" in items[0]:
        batch["boxes"] = [it["boxes"] for it in items]
    return batch


def overlay_indices(dataset: ManifestDataset, count: int) -> list[int]:
    """Up to ``count`` test rows in manifest order, positives first (half), so overlays show lesions."""
    if count <= 0:
        return []
    frame = dataset.frame
    want = max(1, count // 2)
    chosen: list[int] = []
    for i in range(len(frame)):
        if len(chosen) == want:
            break
        if dataset.task == "segmentation":
            positive = _mask_has_foreground(frame["mask"].iat[i])
        else:
            positive = len(frame["boxes"].iat[i]) > 0
        if positive:
            chosen.append(i)
    taken = set(chosen)
    rest = [i for i in range(len(frame)) if i not in taken]
    return sorted(chosen + rest[: count - len(chosen)])


def _mask_has_foreground(path: str) -> bool:
    with Image.open(path) as m:
        return bool(np.asarray(m.convert("L")).max() > 127)


@dataclass
class TaskSplits:
    """The three manifests of a fine-tuning run and their datasets (augmentation on train only)."""

    manifests: dict[str, Path]
    train: ManifestDataset
    validate: ManifestDataset
    test: ManifestDataset


def load_task_splits(
    data_dir: str | Path,
    task: str,
    fraction: float | None,
    size: int,
    normalise: Normalise,
    *,
    augment: bool,
    seed: int,
) -> TaskSplits:
    """Open train (or its ``fraction`` subset), validate and test of a prepared folder, rows checked."""
    manifests = {
        "train": split_path(data_dir, "train", fraction),
        "validate": split_path(data_dir, "validate"),
        "test": split_path(data_dir, "test"),
    }
    frames = {s: read_split(p, task) for s, p in manifests.items()}
    return TaskSplits(
        manifests=manifests,
        train=ManifestDataset(frames["train"], task, size, normalise, augment=augment, seed=seed),
        validate=ManifestDataset(frames["validate"], task, size, normalise),
        test=ManifestDataset(frames["test"], task, size, normalise),
    )


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel-style wrapper (or the model itself)."""
    return getattr(model, "module", model)
