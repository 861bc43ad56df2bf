"""Classification metrics with percentile-bootstrap confidence intervals, for every zero-shot task.

Why this file computes the metrics itself instead of calling scikit-learn in a loop: a bootstrap needs the
same metrics on ~1000 resamples, and scikit-learn's ``roc_auc_score`` costs 10-20 ms per call (minutes on
NIH ChestX-ray14). Here every metric is a function of per-image *weights*: the point estimate uses weight 1
per image and a bootstrap resample uses each image's multiplicity in the resample (identical to duplicating
the rows). So the point estimate and its confidence interval come from one implementation each, which is
the project's only AUROC (the reference code had two that disagreed). The tests check every number against
scikit-learn (``roc_auc_score`` binary / ``multi_class="ovr"`` macro / multilabel macro, ``f1_score``,
``balanced_accuracy_score``, ``accuracy_score``, ``confusion_matrix``) on the point estimate and on
explicit resamples.

Definitions (all macro averages are unweighted means over classes):

* ``multiclass``: ``y_true`` [N] integer class indices, ``probs`` [N, C] rows summing to 1 (softmax).
  Prediction = argmax. AUROC = one-vs-rest per class, macro mean (== ``roc_auc_score(multi_class="ovr")``).
* ``binary``: ``y_true`` [N] in {0, 1} (1 = ``class_names[1]``, the positive class), ``probs`` [N] positive-class
  probability, or [N, 2] softmax rows (column 1 is used). Prediction = ``p >= threshold``. AUROC on the
  positive-class probability; F1 is the macro mean over both classes (the positive-class F1 is in
  ``per_class_f1``).
* ``multilabel``: ``y_true`` [N, C] in {0, 1}, ``probs`` [N, C] independent per-label scores in [0, 1].
  Prediction = ``p >= threshold`` per label. ``accuracy`` is the per-label accuracy averaged over labels
  (= 1 - Hamming loss); ``subset_accuracy`` is the exact-match ratio (all C labels right), which is harsh for
  14 findings and so reported separately. Balanced accuracy is per label (mean of sensitivity and specificity
  over the classes present) then averaged over labels.

A class whose one-vs-rest targets hold only one value has no AUROC: it is listed in
``auroc_classes_skipped`` and left out of the macro mean (if *no* class has both values a ``DataError``
explains why). F1 uses ``zero_division=0``. Bootstrap resamples in which any class that had an AUROC on
the full set loses all its positives or negatives are skipped (so every resample averages the same
classes); ``ci.n_used`` says how many were kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from medpeft.errors import ConfigError, DataError

Task = Literal["multiclass", "binary", "multilabel"]
TASKS: tuple[str, ...] = ("multiclass", "binary", "multilabel")

# Softmax outputs in float16/bfloat16 can miss 1.0 by ~1e-3; logits miss by far more.
_ROW_SUM_TOL = 2e-3
_RANGE_TOL = 1e-6


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """Accept numpy arrays, nested lists and torch tensors (any device/dtype) without importing torch."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()
        return x.numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} cannot be read as an array: {exc}") from exc


