"""The output folder of ``synth``: refusing to clobber, image files, and the ground-truth sidecar.

``synthetic_truth.json`` at the output root records, per written image, the labels, the drawn
findings, boxes and mask files, so tests and heat-map overlays can check localisation. The real
readers never look at it (nor at ``synthetic_truth/``, where masks are stored).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medpeft.io import check_out_dir

TRUTH_FILE = "synthetic_truth.json"
TRUTH_DIR = "synthetic_truth"
TRUTH_FORMAT = "medpeft-synthetic-truth/1"

Advance = Callable[[int], Any]


def prepare_out(out: Path, overwrite: bool) -> Path:
    """Create ``out``; refuse a non-empty folder unless ``overwrite``.

    With ``overwrite`` a folder that a previous ``synth`` wrote (it holds the truth sidecar) is
    emptied first so no stale images survive; any other folder is written into, never deleted.
    """
    out = Path(out)
    used = check_out_dir(
        out, may_reuse=overwrite, advice="choose another folder or pass overwrite=True (--overwrite)"
    )
    if used and (out / TRUTH_FILE).is_file():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_gray(path: Path, image: np.ndarray, quality: int = 92) -> None:
    """Save a float grey image as 8-bit JPEG or PNG (by suffix) through PIL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = Image.fromarray(to_uint8(image))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        pil.save(path, quality=quality)
    else:
        pil.save(path)


def save_mask(out: Path, name: str, mask: np.ndarray) -> str:
    """Save a boolean mask as a 0/255 PNG under ``synthetic_truth/masks``; returns its relative path."""
    rel = f"{TRUTH_DIR}/masks/{name}.png"
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    return rel


def box_records(regions: list) -> list[dict[str, Any]]:
    """JSON-able boxes of drawn regions."""
    return [
        {"finding": r.finding, "x": r.box[0], "y": r.box[1], "width": r.box[2], "height": r.box[3]}
        for r in regions
    ]


def write_truth(out: Path, dataset: str, seed: int, n: int, image_size: int, images: dict[str, Any]) -> Path:
    """Write the sidecar (keys sorted, so identical seeds give identical bytes)."""
    payload = {
        "format": TRUTH_FORMAT,
        "dataset": dataset,
        "seed": seed,
        "n": n,
        "image_size": image_size,
        "note": "ground truth of synthetic data; not part of the real dataset layout",
        "images": images,
    }
    path = out / TRUTH_FILE
    path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    return path


def image_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """Independent generator per (seed, stream, item), so items do not depend on each other's draws.

    ``index`` -1 is the stream's planning generator (who has which studies, splits).
    """
    return np.random.default_rng((seed, stream, index + 1))


def labels_json(labels: dict[str, float | None]) -> dict[str, float | None]:
    """Label values as plain floats / None for JSON."""
    return {k: (None if v is None else float(v)) for k, v in labels.items()}
