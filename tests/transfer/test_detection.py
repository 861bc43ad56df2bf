"""Detection fine-tuning on the tiny backbone: learns, scores every image, checks boxes, zero-shot baseline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from finetune_fixtures import make_dataset

from medpeft.errors import DataError
from medpeft.transfer.detection import DetectionTask
from medpeft.transfer.detection_head import SimplePyramid, build_detector
from medpeft.transfer.finetune_loop import TEST_METRICS, LoopConfig, evaluate, run_finetune

SETTINGS = {"epochs": 5, "batch_size": 8, "lr": 1e-3, "checkpoint_every": 100}


@pytest.fixture(scope="module")
def last_block(tiny_encoder):
    return tiny_encoder.with_blocks([len(tiny_encoder.trunk.blocks)])


@pytest.fixture(scope="module")
def trained(last_block, blob_data, tmp_path_factory):
    torch.set_num_threads(1)
    task = DetectionTask(last_block, blob_data, fpn_channels=32, seed=0, overlays=2)
    before = evaluate(task, task.test_set)
    out = tmp_path_factory.mktemp("det") / "run"
    result = run_finetune(task, LoopConfig(out_dir=out, **SETTINGS), {"test": "detection"})
    return out, before, result


def test_pyramid_strides_and_shapes(last_block) -> None:
    pyramid = SimplePyramid(last_block, out_channels=16)
    feats = pyramid(torch.randn(2, 3, 64, 64))
    assert pyramid.strides == (4.0, 8.0, 16.0)
    assert [tuple(f.shape) for f in feats.values()] == [(2, 16, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4)]
    assert not any(k.startswith("_frozen") for k in pyramid.state_dict())  # the encoder is not saved


@pytest.mark.parametrize("head", ["retinanet", "fcos"])
def test_heads_train_and_predict(last_block, head: str) -> None:
    from medpeft.transfer.detection_head import DetectionModel

    model = DetectionModel(build_detector(last_block, head=head, out_channels=32))
    loss = model(torch.randn(2, 3, 64, 64), [torch.tensor([[8.0, 8.0, 30.0, 40.0]]), torch.zeros(0, 4)])
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert set(out[0]) == {"boxes", "scores", "labels"}


def test_finetuning_beats_the_untrained_head(trained) -> None:
    out, before, result = trained
    after = result["metrics"]
    assert after["map"] > before["map"] + 0.4, (before, after)
    assert after["n_images_scored"] == after["n_images"] == 12  # negatives and images without boxes count
    assert after["mgca_compat"] is False and after["n_negative_images"] > 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 12
    for row in rows:
        for x, y, w, h in json.loads(row["pred_boxes"]):
            assert w >= 0 and h >= 0 and x >= -1 and y >= -1 and x + w <= 65 and y + h <= 65
        assert len(json.loads(row["pred_boxes"])) == len(json.loads(row["pred_scores"]))
    assert json.loads((out / TEST_METRICS).read_text())["metrics"] == after


def test_mgca_compat_scores_fewer_images(trained, last_block, blob_data) -> None:
    out, _, _ = trained
    task = DetectionTask(last_block, blob_data, fpn_channels=32, seed=0, mgca_compat=True)
    task.model.load_state_dict(torch.load(out / "best.pt", weights_only=False)["head"])
    m = evaluate(task, task.test_set)
    assert m["mgca_compat"] is True and m["n_images_scored"] < m["n_images"]


def test_zero_shot_map_is_scored(last_block, blob_data, tmp_path) -> None:
    from medpeft.transfer.zero_shot_map import boxes_from_map, run_zero_shot_map

    boxes, scores = boxes_from_map(torch.tensor([[0.9, 0.0, 0.0], [0.0, 0.0, 0.8], [0.0, 0.7, 0.8]]), 0.5, 30)
    assert boxes.tolist() == [[0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 30.0, 30.0]]
    assert scores.tolist() == pytest.approx([0.9, 0.8])
    result = run_zero_shot_map(last_block, "detection", blob_data, tmp_path / "zs", overlays=1)
    m = result["metrics"]
    assert m["n_images_scored"] == 12 and m["map"] is not None and 0.0 <= m["map"] <= 1.0
    assert len(result["outputs"]["overlays"]) == 1


def _rewrite_boxes(data: Path, split: str, line: int, boxes: str, drop_size: bool = False) -> None:
    path = data / f"{split}.csv"
    rows = list(csv.reader(path.open()))
    rows[line - 1][2] = boxes
    if drop_size:
        rows = [r[:3] for r in rows]
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


@pytest.mark.parametrize(
    "boxes,drop_size,message",
    [
        (
            "[[50, 10, 20, 20]]",
            False,
            r"test\.csv line 3: box \[50\.0, 10\.0, 20\.0, 20\.0\] lies outside the 64x64 image",
        ),
        (
            "[[50, 10, 20, 20]]",
            True,
            r"test\.csv line 3: box \[50\.0, 10\.0, 20\.0, 20\.0\] lies outside the 64x64 image",
        ),
        (
            "[[10, 10, -5, 20]]",
            False,
            r"test\.csv line 3: box \[10, 10, -5, 20\] has a negative position or a non-positive size",
        ),
        ("[[-3, 10, 5, 20]]", True, r"test\.csv line 3: box \[-3, 10, 5, 20\] has a negative position"),
    ],
)
def test_bad_boxes_are_named(last_block, tmp_path, boxes: str, drop_size: bool, message: str) -> None:
    data = make_dataset(tmp_path / "d", n={"train": 3, "validate": 2, "test": 3})
    _rewrite_boxes(data, "test", 3, boxes, drop_size)
    with pytest.raises(DataError, match=message):
        DetectionTask(last_block, data, fpn_channels=32)
