"""Training data: image-text pairs from a manifest, each sample carrying its own label vector.

Labels are read from the same manifest row as the image and the report and travel with the
sample through the DataLoader, so they can never be joined to the wrong image by position (the
reference code's defect). An unreadable image becomes a ``BadSample`` naming its path; the collate
drops it and the training loop applies the run's policy (fail, or skip and count).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medpeft.data.images import load_image
from medpeft.data.labels import CHEXPERT_LABELS
from medpeft.data.manifest import DATASET_INFO, read_dataset_info, read_manifest
from medpeft.errors import DataError
from medpeft.runtime import derive_seed

BLANK_LABEL = -2.0  # a kept blank label: equal to other blanks, unlike NaN, for the label-guided mask
_LOADER = 0x10AD


def resolve_manifest(path: str | Path, splits: Sequence[str], what: str) -> Path:
    """A manifest CSV, or the first of ``splits`` (``{split}.csv``) inside a prepared folder."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for split in splits:
            if (path / f"{split}.csv").is_file():
                return path / f"{split}.csv"
        found = sorted(p.name for p in path.glob("*.csv"))
        raise DataError(
            f"{what} folder {path} has no {' or '.join(f'{s}.csv' for s in splits)} "
            f"(CSV files there: {found or 'none'}); run 'medpeft prepare' or pass the manifest CSV itself"
        )
    raise DataError(f"{what} {path} does not exist")


@dataclass
class TrainingManifest:
    """The columns training needs, as plain lists (cheap to share with DataLoader workers)."""

    path: Path
    images: list[str]
    texts: list[str]
    labels: np.ndarray | None  # [N, C] float32, BLANK_LABEL for kept blanks
    label_columns: list[str]

    def __len__(self) -> int:
        return len(self.images)


def read_training_manifest(path: Path, check_files: bool = True) -> TrainingManifest:
    """Read and validate an image-text manifest; label columns come from ``dataset.json`` beside it,
    else the CheXpert label columns present (values 1, 0, -1 or blank)."""
    label_columns: list[str] | None = None
    label_values: list[float | None] | None = None
    if (path.parent / DATASET_INFO).is_file():
        info = read_dataset_info(path.parent)
        label_columns = list(info.classes)
        if not info.has_text:
            raise DataError(
                f"{path}: dataset {info.name!r} has no report text; training needs image-text pairs"
            )
    else:
        import pandas as pd

        try:
            header = list(pd.read_csv(path, nrows=0).columns)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
            raise DataError(f"manifest {path} is not a readable CSV: {err}") from err
        label_columns = [c for c in CHEXPERT_LABELS if c in header]
        label_values = [0, 1, -1, None]
    df = read_manifest(
        path,
        label_columns=label_columns,
        label_values=label_values,
        required_columns=("text",),
        check_files=check_files,
    )
    empty = [i for i, t in enumerate(df["text"]) if not str(t).strip()]
    if empty:
        raise DataError(f"manifest {path} line {empty[0] + 2}: empty 'text' ({len(empty)} rows have no text)")
    labels = None
    if label_columns:
        labels = df[label_columns].to_numpy(dtype=np.float32)
        labels = np.where(np.isnan(labels), BLANK_LABEL, labels).astype(np.float32)
    return TrainingManifest(
        path=path,
        images=[str(p) for p in df["image"]],
        texts=[str(t) for t in df["text"]],
        labels=labels,
        label_columns=list(label_columns),
    )


@dataclass
class BadSample:
    """An image that could not be read; the collate drops it and reports it."""

    index: int
    path: str
    reason: str


class ManifestDataset(Dataset):
    """Item ``(index, seed)`` -> ``{"index", "pixel_values", "text", "labels"}`` or a ``BadSample``.

    The seed drives the random augmentation of that one sample (under a forked RNG), so the
    augmentation does not depend on worker processes, on prefetching or on where a run resumed.
    """

    def __init__(self, manifest: TrainingManifest, transform: Callable) -> None:
        self.manifest = manifest
        self.transform = transform

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any] | BadSample:
        index, seed = key
        path = self.manifest.images[index]
        try:
            image = load_image(path)
            image.load()
        except (DataError, OSError, ValueError, SyntaxError) as err:
            reason = str(err) if isinstance(err, DataError) else f"{type(err).__name__}: {err}"
            return BadSample(index=index, path=path, reason=reason)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            py_state = random.getstate()
            random.seed(seed)
            try:
                pixel_values = self.transform(image)
            finally:
                random.setstate(py_state)
        labels = self.manifest.labels
        return {
            "index": index,
            "pixel_values": pixel_values,
            "text": self.manifest.texts[index],
            "labels": None if labels is None else torch.from_numpy(labels[index]),
        }


class Collate:
    """Stack images, tokenize reports (to the full context, or to the batch's longest report) and stack
    each sample's own labels; unreadable images are dropped and listed under ``"bad"``."""

    def __init__(self, tokenizer: Callable, padding: str, context_length: int, min_length: int = 0) -> None:
        self.tokenizer = tokenizer
        self.padding = padding
        self.context_length = context_length
        # the text hypergraph needs top_k + 1 tokens besides [CLS]: a batch of very short reports
        # padded to its longest would otherwise have too few
        self.min_length = min(min_length, context_length)
        self.pad_id = int(getattr(tokenizer, "pad_id", 0))

    def __call__(self, samples: list[dict[str, Any] | BadSample]) -> dict[str, Any]:
        good = [s for s in samples if not isinstance(s, BadSample)]
        bad = [(s.path, s.reason) for s in samples if isinstance(s, BadSample)]
        batch: dict[str, Any] = {
            "indices": torch.tensor([s["index"] for s in good], dtype=torch.long),
            "bad": bad,
            "pixel_values": None,
            "input_ids": None,
            "labels": None,
        }
        if good:
            batch["pixel_values"] = torch.stack([s["pixel_values"] for s in good])
            ids = self.tokenizer(
                [s["text"] for s in good], padding=self.padding, context_length=self.context_length
            )
            if ids.shape[1] < self.min_length:
                ids = torch.nn.functional.pad(ids, (0, self.min_length - ids.shape[1]), value=self.pad_id)
            batch["input_ids"] = ids
            if good[0]["labels"] is not None:
                batch["labels"] = torch.stack([s["labels"] for s in good])
        return batch


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and python in each worker from torch's per-worker seed (torch seeds itself)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: ManifestDataset,
    batch_sampler: Any,
    collate: Collate,
    workers: int,
    seed: int,
    epoch: int,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader whose own generator is seeded from (seed, epoch): creating it never draws from the
    global RNG, which the training step's dropout uses."""
    generator = torch.Generator().manual_seed(derive_seed(seed, epoch, _LOADER))
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=collate,
        num_workers=workers,
        worker_init_fn=_seed_worker if workers else None,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
