"""Synthetic data in the exact raw layouts of the real datasets, with images that carry meaning.

``synthesize("rsna", out)`` writes what the real download looks like (files, folder names, CSV
columns and value conventions), so the real readers can be tested and demonstrated without
credentialed data; ``synthetic_truth.json`` at the root records what was drawn where.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medpeft.data.datasets import REGISTRY, resolve_dataset
from medpeft.errors import ConfigError

MIN_IMAGE_SIZE = 64
MAX_IMAGE_SIZE = 4096


def synthesize(
    dataset: str,
    out: Path | str,
    n: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
    overwrite: bool = False,
    progress: bool | Callable[[int], Any] = False,
) -> dict[str, Any]:
    """Write synthetic ``dataset`` in its raw layout under ``out`` and return a summary.

    ``n`` is the number of images (per class for ``chexpert-5x200``, where it is the number of
    clean frontal rows per 5x200 class, and for ``lc25000``). ``progress`` is True for a tqdm bar
    or a callable receiving the number of images just written. Same arguments, same bytes.
    Raises ``ConfigError`` (unknown dataset, bad n/size) and ``OutputExistsError`` (non-empty out).
    The summary holds ``dataset``, ``out``, ``seed``, ``n``, ``image_size``, ``counts``, ``paths``
    (relative to ``out``) and ``truth`` (path of the sidecar).
    """
    from medpeft.data.synthetic.output import prepare_out, write_truth

    name = resolve_dataset(dataset)
    n = REGISTRY[name].synth_n if n is None else int(n)
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    if int(seed) < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    size = REGISTRY[name].synth_image_size if image_size is None else int(image_size)
    if not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise ConfigError(
            f"image size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, got {size}"
        )
    writer = importlib.import_module(f"medpeft.data.synthetic.{REGISTRY[name].writer}")
    root = prepare_out(Path(out), overwrite)

    bar = None
    if callable(progress):
        advance = progress
    elif progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=writer.total_images(n), desc=f"synth {name}", unit="img")
        advance = bar.update
    else:

        def advance(_: int) -> None:
            return None

    try:
        result = writer.write(root, n, int(seed), size, advance)
    finally:
        if bar is not None:
            bar.total = bar.n  # some totals are upper bounds (random lateral views)
            bar.refresh()
            bar.close()
    truth = write_truth(root, name, int(seed), n, size, result.pop("truth"))
    return {
        "dataset": name,
        "out": str(root),
        "seed": int(seed),
        "n": n,
        "image_size": size,
        "counts": result["counts"],
        "paths": result["paths"],
        "truth": truth.name,
    }


__all__ = ["synthesize"]
