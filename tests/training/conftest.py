"""Fixtures of the training tests: synthetic MIMIC-CXR prepared by ``medpeft prepare``, and the tiny
backbone saved to a folder once (so every process, including killed-and-resumed subprocesses, sees
the same weights and the same tokenizer vocabulary)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from train_helpers import one_thread, small_manifest


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a machine shared with other jobs, two spinning OpenMP threads make the
    tiny model up to 100x slower; subprocesses get the same count, so numbers compare bit for bit."""
    with one_thread():
        yield


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    import medpeft

    folder = tmp_path_factory.mktemp("tiny_backbone")
    medpeft.load_backbone("tiny").save(folder)
    return folder


@pytest.fixture(scope="session")
def pristine_tiny(tiny_dir):
    import medpeft

    return medpeft.load_backbone(tiny_dir)


@pytest.fixture
def tiny(pristine_tiny):
    """A fresh copy per run: AceLoraModel injects LoRA into its backbone in place."""
    return copy.deepcopy(pristine_tiny)


@pytest.fixture(scope="session")
def mimic(tmp_path_factory) -> Path:
    """Synthetic MIMIC-CXR-JPG (64-pixel images) prepared into train/validate/test manifests."""
    from medpeft.data.prepare import prepare
    from medpeft.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("mimic")
    synthesize("mimic-cxr", root / "raw", n=40, seed=0, image_size=64)
    prepare("mimic-cxr", root / "raw", root / "prepared", progress=False)
    return root / "prepared"


@pytest.fixture
def eight(mimic, tmp_path) -> Path:
    """Eight training pairs: with batch 4 every sample is seen in each epoch."""
    return small_manifest(mimic, tmp_path / "eight", 8)
