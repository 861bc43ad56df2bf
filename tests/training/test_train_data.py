"""Training data: labels travel with their sample, unreadable images become reports, text padding modes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medpeft.data.labels import CHEXPERT_LABELS
from medpeft.errors import DataError
from medpeft.training.data import (
    BadSample,
    Collate,
    ManifestDataset,
    read_training_manifest,
    resolve_manifest,
)


def test_each_sample_carries_its_own_row_labels(mimic, pristine_tiny):
    manifest = read_training_manifest(resolve_manifest(mimic, ("train",), "training data"))
    assert manifest.label_columns == list(CHEXPERT_LABELS)
    raw = pd.read_csv(mimic / "train.csv", dtype=str, keep_default_na=False)
    ds = ManifestDataset(manifest, pristine_tiny.preprocess_train)
    collate = Collate(pristine_tiny.tokenizer, "longest", pristine_tiny.context_length)
    order = list(np.random.default_rng(0).permutation(len(ds))[:5])
    batch = collate([ds[(int(i), 123)] for i in order])
    for row, i in enumerate(order):
        expected = raw.loc[int(i), list(CHEXPERT_LABELS)].astype(float).to_numpy()
        assert np.array_equal(batch["labels"][row].numpy(), expected)  # by the sample, not by position
        assert batch["indices"][row] == i
    assert batch["pixel_values"].shape == (5, 3, pristine_tiny.image_size, pristine_tiny.image_size)
    assert batch["input_ids"].shape[1] <= pristine_tiny.context_length
    # the same (index, seed) gives the same augmented pixels; another seed another crop
    assert torch.equal(ds[(0, 5)]["pixel_values"], ds[(0, 5)]["pixel_values"])


def test_exact_path_pads_to_the_full_context_and_fast_path_to_the_longest(mimic, pristine_tiny):
    manifest = read_training_manifest(mimic / "train.csv")
    ds = ManifestDataset(manifest, pristine_tiny.preprocess_train)
    exact = Collate(pristine_tiny.tokenizer, "max_length", 48)([ds[(0, 0)], ds[(1, 0)]])
    assert exact["input_ids"].shape == (2, 48)
    samples = [dict(ds[(i, 0)], text=t) for i, t in enumerate(["No effusion.", "Heart size is normal."])]
    fast = Collate(pristine_tiny.tokenizer, "longest", 64)(samples)
    n = int((fast["input_ids"] != pristine_tiny.pad_id).sum(dim=1).max())
    assert fast["input_ids"].shape[1] == n < 48
    short = Collate(pristine_tiny.tokenizer, "longest", 64, min_length=12)(samples[:1])  # room for top-k
    assert short["input_ids"].shape[1] == 12 and (short["input_ids"][0, 6:] == pristine_tiny.pad_id).all()


def test_unreadable_images_are_dropped_by_the_collate_and_named(eight, pristine_tiny):
    manifest = read_training_manifest(eight / "train.csv")
    bad_path = manifest.images[2]
    with open(bad_path, "wb") as fh:
        fh.write(b"\xff\xd8\xff not really a jpeg")
    ds = ManifestDataset(manifest, pristine_tiny.preprocess_train)
    sample = ds[(2, 0)]
    assert isinstance(sample, BadSample) and sample.path == bad_path
    batch = Collate(pristine_tiny.tokenizer, "longest", 64)([ds[(i, 0)] for i in range(4)])
    assert batch["indices"].tolist() == [0, 1, 3] and batch["pixel_values"].shape[0] == 3
    assert batch["bad"][0][0] == bad_path


def test_manifest_problems_are_named(tmp_path, eight):
    df = pd.read_csv(eight / "train.csv", dtype=str, keep_default_na=False)
    df.loc[1, "text"] = "  "
    df.to_csv(eight / "train.csv", index=False)
    with pytest.raises(DataError, match="line 3: empty 'text'"):
        read_training_manifest(eight / "train.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no train.csv"):
        resolve_manifest(tmp_path / "empty", ("train",), "training data")
