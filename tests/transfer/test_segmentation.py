"""Segmentation fine-tuning on the tiny backbone: learns, resumes exactly, scores the zero-shot baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from finetune_fixtures import make_dataset
from PIL import Image

from medpeft.errors import DataError, OutputExistsError
from medpeft.transfer.finetune_loop import BEST, HISTORY, TEST_METRICS, LoopConfig, evaluate, run_finetune
from medpeft.transfer.segmentation import SegmentationTask
from medpeft.transfer.segmentation_decoder import ProgressiveDecoder

SETTINGS = {"epochs": 5, "batch_size": 8, "lr": 3e-3, "checkpoint_every": 3}


def _task(encoder, data: Path) -> SegmentationTask:
    return SegmentationTask(encoder, data, decoder_width=64, seed=0, overlays=2)


@pytest.fixture(scope="module")
def trained(tiny_encoder, blob_data, tmp_path_factory):
    """One uninterrupted run, and the untrained decoder's test metrics (same seed: same initial weights)."""
    torch.set_num_threads(1)
    task = _task(tiny_encoder, blob_data)
    before = evaluate(task, task.test_set)
    out = tmp_path_factory.mktemp("seg") / "run"
    result = run_finetune(task, LoopConfig(out_dir=out, **SETTINGS), {"test": "segmentation"})
    return out, before, result


@pytest.mark.parametrize("patch,levels,size", [(8, 4, 64), (16, 4, 224), (14, 4, 224), (16, 1, 96)])
def test_decoder_output_is_full_resolution(patch: int, levels: int, size: int) -> None:
    decoder = ProgressiveDecoder(32, levels, patch, width=32)
    grid = size // patch
    logits = decoder([torch.randn(2, 32, grid, grid) for _ in range(levels)], size)
    assert logits.shape == (2, 1, size, size)


def test_finetuning_beats_the_untrained_decoder(trained) -> None:
    out, before, result = trained
    after = result["metrics"]
    assert after["dice_mgca"] > before["dice_mgca"] + 0.4, (before, after)
    assert after["dice_foreground"] > before["dice_foreground"] + 0.4, (before, after)
    assert after["dice_foreground"] > 0.7
    written = json.loads((out / TEST_METRICS).read_text())
    assert written["metrics"] == after and written["selection_metric"] == "dice_mgca"
    assert len((out / "per_image.csv").read_text().splitlines()) == 1 + 12
    assert len(list((out / "overlays").glob("*.png"))) == 2


def test_resume_after_a_stop_is_bit_for_bit(trained, tiny_encoder, blob_data, tmp_path) -> None:
    reference, _, expected = trained
    out = tmp_path / "run"
    stopped = run_finetune(
        _task(tiny_encoder, blob_data),
        LoopConfig(out_dir=out, stop_after_steps=7, **SETTINGS),
        {"test": "segmentation"},
    )
    assert stopped == {"stopped": True, "step": 7}
    assert not (out / TEST_METRICS).exists()
    with pytest.raises(OutputExistsError, match="--resume"):
        run_finetune(
            _task(tiny_encoder, blob_data), LoopConfig(out_dir=out, **SETTINGS), {"test": "segmentation"}
        )
    resumed = run_finetune(
        _task(tiny_encoder, blob_data),
        LoopConfig(out_dir=out, resume=True, **SETTINGS),
        {"test": "segmentation"},
    )
    assert resumed["metrics"] == expected["metrics"]
    assert json.loads((out / HISTORY).read_text()) == json.loads((reference / HISTORY).read_text())
    mine = torch.load(out / BEST, weights_only=False)["head"]
    theirs = torch.load(reference / BEST, weights_only=False)["head"]
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_resume_with_accumulation_and_augmentation(tiny_encoder, blob_data, tmp_path) -> None:
    """Seeded augmentation and gradient accumulation survive a stop between optimizer steps."""
    settings = {"epochs": 2, "batch_size": 4, "grad_accum": 2, "lr": 3e-3, "checkpoint_every": 2}

    def task() -> SegmentationTask:
        return SegmentationTask(tiny_encoder, blob_data, decoder_width=16, seed=3, augment=True, overlays=0)

    whole = run_finetune(task(), LoopConfig(out_dir=tmp_path / "a", **settings), {})
    run_finetune(task(), LoopConfig(out_dir=tmp_path / "b", stop_after_steps=3, **settings), {})
    resumed = run_finetune(task(), LoopConfig(out_dir=tmp_path / "b", resume=True, **settings), {})
    assert whole["steps"] == 8 and resumed["metrics"] == whole["metrics"]
    assert (tmp_path / "a" / HISTORY).read_text() == (tmp_path / "b" / HISTORY).read_text()


def test_resume_refuses_other_settings(trained, tiny_encoder, blob_data) -> None:
    out, _, _ = trained
    changed = {**SETTINGS, "lr": 1e-3}
    with pytest.raises(Exception, match=r"settings differ.*lr"):
        run_finetune(
            _task(tiny_encoder, blob_data),
            LoopConfig(out_dir=out, resume=True, **changed),
            {"test": "segmentation"},
        )


def test_zero_shot_map_is_scored(tiny_encoder, blob_data, tmp_path) -> None:
    from medpeft.transfer.zero_shot_map import run_zero_shot_map

    result = run_zero_shot_map(tiny_encoder, "segmentation", blob_data, tmp_path / "zs", overlays=2)
    m = result["metrics"]
    assert m["n_images"] == 12 and 0.0 <= m["dice_mgca"] <= 1.0 and 0.0 <= m["dice_foreground"] <= 1.0
    assert len(result["threshold_search"]) > 1
    assert result["threshold"] == max(result["threshold_search"], key=lambda r: r["dice_mgca"])["threshold"]
    assert (tmp_path / "zs" / TEST_METRICS).is_file() and len(result["outputs"]["overlays"]) == 2


def test_mask_size_mismatch_is_named(tiny_encoder, tmp_path) -> None:
    data = make_dataset(tmp_path / "d", n={"train": 3, "validate": 2, "test": 2})
    Image.fromarray(np.zeros((32, 48), dtype=np.uint8)).save(data / "masks" / "train_001.png")
    with pytest.raises(
        DataError, match=r"train\.csv line 3: mask masks/train_001\.png is 48x32 but image .* is 64x64"
    ):
        SegmentationTask(tiny_encoder, data)


def test_missing_mask_column_is_named(tiny_encoder, tmp_path) -> None:
    data = make_dataset(tmp_path / "d", n={"train": 3, "validate": 2, "test": 2})
    lines = (data / "validate.csv").read_text().splitlines()
    (data / "validate.csv").write_text("\n".join(line.split(",", 1)[0] for line in lines) + "\n")
    with pytest.raises(DataError, match=r"validate\.csv lacks column\(s\) 'mask'"):
        SegmentationTask(tiny_encoder, data)


def test_missing_fraction_manifest_is_named(tiny_encoder, blob_data) -> None:
    with pytest.raises(DataError, match=r"train_fraction_0\.01\.csv not found.*--fraction 0\.01"):
        SegmentationTask(tiny_encoder, blob_data, fraction=0.01)