class RankedScores:
    """Score columns sorted once, so the (weighted) AUROC of every column costs O(N) per call.

    AUROC = P(score of a positive > score of a negative) + 0.5 * P(tie), the Mann-Whitney statistic, which is
    exactly the trapezoidal ROC area scikit-learn computes (ties included). With ``weights`` = multiplicities
    of a bootstrap resample it equals the AUROC of the resampled data, without re-sorting: for each positive
    the weight of the negatives below it (and tied with it) is read from a cumulative sum over the sorted
    negatives, at positions found once by ``searchsorted``.
    """

    def __init__(self, targets: np.ndarray, scores: np.ndarray) -> None:
        targets = np.asarray(targets, dtype=bool)
        scores = np.asarray(scores, dtype=np.float64)
        if targets.ndim == 1:
            targets, scores = targets[:, None], scores[:, None]
        n, k = scores.shape
        neg_images, pos_images, pos_columns, below, above_ties = [], [], [], [], []
        neg_starts = np.zeros(k + 1, dtype=np.int64)
        for col in range(k):
            negatives = np.flatnonzero(~targets[:, col])
            positives = np.flatnonzero(targets[:, col])
            order = np.argsort(scores[negatives, col], kind="stable")
            negatives = negatives[order]
            neg_sorted = scores[negatives, col]
            offset = neg_starts[col]
            below.append(offset + np.searchsorted(neg_sorted, scores[positives, col], side="left"))
            above_ties.append(offset + np.searchsorted(neg_sorted, scores[positives, col], side="right"))
            neg_images.append(negatives)
            pos_images.append(positives)
            pos_columns.append(np.full(positives.size, col, dtype=np.int64))
            neg_starts[col + 1] = offset + negatives.size
        self.n, self.k = n, k
        self._neg_images = np.concatenate(neg_images)
        self._neg_starts = neg_starts
        self._pos_images = np.concatenate(pos_images)
        self._pos_columns = np.concatenate(pos_columns)
        self._below = np.concatenate(below)  # index into the cumulative negative weights
        self._below_or_tied = np.concatenate(above_ties)

    def auroc(self, weights: np.ndarray | None = None) -> np.ndarray:
        """AUROC per column ([K] floats); NaN where a column lacks positives or negatives."""
        w = np.ones(self.n) if weights is None else np.asarray(weights, dtype=np.float64)
        cum_neg = np.concatenate(([0.0], np.cumsum(w[self._neg_images])))
        column_base = cum_neg[self._neg_starts[self._pos_columns]]
        strictly_below = cum_neg[self._below] - column_base
        tied = cum_neg[self._below_or_tied] - cum_neg[self._below]
        pos_w = w[self._pos_images]
        num = np.bincount(self._pos_columns, weights=pos_w * (strictly_below + 0.5 * tied), minlength=self.k)
        n_pos = np.bincount(self._pos_columns, weights=pos_w, minlength=self.k)
        n_neg = cum_neg[self._neg_starts[1:]] - cum_neg[self._neg_starts[:-1]]
        defined = (n_pos > 0) & (n_neg > 0)
        out = np.full(self.k, np.nan)
        out[defined] = num[defined] / (n_pos[defined] * n_neg[defined])
        return out


def auroc(y_true: Any, scores: Any, sample_weight: Any | None = None) -> float | None:
    """Binary AUROC of ``scores`` against 0/1 ``y_true``; ``None`` when only one class is present.

    The project's single AUROC: use it (or ``classification_metrics``) wherever an AUROC is reported.
    """
    y = _as_numpy(y_true, "y_true").reshape(-1)
    s = _as_numpy(scores, "scores").astype(np.float64).reshape(-1)
    if y.shape != s.shape:
        raise DataError(f"y_true has {y.size} values but scores has {s.size}")
    if not np.all(np.isfinite(s)):
        raise DataError(
            f"scores contain NaN or infinite values (first at index {int(np.argmin(np.isfinite(s)))})"
        )
    if not np.all(np.isin(y, (0, 1))):
        raise DataError("y_true must hold only 0 and 1 for a binary AUROC")
    w = None if sample_weight is None else _as_numpy(sample_weight, "sample_weight").astype(np.float64)
    value = RankedScores(y.astype(bool), s).auroc(w)[0]
    return None if np.isnan(value) else float(value)


@dataclass(frozen=True)
class PreparedInputs:
    """Validated inputs in the form every metric (and the ROC plot) needs; built by ``prepare_inputs``."""

    task: str
    class_names: tuple[str, ...]
    labels: np.ndarray  # [N] int class index (multiclass/binary) or [N, C] bool (multilabel)
    predicted: np.ndarray  # same shape as labels
    auroc_targets: np.ndarray  # [N, K] bool one-vs-rest targets, one column per AUROC
    auroc_scores: np.ndarray  # [N, K] float64
    auroc_names: tuple[str, ...]  # the class each AUROC column belongs to


def _check_class_names(class_names: Sequence[str], task: str) -> tuple[str, ...]:
    if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
        raise ConfigError("class_names must be a list of strings")
    names = tuple(class_names)
    if len(set(names)) != len(names):
        duplicates = sorted({c for c in names if names.count(c) > 1})
        raise ConfigError(f"class_names contains duplicates: {duplicates}")
    if task == "binary" and len(names) != 2:
        raise ConfigError(
            f"binary task needs exactly 2 class names (negative, positive), got {len(names)}: {list(names)}"
        )
    if task == "multiclass" and len(names) < 2:
        raise ConfigError(f"multiclass task needs at least 2 class names, got {list(names)}")
    if task == "multilabel" and len(names) < 1:
        raise ConfigError("multilabel task needs at least 1 class name")
    return names


