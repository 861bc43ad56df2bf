"""A conversation manifest split plus (optionally) its weak labels → :class:`~medpeft.a3tune.collate.A3Example`s.

Weak labels are matched to samples by id, never by position. Both directions are counted and reported (never
skipped silently): manifest samples without weak labels train on the LM loss alone (their ``weak_masks`` are
None), and weak-label ids the split does not hold are ignored. Every stored mask array is checked before
anything runs: it must be ``[K, size, size]`` with the ``size`` the weak-label index records (the 256² frame
the masks were made on), else a ``DataError`` names the id and the file. Masks go onto the model's image-token
grid when an example is read (``to_token_grid``, ``"aligned"`` to the base's image processor by default, or the
authors' ``"official"`` chain).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medpeft.a3tune.collate import A3Example
from medpeft.a3tune.weak_labels.store import INDEX_FILE, MASKS_FILE, WeakLabels, load_weak_labels
from medpeft.a3tune.weak_labels.token_grid import GRID_MODES, to_token_grid
from medpeft.data.conversations import SPLITS, ConversationSample, image_paths, read_conversations
from medpeft.data.images import load_image
from medpeft.errors import ConfigError, DataError


@dataclass
class WeakLabelMatch:
    """How the weak labels matched the split: counts plus a few example ids of each mismatch."""

    samples: int = 0
    with_masks: int = 0
    without_masks: list[str] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "with_masks": self.with_masks,
            "samples_without_weak_labels": len(self.without_masks),
            "weak_label_ids_not_in_split": len(self.unknown_ids),
            "examples_without": self.without_masks[:5],
            "examples_not_in_split": self.unknown_ids[:5],
        }

    def describe(self) -> str:
        return (
            f"{self.with_masks} of {self.samples} samples have weak labels; {len(self.without_masks)} have none "
            f"(LM loss only); {len(self.unknown_ids)} weak-label id(s) are not in the split (ignored)"
            + (f", e.g. {self.unknown_ids[:3]}" if self.unknown_ids else "")
        )


def resolve_weak_labels(path: str | os.PathLike[str]) -> Path:
    """The weak-label folder from the folder itself or its ``masks.npz`` (``index.json`` beside it)."""
    p = Path(path)
    folder = p.parent if p.is_file() or p.suffix == ".npz" else p
    if p.suffix == ".npz" and not p.is_file():
        raise DataError(f"{p}: weak-label file not found")
    if not (folder / INDEX_FILE).is_file() or not (folder / MASKS_FILE).is_file():
        raise DataError(
            f"{p}: not a weak-label folder (needs {MASKS_FILE} and {INDEX_FILE}, as `medpeft weak-labels` writes)"
        )
    return folder


def npz_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the arrays in an ``.npz``, read from the member headers only (no decompression of the data)."""
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                with zf.open(name) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, _ = read(fh)
                shapes[name.removesuffix(".npy")] = tuple(int(s) for s in shape)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: unreadable weak-label masks ({err})") from err
    return shapes


def match_weak_labels(samples: list[ConversationSample], weak: WeakLabels) -> WeakLabelMatch:
    """Check every stored array of the split's ids and count the matches both ways."""
    size = int((weak.index.get("settings") or {}).get("size") or 256)
    shapes = npz_shapes(weak.folder / MASKS_FILE)
    stored = set(weak.ids)
    ids = [s.id for s in samples]
    in_split = set(ids)
    match = WeakLabelMatch(samples=len(samples))
    for sid in ids:
        if sid not in stored:
            match.without_masks.append(sid)
            continue
        shape = shapes.get(sid)
        if shape is None:
            raise DataError(
                f"{weak.folder / MASKS_FILE}: no masks for sample {sid!r}, which {INDEX_FILE} names"
            )
        if len(shape) != 3 or shape[1:] != (size, size):
            raise DataError(
                f"{weak.folder / MASKS_FILE}: masks of sample {sid!r} have shape {list(shape)}, not "
                f"[K, {size}, {size}] (the {size}x{size} frame {INDEX_FILE} records)"
            )
        match.with_masks += 1
    match.unknown_ids = [i for i in weak.ids if i not in in_split]
    return match


class ConversationExamples:
    """Indexable examples of one split (images and masks read on access, so DataLoader workers share nothing).

    ``dataset[i]`` or ``dataset[(i, seed)]`` (the training sampler's form) → :class:`A3Example`. ``answers``:
    False for generation (the answer stays in ``samples``)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        split: str,
        *,
        weak_labels: str | os.PathLike[str] | None = None,
        grid: int,
        image_processor: Any = None,
        grid_mode: str = "aligned",
        answers: bool = True,
    ) -> None:
        folder = Path(folder)
        if folder.is_dir() and not (folder / f"{split}.jsonl").is_file():
            have = [s for s in SPLITS if (folder / f"{s}.jsonl").is_file()]
            raise DataError(
                f"{folder}: no {split!r} split ({split}.jsonl); this folder has {have or 'no splits'}"
            )
        if grid_mode not in GRID_MODES:
            raise ConfigError(f"grid_mode must be one of {GRID_MODES}, got {grid_mode!r}")
        self.folder = folder if folder.is_dir() else folder.parent
        self.samples = read_conversations(folder, split)
        if not self.samples:
            raise DataError(f"{folder}: the {split!r} split is empty")
        self.paths = image_paths(self.folder, self.samples)
        self.grid, self.processor, self.grid_mode, self.answers = grid, image_processor, grid_mode, answers
        self.weak_folder: Path | None = None
        self.match: WeakLabelMatch | None = None
        self._weak: WeakLabels | None = None
        if weak_labels is not None:
            self.weak_folder = resolve_weak_labels(weak_labels)
            weak = load_weak_labels(self.weak_folder)
            self.match = match_weak_labels(self.samples, weak)
            self._stored = set(weak.ids)

    def __len__(self) -> int:
        return len(self.samples)

    def weak(self) -> WeakLabels | None:
        if self.weak_folder is not None and self._weak is None:
            self._weak = load_weak_labels(self.weak_folder)  # opened lazily, per process
        return self._weak

    def masks_for(self, index: int, image_size: tuple[int, int]) -> Any:
        sample = self.samples[index]
        weak = self.weak()
        if weak is None or sample.id not in self._stored:
            return None
        arr = weak.masks(sample.id)
        if arr.shape[0] == 0:
            return None
        if self.grid_mode == "official":
            return to_token_grid(arr, grid=self.grid, mode="official")
        return to_token_grid(
            arr, grid=self.grid, mode="aligned", processor=self.processor, image_size=image_size
        )

    def __getitem__(self, item: int | tuple[int, int]) -> A3Example:
        index = item[0] if isinstance(item, tuple) else int(item)
        sample = self.samples[index]
        image = load_image(self.paths[index])
        return A3Example(
            id=sample.id,
            question=sample.question,
            answer=sample.answer if self.answers else None,
            image=image,
            weak_masks=self.masks_for(index, image.size),
            answer_type=sample.answer_type,
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_weak"] = None  # an open npz never crosses into a worker process
        return state
