"""Plots write complete, readable PNGs atomically; bad inputs are named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from medpeft.errors import DataError
from medpeft.evaluation.plots import _roc_points, save_confusion_matrix, save_overlay, save_roc_curves


def _assert_png(path, min_size=(100, 100)) -> Image.Image:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        assert len(np.unique(np.asarray(image.convert("L")))) > 2  # something was drawn
        return image


def _no_temporaries(folder) -> None:
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_roc_curves_for_each_task(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    logits = rng.normal(size=(60, 3))
    logits[np.arange(60), y] += 1
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    out = save_roc_curves(
        y, probs, "multiclass", ["a", "b", "c"], tmp_path / "nested" / "roc.png", title="5x200"
    )
    _assert_png(out)
    _no_temporaries(out.parent)

    yb = rng.integers(0, 2, 40)
    _assert_png(
        save_roc_curves(yb, rng.random(40), "binary", ["No Finding", "pneumonia"], tmp_path / "b.png")
    )

    ym = (rng.random((40, 3)) < 0.4).astype(int)
    ym[:, 2] = 0  # skipped in the plot and named in the title
    _assert_png(save_roc_curves(ym, rng.random((40, 3)), "multilabel", ["x", "y", "z"], tmp_path / "m.png"))


def test_roc_curve_area_equals_auroc():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 80)
    s = np.round(rng.random(80), 1)  # ties
    fpr, tpr = _roc_points(y.astype(bool), s)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_roc_curves_validate_inputs(tmp_path):
    with pytest.raises(DataError, match="length mismatch"):
        save_roc_curves([0, 1, 1], [0.2, 0.8], "binary", ["n", "p"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_confusion_matrix_png(tmp_path):
    out = save_confusion_matrix([[5, 1, 0], [2, 7, 1], [0, 0, 0]], ["a", "b", "c"], tmp_path / "cm.png")
    _assert_png(out)
    with pytest.raises(DataError, match=r"shape \[2, 2\] but 3 class names"):
        save_confusion_matrix([[1, 0], [0, 1]], ["a", "b", "c"], tmp_path / "bad.png")


def test_overlay_with_heat_grid_mask_and_boxes(tmp_path):
    rng = np.random.default_rng(2)
    image = Image.fromarray((rng.random((224, 224)) * 255).astype(np.uint8), mode="L")
    heat = rng.random((14, 14))
    mask = np.zeros((224, 224), dtype=np.uint8)
    mask[60:120, 80:150] = 1
    boxes = {"ground truth": [[80, 60, 150, 120]], "predicted": [[70, 50, 160, 130]]}
    out = save_overlay(
        image, heat, tmp_path / "overlays" / "img0.png", boxes=boxes, mask=mask, title="pneumothorax"
    )
    _assert_png(out)
    _no_temporaries(out.parent)


def test_overlay_accepts_arrays_and_no_heat(tmp_path):
    rgb = np.random.default_rng(3).random((120, 160, 3))  # float HWC in [0, 1]
    _assert_png(save_overlay(rgb, None, tmp_path / "a.png", boxes=[[10, 10, 30, 40]], box_format="xywh"))
    normalised = np.random.default_rng(4).normal(size=(64, 64))  # outside [0, 1]: stretched for display
    _assert_png(save_overlay(normalised, np.ones((64, 64)), tmp_path / "b.png"), min_size=(50, 50))


def test_overlay_errors(tmp_path):
    image = np.zeros((32, 32), dtype=np.uint8)
    with pytest.raises(DataError, match=r"mask has shape \[16, 16\] but the image is 32x32"):
        save_overlay(image, None, tmp_path / "x.png", mask=np.zeros((16, 16)))
    with pytest.raises(DataError, match="negative width or height"):
        save_overlay(image, None, tmp_path / "x.png", boxes=[[10, 10, 5, 20]])
    with pytest.raises(DataError, match="heat contains NaN"):
        save_overlay(image, np.full((4, 4), np.nan), tmp_path / "x.png")
    with pytest.raises(DataError, match="channels last"):
        save_overlay(np.zeros((3, 32, 32)), None, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
