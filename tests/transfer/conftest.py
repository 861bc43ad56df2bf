"""Fixtures for the fine-tuning tests: one tiny encoder and one small blob dataset per session.

Torch runs single-threaded here: on a shared 2-core machine, intra-op threads mostly fight each other,
and one thread also makes the CPU results bit-for-bit repeatable across runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from finetune_fixtures import make_dataset


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_encoder():
    from medpeft.transfer.encoders import build_encoder

    torch.set_num_threads(1)
    return build_encoder("tiny")


@pytest.fixture(scope="session")
def blob_data(tmp_path_factory) -> Path:
    """64-px images, a bright ellipse (mask + box) on 4 of 5 images; 32 train, 8 validate, 12 test."""
    return make_dataset(tmp_path_factory.mktemp("blobs"), n={"train": 32, "validate": 8, "test": 12})
