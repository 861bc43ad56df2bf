"""Every ``prepare`` on the synthetic raw layout of ``medpeft.data.synthetic``: a validated manifest
whose labels, boxes and masks agree with the synthetic ground truth (``synthetic_truth.json``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medpeft.data.labels import CHEXPERT_5X200_CLASSES, CHEXPERT_LABELS, LC25000_CLASSES, NIH_LABELS
from medpeft.data.manifest import read_dataset_info, read_manifest
from medpeft.data.prepare import prepare

synthetic = pytest.importorskip("medpeft.data.synthetic")

N = {"mimic-cxr": 24, "chexpert-5x200": 3, "rsna": 24, "siim": 24, "nih-cxr14": 24, "lc25000": 2, "mhist": 12}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return tmp_path_factory.mktemp("synth")


def _raw(root: Path, dataset: str) -> tuple[Path, dict]:
    raw = root / dataset
    if not raw.exists():
        synthetic.synthesize(dataset, raw, n=N[dataset], seed=3, image_size=64)
    return raw, json.loads((raw / "synthetic_truth.json").read_text())["images"]


def _prepared(root: Path, dataset: str, **kw) -> tuple[Path, dict, dict[str, pd.DataFrame]]:
    raw, truth = _raw(root, dataset)
    out = root / f"{dataset}-out-{len(list(root.iterdir()))}"
    prepare(dataset, raw, out, seed=0, progress=False, **kw)
    info = read_dataset_info(out)
    frames = {s: read_manifest(out / f, check_mask_sizes=info.has_mask) for s, f in info.splits.items()}
    for df in frames.values():
        df["key"] = [Path(os.path.relpath(p, raw)).as_posix() for p in df["image"]]
    return raw, truth, frames


def _disjoint(frames: dict[str, pd.DataFrame], column: str) -> None:
    sets = [set(df[column]) for df in frames.values()]
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            assert not sets[i] & sets[j], f"{column} in two splits"


def test_mimic_cxr(synth_root):
    raw, truth, frames = _prepared(synth_root, "mimic-cxr")
    split = pd.read_csv(raw / "mimic-cxr-2.0.0-split.csv", dtype=str).set_index("dicom_id")["split"]
    _disjoint(frames, "subject_id")
    for name, df in frames.items():
        assert len(df) and (df["text"].str.len() > 0).all()
        for _, row in df.iterrows():
            t = truth[row["key"]]
            assert t["view"] in ("PA", "AP") and split[row["image_id"]] == name
            assert str(t["study_id"]) == row["study_id"]
            expected = [1.0 if t["labels"][c] == 1.0 else 0.0 for c in CHEXPERT_LABELS]  # blank, -1 -> 0
            assert row[list(CHEXPERT_LABELS)].tolist() == expected


def test_chexpert_5x200(synth_root):
    _, truth, frames = _prepared(synth_root, "chexpert-5x200", n_per_class=3)
    df = frames["test"]
    assert len(df) == 15
    for _, row in df.iterrows():
        t = truth[row["key"]]
        assert t["view"] == "frontal" and row[t["kind"]] == 1 and row[list(CHEXPERT_5X200_CLASSES)].sum() == 1


def test_rsna_boxes_and_split(synth_root):
    _, truth, frames = _prepared(synth_root, "rsna")
    _disjoint(frames, "subject_id")
    for df in frames.values():
        assert set(df["Pneumonia"]) == {0.0, 1.0}
        for _, row in df.iterrows():
            t = truth[row["key"]]
            assert row["Pneumonia"] == t["labels"]["Target"]
            expected = sorted([b["x"], b["y"], b["width"], b["height"]] for b in t["boxes"])
            assert sorted(row["boxes"]) == expected


def test_rsna_cached_boxes_scale(synth_root):
    _, truth, frames = _prepared(synth_root, "rsna", image_size=32)
    raw_frames = _prepared(synth_root, "rsna")[2]
    cached = pd.concat(frames.values()).set_index("subject_id")
    for _, row in pd.concat(raw_frames.values()).iterrows():
        scaled = [[v / 2 for v in b] for b in row["boxes"]]  # 64 px -> 32 px
        assert np.allclose(
            np.array(cached.loc[row["subject_id"], "boxes"]).reshape(-1, 4), np.array(scaled).reshape(-1, 4)
        )


def test_siim_masks_and_split(synth_root):
    raw, truth, frames = _prepared(synth_root, "siim", fractions=[0.1, 0.5, 1.0])
    _disjoint(frames, "image_id")
    for df in frames.values():
        assert set(df["Pneumothorax"]) == {0.0, 1.0}
        for _, row in df.iterrows():
            t = truth[row["key"]]
            mine = np.asarray(Image.open(row["mask"])) > 0
            assert row["Pneumothorax"] == t["labels"]["Pneumothorax"] == int(mine.any())
            if t["mask"]:
                assert np.array_equal(mine, np.asarray(Image.open(raw / t["mask"])) > 0)
    out = Path(frames["train"]["mask"].iat[0]).parents[1]
    sets = [set(read_manifest(out / f"train_fraction_{f:g}.csv")["image_id"]) for f in (0.1, 0.5, 1.0)]
    assert sets[0] <= sets[1] <= sets[2] == set(frames["train"]["image_id"])


def test_nih_cxr14(synth_root):
    raw, truth, frames = _prepared(synth_root, "nih-cxr14")
    test_list = set((raw / "test_list.txt").read_text().split())
    assert set(frames["test"]["image_id"]) == test_list
    _disjoint(frames, "subject_id")
    for df in frames.values():
        for _, row in df.iterrows():
            names = set(truth[row["key"]]["labels"]["Finding Labels"].split("|"))
            assert {c for c in NIH_LABELS if row[c] == 1} == names - {"No Finding"}


def test_lc25000_and_mhist(synth_root):
    _, truth, frames = _prepared(synth_root, "lc25000", image_size=32)
    assert len(frames["test"]) == 10 and (frames["test"][list(LC25000_CLASSES)].sum(axis=1) == 1).all()
    _, truth, frames = _prepared(synth_root, "mhist")
    for df in frames.values():
        for _, row in df.iterrows():
            assert row[truth[row["key"]]["labels"]["Majority Vote Label"]] == 1
