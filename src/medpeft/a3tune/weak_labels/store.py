"""Weak-label storage: ``OUT/masks.npz`` (one ``uint8 [K, H, W]`` array per sample id, no pickles) and
``OUT/index.json`` (settings, then per id: K, scores, boxes, the query).

Both files are rewritten atomically through :mod:`medpeft.io`: ``masks.npz`` first, then ``index.json``, so
the index never names an id the npz lacks. The npz bytes are deterministic: members in the samples' input
order, a fixed zip timestamp (1980-01-01) and fixed compression, so a resumed run ends with the same bytes as
an uninterrupted one. Load with :func:`load_weak_labels` or ``np.load(OUT/"masks.npz", allow_pickle=False)``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medpeft.errors import CheckpointError
from medpeft.io import atomic_path, read_json, write_json

MASKS_FILE = "masks.npz"
INDEX_FILE = "index.json"
FORMAT = "medpeft-weak-labels/1"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | Path, arrays: Iterator[tuple[str, np.ndarray]] | Mapping[str, np.ndarray]) -> Path:
    """An ``np.load``-compatible ``.npz`` written atomically with deterministic bytes (member order as given)."""
    items = arrays.items() if isinstance(arrays, Mapping) else arrays
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for key, arr in items:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue(), compresslevel=6)
    return Path(path)


@dataclass
class WeakLabels:
    """Read side: ``.index`` (the index.json dict), ``.ids``, ``.masks(id) -> uint8 [K, H, W]``."""

    folder: Path
    index: dict[str, Any]
    _npz: Any = field(default=None, repr=False)

    @property
    def ids(self) -> list[str]:
        return list(self.index.get("samples", {}))

    def masks(self, sample_id: str) -> np.ndarray:
        if sample_id not in self.index.get("samples", {}):
            raise KeyError(f"{sample_id!r} has no weak labels in {self.folder}")
        if self._npz is None:
            self._npz = np.load(self.folder / MASKS_FILE, allow_pickle=False)
        return self._npz[sample_id]

    def token_masks(self, sample_id: str, **grid_kwargs: Any) -> Any:
        """``to_token_grid(masks(id), **grid_kwargs)``, or ``None`` when the sample has no mask (K = 0),
        the form A³Tune's ``weak_masks`` takes."""
        from medpeft.a3tune.weak_labels.token_grid import to_token_grid

        masks = self.masks(sample_id)
        return None if masks.shape[0] == 0 else to_token_grid(masks, **grid_kwargs)

    def close(self) -> None:
        if self._npz is not None:
            self._npz.close()
            self._npz = None


def read_index(folder: str | Path) -> dict[str, Any] | None:
    """The index of ``folder``, or ``None`` when there is none yet."""
    path = Path(folder) / INDEX_FILE
    if not path.exists():
        return None
    index = read_json(path, what="weak-label index")
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a medpeft weak-label index (format {FORMAT})")
    return index


def read_masks(folder: str | Path, ids: list[str]) -> dict[str, np.ndarray]:
    """The arrays of ``ids`` from ``folder/masks.npz`` (all must be there)."""
    path = Path(folder) / MASKS_FILE
    if not ids:
        return {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {i: npz[i] for i in ids}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path}: unreadable or missing ids the index names ({err})") from err


def load_weak_labels(folder: str | Path) -> WeakLabels:
    """Open a weak-label folder written by :func:`~.pipeline.generate_weak_labels`."""
    folder = Path(folder)
    index = read_index(folder)
    if index is None:
        raise CheckpointError(f"{folder}: no {INDEX_FILE} (not a weak-label folder)")
    return WeakLabels(folder, index)


def write_store(folder: Path, index: dict[str, Any], new_arrays: Mapping[str, np.ndarray]) -> None:
    """Flush: the npz (in ``index['samples']`` order; ids flushed before are streamed from the previous
    npz, so memory holds only the unflushed samples) then the index, both atomically."""
    path = folder / MASKS_FILE
    old = np.load(path, allow_pickle=False) if path.exists() else None
    try:
        old_keys = set(old.files) if old is not None else set()

        def items() -> Iterator[tuple[str, np.ndarray]]:
            for i in index["samples"]:
                if i in new_arrays:
                    yield i, new_arrays[i]
                elif i in old_keys:
                    yield i, old[i]
                else:
                    raise CheckpointError(f"{path}: no masks for {i!r}, which the index names")

        write_npz(path, items())
    finally:
        if old is not None:
            old.close()
    write_json(folder / INDEX_FILE, index)
