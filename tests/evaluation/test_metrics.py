"""Classification metrics equal scikit-learn / hand computation; the bootstrap is deterministic and exact."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from medpeft.errors import ConfigError, DataError
from medpeft.evaluation.metrics import auroc, classification_metrics

CLASSES5 = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _multiclass(n: int = 200, c: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 1.0
    return y, _softmax(np.round(logits, 1))  # rounding makes tied scores


def _plain_types(obj) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _plain_types(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain_types(v) for v in obj)
    return obj is None or type(obj) in (int, float, str, bool)


def test_multiclass_equals_sklearn():
    y, p = _multiclass()
    m = classification_metrics(y, p, "multiclass", CLASSES5, n_bootstrap=0)
    pred = p.argmax(1)
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-12)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    f1 = skm.f1_score(y, pred, average="macro", labels=range(5), zero_division=0)
    assert m["f1"] == pytest.approx(f1, abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=1e-12)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=range(5)).tolist()
    for c, name in enumerate(CLASSES5):
        assert m["per_class_auroc"][name] == pytest.approx(skm.roc_auc_score(y == c, p[:, c]), abs=1e-12)
    per_f1 = skm.f1_score(y, pred, average=None, labels=range(5), zero_division=0)
    assert list(m["per_class_f1"].values()) == pytest.approx(per_f1.tolist(), abs=1e-12)
    assert m["n"] == 200 and m["class_counts"] == {n: int((y == i).sum()) for i, n in enumerate(CLASSES5)}
    assert m["auroc_classes_skipped"] == [] and m["threshold"] is None
    assert m["ci"]["n_used"] == 0 and m["ci"]["auroc"] is None


def test_binary_equals_sklearn_for_both_prob_layouts():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 150)
    pos = np.clip(np.round(0.35 * y + 0.65 * rng.random(150), 2), 0, 1)
    names = ["No Finding", "pneumonia"]
    m1 = classification_metrics(y, pos, "binary", names, n_bootstrap=50)
    m2 = classification_metrics(y, np.stack([1 - pos, pos], 1), "binary", names, n_bootstrap=50)
    assert m1 == m2
    pred = (pos >= 0.5).astype(int)
    assert m1["auroc"] == pytest.approx(skm.roc_auc_score(y, pos), abs=1e-12)
    assert m1["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert m1["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-12)
    assert m1["per_class_f1"]["pneumonia"] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
    assert m1["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=1e-12)
    assert m1["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert list(m1["per_class_auroc"]) == ["pneumonia"]
    assert m1["threshold"] == 0.5


def test_binary_threshold_is_inclusive():
    m = classification_metrics([0, 1], [0.2, 0.5], "binary", ["neg", "pos"], n_bootstrap=0)
    assert m["accuracy"] == 1.0


def test_multilabel_equals_sklearn_and_reports_skipped_labels():
    rng = np.random.default_rng(2)
    names = [f"finding {i}" for i in range(6)]
    y = (rng.random((120, 6)) < 0.3).astype(int)
    y[:, 4] = 0  # no positives: no AUROC
    y[:, 5] = 1  # no negatives: no AUROC
    s = np.round(np.clip(0.3 * y + 0.7 * rng.random((120, 6)), 0, 1), 2)
    m = classification_metrics(y, s, "multilabel", names, n_bootstrap=0)
    pred = (s >= 0.5).astype(int)
    assert m["auroc_classes_skipped"] == ["finding 4", "finding 5"]
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y[:, :4], s[:, :4], average="macro"), abs=1e-12)
    assert m["per_class_auroc"]["finding 4"] is None
    assert m["accuracy"] == pytest.approx(1 - skm.hamming_loss(y, pred), abs=1e-12)
    assert m["subset_accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        balanced = np.mean([skm.balanced_accuracy_score(y[:, c], pred[:, c]) for c in range(6)])
    assert m["balanced_accuracy"] == pytest.approx(balanced, abs=1e-12)
    tn, fp, fn, tp = skm.confusion_matrix(y[:, 0], pred[:, 0], labels=[0, 1]).ravel()
    assert m["per_class_confusion"]["finding 0"] == [[tn, fp], [fn, tp]]
    assert m["confusion_matrix"] is None
    assert m["class_counts"]["finding 5"] == 120


def test_multiclass_absent_class_is_skipped_not_fatal():
    y, p = _multiclass(n=100)
    keep = y != 3
    m = classification_metrics(y[keep], p[keep], "multiclass", CLASSES5, n_bootstrap=0)
    assert m["auroc_classes_skipped"] == ["Edema"]
    per_class = [skm.roc_auc_score(y[keep] == c, p[keep, c]) for c in (0, 1, 2, 4)]
    assert m["auroc"] == pytest.approx(np.mean(per_class), abs=1e-12)


def test_perfect_and_inverse_predictors():
    y = np.array([0, 0, 1, 1, 1, 0])
    perfect = classification_metrics(y, y * 0.9 + 0.05, "binary", ["neg", "pos"], n_bootstrap=20)
    assert perfect["auroc"] == 1.0 and perfect["accuracy"] == 1.0 and perfect["f1"] == 1.0
    assert perfect["balanced_accuracy"] == 1.0
    inverse = classification_metrics(y, 1 - (y * 0.9 + 0.05), "binary", ["neg", "pos"], n_bootstrap=20)
    assert inverse["auroc"] == 0.0 and inverse["accuracy"] == 0.0
    yc = np.array([0, 1, 2, 0, 1, 2])
    onehot = np.eye(3)[yc] * 0.8 + 0.2 / 3
    assert classification_metrics(yc, onehot, "multiclass", ["a", "b", "c"], n_bootstrap=0)["auroc"] == 1.0
    wrong = np.eye(3)[(yc + 1) % 3] * 0.8 + 0.2 / 3
    worst = classification_metrics(yc, wrong, "multiclass", ["a", "b", "c"], n_bootstrap=0)
    assert worst["accuracy"] == 0.0 and worst["f1"] == 0.0


def test_bootstrap_deterministic_brackets_point_and_matches_explicit_resampling():
    y, p = _multiclass(n=80, c=3, seed=3)
    names = ["a", "b", "c"]
    m = classification_metrics(y, p, "multiclass", names, n_bootstrap=100, seed=7)
    assert m == classification_metrics(y, p, "multiclass", names, n_bootstrap=100, seed=7)
    other = classification_metrics(y, p, "multiclass", names, n_bootstrap=100, seed=8)
    assert other["ci"]["auroc"] != m["ci"]["auroc"]
    for key in ("accuracy", "auroc", "f1", "balanced_accuracy"):
        low, high = m["ci"][key]
        assert low <= m[key] <= high
    # the same resamples drawn by hand and scored by scikit-learn give the same percentile interval
    rng = np.random.default_rng(7)
    aurocs, accuracies = [], []
    for _ in range(100):
        idx = rng.integers(0, 80, size=80)
        if len(np.unique(y[idx])) < 3:
            continue
        aurocs.append(skm.roc_auc_score(y[idx], p[idx], multi_class="ovr"))
        accuracies.append(skm.accuracy_score(y[idx], p[idx].argmax(1)))
    assert m["ci"]["n_used"] == len(aurocs)
    assert m["ci"]["auroc"] == pytest.approx(np.percentile(aurocs, [2.5, 97.5]).tolist(), abs=1e-12)
    assert m["ci"]["accuracy"] == pytest.approx(np.percentile(accuracies, [2.5, 97.5]).tolist(), abs=1e-12)
    assert m["ci"]["level"] == 0.95 and m["ci"]["seed"] == 7


def test_bootstrap_skips_one_class_resamples_and_counts_them():
    y = np.array([1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.1, 0.2, 0.3, 0.4, 0.6])
    m = classification_metrics(y, p, "binary", ["neg", "pos"], n_bootstrap=300, seed=0)
    rng = np.random.default_rng(0)
    used = sum(1 for _ in range(300) if 0 < y[rng.integers(0, 6, size=6)].sum() < 6)
    assert m["ci"]["n_used"] == used < 300
    assert m["ci"]["n_bootstrap"] == 300


def test_output_is_json_serialisable_plain_types_and_accepts_tensors():
    y, p = _multiclass(n=60)
    m = classification_metrics(
        torch.tensor(y), torch.tensor(p, dtype=torch.float32), "multiclass", CLASSES5, n_bootstrap=30
    )
    json.dumps(m, allow_nan=False)
    assert _plain_types(m)
    ref = classification_metrics(y, p.astype(np.float32), "multiclass", CLASSES5, n_bootstrap=30)
    assert m["auroc"] == pytest.approx(ref["auroc"], abs=1e-9)


def test_public_auroc_matches_sklearn_with_weights_and_none_for_one_class():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 50)
    s = np.round(rng.random(50), 1)
    w = rng.integers(0, 4, 50)
    assert auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert auroc(y, s, sample_weight=w) == pytest.approx(skm.roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    assert auroc(np.ones(5), np.arange(5.0)) is None


@pytest.mark.parametrize(
    ("y", "p", "task", "names", "error", "match"),
    [
        (
            [0, 1, 1],
            [0.1, 0.9],
            "binary",
            ["n", "p"],
            DataError,
            "length mismatch: y_true has 3 rows but probs has 2",
        ),
        (
            [0, 1, 2],
            np.full((3, 4), 0.25),
            "multiclass",
            ["a", "b", "c"],
            DataError,
            "probs has shape \\[3, 4\\] but 3 class names",
        ),
        (
            [1, 1, 1],
            [0.2, 0.6, 0.9],
            "binary",
            ["No Finding", "pneumonia"],
            DataError,
            "all 3 labels are 'pneumonia'",
        ),
        (
            [2, 2],
            [[0.1, 0.1, 0.8], [0.2, 0.2, 0.6]],
            "multiclass",
            ["a", "b", "c"],
            DataError,
            "at least two classes",
        ),
        (
            [[0, 1], [0, 1]],
            [[0.2, 0.3], [0.1, 0.9]],
            "multilabel",
            ["x", "y"],
            DataError,
            "x: no positives; y: all positive",
        ),
        (
            [0, 1],
            [0.1, float("nan")],
            "binary",
            ["n", "p"],
            DataError,
            "NaN or infinite values \\(first in row 1\\)",
        ),
        ([0, 1], [[2.0, -1.0], [0.0, 1.0]], "multiclass", ["a", "b"], DataError, "were logits passed"),
        ([0, 1], [[0.3, 0.3], [0.0, 1.0]], "multiclass", ["a", "b"], DataError, "row 0 sums to 0.6"),
        (
            [0, 5],
            [[0.5, 0.5], [0.0, 1.0]],
            "multiclass",
            ["a", "b"],
            DataError,
            "y_true\\[1\\] = 5 is not a class index",
        ),
        ([0, 2], [0.1, 0.9], "binary", ["n", "p"], DataError, "only 0 and 1"),
        ([0, 1], [0.1, 0.9], "binary", ["a", "b", "c"], ConfigError, "exactly 2 class names"),
        ([0, 1], [0.1, 0.9], "regression", ["n", "p"], ConfigError, "unknown task 'regression'"),
        ([0, 1], [0.1, 0.9], "binary", ["n", "n"], ConfigError, "duplicates"),
        ([], np.zeros((0,)), "binary", ["n", "p"], DataError, "no samples"),
    ],
)
def test_errors_name_the_problem(y, p, task, names, error, match):
    with pytest.raises(error, match=match):
        classification_metrics(np.asarray(y), np.asarray(p), task, names, n_bootstrap=0)


def test_bad_bootstrap_settings():
    with pytest.raises(ConfigError, match="n_bootstrap"):
        classification_metrics([0, 1], [0.2, 0.8], "binary", ["n", "p"], n_bootstrap=-1)
    with pytest.raises(ConfigError, match="confidence level"):
        classification_metrics([0, 1], [0.2, 0.8], "binary", ["n", "p"], ci=95)