def _check_probs(probs: np.ndarray, expect_rows_sum_to_one: bool) -> np.ndarray:
    if not np.issubdtype(probs.dtype, np.number) or np.issubdtype(probs.dtype, np.complexfloating):
        raise DataError(f"probs must be numeric, got dtype {probs.dtype}")
    probs = probs.astype(np.float64)
    finite = np.isfinite(probs)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise DataError(f"probs contain NaN or infinite values (first in row {row})")
    if probs.size and (probs.min() < -_RANGE_TOL or probs.max() > 1 + _RANGE_TOL):
        row = int(np.argwhere((probs < -_RANGE_TOL) | (probs > 1 + _RANGE_TOL))[0][0])
        raise DataError(
            f"probs must be probabilities in [0, 1]; row {row} is outside (were logits passed instead of softmax/sigmoid?)"
        )
    if expect_rows_sum_to_one and probs.size:
        sums = probs.sum(axis=1)
        bad = np.abs(sums - 1.0) > _ROW_SUM_TOL
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"each row of probs must sum to 1 (softmax over classes); row {row} sums to {sums[row]:.6g}"
            )
    return probs


def _check_binary_values(values: np.ndarray, name: str) -> np.ndarray:
    valid = np.isin(values, (0, 1))
    if not valid.all():
        position = tuple(int(i) for i in np.argwhere(~valid)[0])
        raise DataError(f"{name} must hold only 0 and 1; found {values[position]!r} at index {position}")
    return values.astype(np.int64)


