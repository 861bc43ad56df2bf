"""Helpers shared by the training tests (not a test module)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

TRAIN_SCRIPT = Path(__file__).with_name("killable_train.py")


def small_manifest(prepared: Path, out: Path, n: int) -> Path:
    """The first ``n`` training rows as a stand-alone prepared folder, with its own copies of the images
    (so a test may damage them)."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    df = pd.read_csv(prepared / "train.csv", dtype=str, keep_default_na=False).head(n)
    assert len(df) == n, f"the synthetic training split has only {len(df)} rows"
    images = []
    for i, rel in enumerate(df["image"]):
        src = prepared / rel
        images.append(f"images/{i:03d}{src.suffix}")
        shutil.copyfile(src, out / images[-1])
    df["image"] = images
    df.to_csv(out / "train.csv", index=False)
    info = json.loads((prepared / "dataset.json").read_text())
    info["splits"] = {"train": "train.csv"}
    (out / "dataset.json").write_text(json.dumps(info))
    return out


@contextmanager
def one_thread() -> Iterator[None]:
    """Run with one torch intra-op thread (results depend on the thread count; see conftest)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