def prepare_inputs(
    y_true: Any, probs: Any, task: str, class_names: Sequence[str], threshold: float = 0.5
) -> PreparedInputs:
    """Validate ``classification_metrics`` inputs (``DataError``/``ConfigError`` name the problem) and convert them."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected one of {list(TASKS)}")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    names = _check_class_names(class_names, task)
    y = _as_numpy(y_true, "y_true")
    p = _as_numpy(probs, "probs")
    if y.ndim == 0 or p.ndim == 0:
        raise DataError("y_true and probs must be arrays with one row per image")
    if y.shape[0] != p.shape[0]:
        raise DataError(f"length mismatch: y_true has {y.shape[0]} rows but probs has {p.shape[0]}")
    if y.shape[0] == 0:
        raise DataError("no samples: y_true and probs are empty")
    n_classes = len(names)

    if task == "multilabel":
        if y.ndim != 2 or y.shape[1] != n_classes:
            raise DataError(
                f"multilabel y_true must have shape [N, {n_classes}] (one column per class), got {list(y.shape)}"
            )
        if p.shape != y.shape:
            raise DataError(
                f"probs has shape {list(p.shape)} but {n_classes} class names need [N, {n_classes}]"
            )
        labels = _check_binary_values(y, "y_true").astype(bool)
        p = _check_probs(p, expect_rows_sum_to_one=False)
        return PreparedInputs(task, names, labels, p >= threshold, labels, p, names)

    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{task} y_true must be one class index per image (shape [N]), got shape {list(y.shape)}"
        )

    if task == "binary":
        if p.ndim == 2 and p.shape[1] == 2:
            p = _check_probs(p, expect_rows_sum_to_one=True)[:, 1]
        elif p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
            p = _check_probs(p.reshape(-1, 1), expect_rows_sum_to_one=False)[:, 0]
        else:
            raise DataError(
                f"binary probs must be [N] positive-class probabilities or [N, 2] softmax rows, got shape {list(p.shape)}"
            )
        labels = _check_binary_values(y, "y_true")
        predicted = (p >= threshold).astype(np.int64)
        return PreparedInputs(task, names, labels, predicted, labels[:, None] == 1, p[:, None], names[1:])

    # multiclass
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise DataError(f"probs has shape {list(p.shape)} but {n_classes} class names need [N, {n_classes}]")
    p = _check_probs(p, expect_rows_sum_to_one=True)
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError("multiclass y_true must hold integer class indices")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"multiclass y_true must hold integer class indices, got dtype {y.dtype}")
    labels = y.astype(np.int64)
    out_of_range = (labels < 0) | (labels >= n_classes)
    if out_of_range.any():
        i = int(np.argmax(out_of_range))
        raise DataError(f"y_true[{i}] = {labels[i]} is not a class index in [0, {n_classes})")
    targets = labels[:, None] == np.arange(n_classes)[None, :]
    return PreparedInputs(task, names, labels, p.argmax(axis=1), targets, p, names)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=np.float64), where=denominator > 0)


def _recall(hit: np.ndarray, support: np.ndarray) -> np.ndarray:
    return np.divide(hit, support, out=np.full_like(hit, np.nan, dtype=np.float64), where=support > 0)


class _WeightedMetrics:
    """All metrics as functions of per-image weights (ones = the data as given, counts = a resample).

    Everything that does not depend on the weights (sorting, indicator matrices) is computed once here.
    """

    def __init__(self, prep: PreparedInputs, auroc_columns: np.ndarray) -> None:
        self.prep = prep
        self.auroc_columns = auroc_columns
        self.ranked = RankedScores(prep.auroc_targets, prep.auroc_scores)
        if prep.task == "multilabel":
            y, p = prep.labels, prep.predicted
            # one matrix product gives tp, fp, fn per label and the exact-match count
            self._indicators = np.concatenate(
                [y & p, ~y & p, y & ~p, np.all(y == p, axis=1, keepdims=True)], axis=1
            ).astype(np.float64)
        else:
            self._cell = prep.labels * len(prep.class_names) + prep.predicted

    def __call__(self, weights: np.ndarray) -> dict[str, Any]:
        prep = self.prep
        total = weights.sum()
        per_column_auroc = self.ranked.auroc(weights)
        out: dict[str, Any] = {
            "per_class_auroc": per_column_auroc,
            "auroc": float(np.mean(per_column_auroc[self.auroc_columns])),
        }
        n_classes = len(prep.class_names)
        if prep.task == "multilabel":
            sums = weights @ self._indicators
            tp, fp, fn = (
                sums[:n_classes],
                sums[n_classes : 2 * n_classes],
                sums[2 * n_classes : 3 * n_classes],
            )
            tn = total - tp - fp - fn
            per_label_accuracy = (tp + tn) / total
            sensitivity, specificity = _recall(tp, tp + fn), _recall(tn, tn + fp)
            balanced = np.nanmean(np.stack([sensitivity, specificity]), axis=0)
            f1 = _f1(tp, fp, fn)
            out.update(
                accuracy=float(per_label_accuracy.mean()),
                subset_accuracy=float(sums[-1] / total),
                f1_per_class=f1,
                f1=float(f1.mean()),
                balanced_accuracy=float(balanced.mean()),
                per_class_accuracy=per_label_accuracy,
                confusion=np.stack([np.stack([tn, fp], -1), np.stack([fn, tp], -1)], 1),  # [C, 2, 2]
            )
            return out
        cm = np.bincount(self._cell, weights=weights, minlength=n_classes * n_classes).reshape(
            n_classes, n_classes
        )
        tp = np.diag(cm)
        support, predicted = cm.sum(axis=1), cm.sum(axis=0)
        f1 = _f1(tp, predicted - tp, support - tp)
        out.update(
            accuracy=float(tp.sum() / total),
            f1_per_class=f1,
            f1=float(f1.mean()),
            balanced_accuracy=float(np.nanmean(_recall(tp, support))),
            confusion=cm,
        )
        return out


_SCALAR_METRICS = ("accuracy", "auroc", "f1", "balanced_accuracy")


def _plain(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def classification_metrics(
    y_true: Any,
    probs: Any,
    task: Task,
    class_names: Sequence[str],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Accuracy, macro AUROC, macro F1, balanced accuracy, confusion matrix and bootstrap CIs (JSON-ready).

    See the module docstring for the per-task definitions. Returns plain Python types only:
    ``{"task", "class_names", "n", "class_counts", "threshold", "accuracy", "auroc", "f1",
    "balanced_accuracy", ["subset_accuracy", "per_class_accuracy" (multilabel)], "per_class_auroc",
    "per_class_f1", "auroc_classes_skipped", "confusion_matrix", ["per_class_confusion" (multilabel)], "ci"}``.
    ``confusion_matrix`` rows are true classes and columns predicted ones, in ``class_names`` order
    (``None`` for multilabel, which has ``per_class_confusion`` ``{name: [[tn, fp], [fn, tp]]}`` instead).
    ``ci`` holds ``[low, high]`` percentile intervals over images resampled with replacement by
    ``numpy.random.default_rng(seed)``, plus ``level``, ``n_bootstrap`` and ``n_used``.
    """
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ConfigError(f"n_bootstrap must be a non-negative integer, got {n_bootstrap!r}")
    if not 0.0 < ci < 1.0:
        raise ConfigError(f"ci must be a confidence level in (0, 1), got {ci}")
    prep = prepare_inputs(y_true, probs, task, class_names, threshold)
    n = prep.auroc_targets.shape[0]
    positives = prep.auroc_targets.sum(axis=0)
    has_auroc = (positives > 0) & (positives < n)
    if not has_auroc.any():
        raise DataError(_one_class_message(prep, positives, n))
    auroc_columns = np.flatnonzero(has_auroc)

    evaluate = _WeightedMetrics(prep, auroc_columns)
    point = evaluate(np.ones(n))
    names = prep.class_names
    if task == "multilabel":
        class_counts = {name: int(c) for name, c in zip(names, prep.labels.sum(axis=0), strict=True)}
    else:
        class_counts = {
            name: int(c)
            for name, c in zip(names, np.bincount(prep.labels, minlength=len(names)), strict=True)
        }

    result: dict[str, Any] = {
        "task": task,
        "class_names": list(names),
        "n": int(n),
        "class_counts": class_counts,
        "threshold": None if task == "multiclass" else float(threshold),
    }
    for key in _SCALAR_METRICS:
        result[key] = float(point[key])
    result["per_class_auroc"] = {
        name: _plain(v) for name, v in zip(prep.auroc_names, point["per_class_auroc"], strict=True)
    }
    result["per_class_f1"] = {name: float(v) for name, v in zip(names, point["f1_per_class"], strict=True)}
    result["auroc_classes_skipped"] = [
        name for name, ok in zip(prep.auroc_names, has_auroc, strict=True) if not ok
    ]
    if task == "multilabel":
        result["subset_accuracy"] = float(point["subset_accuracy"])
        result["per_class_accuracy"] = {
            name: float(v) for name, v in zip(names, point["per_class_accuracy"], strict=True)
        }
        result["confusion_matrix"] = None
        result["per_class_confusion"] = {
            name: [[int(v) for v in row] for row in matrix]
            for name, matrix in zip(names, point["confusion"], strict=True)
        }
    else:
        result["confusion_matrix"] = [[int(v) for v in row] for row in point["confusion"]]
    result["ci"] = _bootstrap(evaluate, n_bootstrap=n_bootstrap, seed=seed, level=ci)
    return result


def _one_class_message(prep: PreparedInputs, positives: np.ndarray, n: int) -> str:
    if prep.task == "multilabel":
        states = [
            f"{name}: {'all positive' if p == n else 'no positives'}"
            for name, p in zip(prep.class_names, positives, strict=True)
        ]
        return (
            f"AUROC needs both positive and negative images for at least one label, but every label has one value "
            f"over the {n} images ({'; '.join(states)})"
        )
    present = sorted(set(int(v) for v in prep.labels))
    only = prep.class_names[present[0]]
    return (
        f"AUROC needs images of at least two classes, but all {n} labels are {only!r}; "
        f"evaluate on a split that contains both/all classes"
    )


def _bootstrap(evaluate: _WeightedMetrics, *, n_bootstrap: int, seed: int, level: float) -> dict[str, Any]:
    """Percentile bootstrap over images; resamples that lose a class needed by the macro AUROC are skipped."""
    prep, auroc_columns = evaluate.prep, evaluate.auroc_columns
    keys = list(_SCALAR_METRICS) + (["subset_accuracy"] if prep.task == "multilabel" else [])
    out: dict[str, Any] = {
        "level": float(level),
        "method": "percentile bootstrap over images",
        "n_bootstrap": int(n_bootstrap),
        "n_used": 0,
        "seed": int(seed),
    }
    n = prep.auroc_targets.shape[0]
    targets = prep.auroc_targets[:, auroc_columns].astype(np.float64)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {k: [] for k in keys}
    per_class: list[np.ndarray] = []
    for _ in range(n_bootstrap):
        weights = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        positives = weights @ targets
        if np.any(positives == 0) or np.any(positives == n):
            continue
        metrics = evaluate(weights)
        for k in keys:
            samples[k].append(metrics[k])
        per_class.append(metrics["per_class_auroc"])
    out["n_used"] = len(per_class)
    tail = 100.0 * (1.0 - level) / 2.0
    percentiles = [tail, 100.0 - tail]

    def interval(values: Any) -> list[float] | None:
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return None
        low, high = np.percentile(values, percentiles)
        return [float(low), float(high)]

    for k in keys:
        out[k] = interval(samples[k]) if per_class else None
    stacked = np.stack(per_class) if per_class else np.zeros((0, len(prep.auroc_names)))
    out["per_class_auroc"] = {
        name: (interval(stacked[:, j]) if j in auroc_columns and per_class else None)
        for j, name in enumerate(prep.auroc_names)
    }
    return out
