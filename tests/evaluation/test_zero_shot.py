"""Zero-shot evaluation: known answers vs scikit-learn, batching changes nothing, parity with the released
checkpoint, output files and their protection, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)
from zero_shot_helpers import StubModel, angles_table, deep_model, make_prepared

from medpeft.errors import ConfigError, DataError, OutputExistsError
from medpeft.evaluation.inference import class_head_from_ids, merged_lora, score_images
from medpeft.evaluation.options import InferenceOptions
from medpeft.evaluation.zero_shot import evaluate, evaluate_many

CLASSES = ["alpha", "beta", "gamma"]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _hand_probs(values: np.ndarray, table: torch.Tensor, scale: float) -> np.ndarray:
    """p = softmax(scale · x·Eᵀ) with x = (cos πt, sin πt), t = grey level / 255."""
    t = values / 255.0
    x = np.stack([np.cos(np.pi * t), np.sin(np.pi * t)], axis=1)
    e = table.double().numpy()
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    return _softmax(scale * x @ e.T)


@pytest.fixture(scope="module")
def multiclass_set(tmp_path_factory):
    rng = np.random.default_rng(0)
    values = rng.choice(256, 30, replace=False)  # distinct grey levels: no tied scores
    labels = np.minimum((values / 256 * 3).astype(int) + rng.integers(-1, 2, 30), 2).clip(
        0
    )  # noisy: not all right
    root = make_prepared(
        tmp_path_factory.mktemp("mc"), "toy-multiclass", "multiclass", CLASSES, labels, values
    )
    return root, values, labels


def test_multiclass_metrics_equal_sklearn(multiclass_set, tmp_path):
    root, values, labels = multiclass_set
    table = angles_table(3)
    model = StubModel(CLASSES, table, scale=10.0)
    out = tmp_path / "out"
    result = evaluate(model, root, batch_size=7, out_dir=out, n_bootstrap=50, seed=1)

    expected = _hand_probs(values.astype(float), table, 10.0)
    preds = pd.read_csv(out / "predictions.csv")
    probs = preds[[f"prob:{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert preds["label"].tolist() == [CLASSES[i] for i in labels]
    assert preds["predicted"].tolist() == [CLASSES[i] for i in expected.argmax(1)]

    m = json.loads((out / "metrics.json").read_text())["metrics"]
    pred = expected.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, pred))
    for scores in (expected, probs):  # by hand, and as written to predictions.csv
        assert m["auroc"] == pytest.approx(
            roc_auc_score(labels, scores, multi_class="ovr", average="macro"), abs=1e-9
        )
    assert m["f1"] == pytest.approx(f1_score(labels, pred, average="macro", zero_division=0))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, pred))
    assert m["confusion_matrix"] == confusion_matrix(labels, pred, labels=[0, 1, 2]).tolist()
    assert m["ci"]["n_bootstrap"] == 50 and m["ci"]["auroc"][0] <= m["auroc"] <= m["ci"]["auroc"][1]
    assert result["metrics"] == m
    assert {"metrics.json", "predictions.csv", "roc.png", "confusion.png", "results.md"} <= {
        p.name for p in out.iterdir()
    }
    assert "| toy-multiclass (test) | custom | 30 |" in (out / "results.md").read_text()


def test_binary_uses_positive_class_column(tmp_path):
    rng = np.random.default_rng(3)
    values = rng.choice(256, 24, replace=False)
    labels = ((values > 128) ^ (rng.random(24) < 0.2)).astype(int)
    # columns written positive-first: the output order must still be [negative, positive]
    root = make_prepared(
        tmp_path / "bin",
        "toy-binary",
        "binary",
        ["sick", "healthy"],
        1 - labels,
        values,
        positive_class="sick",
    )
    table = angles_table(2)
    model = StubModel(["healthy", "sick"], table, scale=5.0)
    result = evaluate(model, root, n_bootstrap=0)
    assert result["class_keys"] == ["healthy", "sick"]
    p = _hand_probs(values.astype(float), table, 5.0)[:, 1]
    assert result["metrics"]["auroc"] == pytest.approx(roc_auc_score(labels, p), abs=1e-6)
    assert result["metrics"]["accuracy"] == pytest.approx(accuracy_score(labels, p >= 0.5))


def test_multilabel_pairwise_probabilities(tmp_path):
    rng = np.random.default_rng(5)
    values = rng.choice(256, 20, replace=False)
    labels = (rng.random((20, 2)) < 0.5).astype(int)
    labels[0], labels[1] = [0, 0], [1, 1]
    root = make_prepared(tmp_path / "ml", "toy-multilabel", "multilabel", ["alpha", "beta"], labels, values)
    phrases = ["alpha", "beta", "no alpha", "no beta"]
    table = angles_table(4)
    model = StubModel(phrases, table, scale=8.0)
    out = tmp_path / "out"
    result = evaluate(model, root, out_dir=out, n_bootstrap=0)
    assert result["scoring"] == "pairwise"
    assert set(result["prompts"]) == set(phrases)
    t = values / 255.0
    x = np.stack([np.cos(np.pi * t), np.sin(np.pi * t)], axis=1)
    e = table.double().numpy()
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sims = x @ e.T
    expected = 1.0 / (1.0 + np.exp(-8.0 * (sims[:, :2] - sims[:, 2:])))
    preds = pd.read_csv(out / "predictions.csv")
    np.testing.assert_allclose(preds[["prob:alpha", "prob:beta"]].to_numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(preds[["label:alpha", "label:beta"]].to_numpy(), labels)
    assert result["metrics"]["auroc"] == pytest.approx(
        roc_auc_score(labels, expected, average="macro"), abs=1e-9
    )
    assert not (out / "confusion.png").exists()  # per-label 2x2 matrices live in metrics.json


def _one_at_a_time(model, paths, prompts) -> np.ndarray:
    """The reference loop: AceLoraModel called on one image at a time."""
    from medpeft.data.images import load_image

    bb = model.backbone
    with torch.no_grad():
        classes = torch.cat([model.encode_prompts(bb.tokenizer(p)[None]) for p in prompts])
        rows = []
        for path in paths:
            image = model.encode_image(bb.preprocess(load_image(path))[None])
            rows.append((model.logit_scale * image @ classes.t()).softmax(-1)[0])
    return torch.stack(rows).double().numpy()


@pytest.fixture(scope="module")
def tiny_model(tiny_backbone):
    return deep_model(tiny_backbone)


@pytest.fixture(scope="module")
def noise_set(tmp_path_factory):
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    return make_prepared(
        tmp_path_factory.mktemp("noise"), "toy-noise", "multiclass", CLASSES, labels, noise=True
    )


def test_batched_equals_one_image_at_a_time(tiny_model, noise_set):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tiny_model.train()
    batched = evaluate(tiny_model, noise_set, batch_size=3, n_bootstrap=0, out_dir=None)
    # LoRA was merged for scoring, then the exact weights (and the training flag) came back
    assert tiny_model.training and not tiny_model.is_merged
    after = tiny_model.state_dict()
    assert set(after) == set(before) and len(before) > 0
    assert all(torch.equal(v, before[k]) for k, v in after.items())
    tiny_model.eval()
    prompts = [list(v) for v in batched["prompts"].values()]
    paths = sorted((noise_set / "images").glob("*.png"))
    expected = _one_at_a_time(tiny_model, paths, prompts)
    from medpeft.evaluation.inference import encode_class_prompts
    from medpeft.evaluation.zero_shot import load_eval_set

    es = load_eval_set(noise_set)
    head = encode_class_prompts(tiny_model, tiny_model.backbone.tokenizer, es.prompts)
    for batch_size, workers in ((3, 0), (64, 0), (2, 1)):
        scores = score_images(
            tiny_model,
            head,
            es.images,
            tiny_model.backbone.preprocess,
            InferenceOptions(batch_size=batch_size, workers=workers),
        )
        np.testing.assert_allclose(scores.probs, expected, atol=1e-5)
    assert batched["metrics"]["n"] == len(paths)


def test_released_checkpoint_reproduces_reference_probs(released_model, reference):
    """The class-embedding path of the parity fixture, through the batched scorer (ragged last batch)."""
    with merged_lora(released_model):  # as evaluate() runs it: LoRA merged once for both encoders
        head = class_head_from_ids(released_model, [f"c{i}" for i in range(5)], reference["prompt_ids"])
        scores = score_images(released_model, head, reference["images"], None, InferenceOptions(batch_size=3))
    assert scores.kept == [0, 1, 2, 3]
    np.testing.assert_allclose(scores.probs, reference["probs"].double().numpy(), atol=1e-5)


def test_refuses_to_overwrite_results(multiclass_set, tmp_path):
    root, _, _ = multiclass_set
    model = StubModel(CLASSES, angles_table(3))
    evaluate(model, root, out_dir=tmp_path, n_bootstrap=0)
    before = (tmp_path / "metrics.json").read_text()
    with pytest.raises(OutputExistsError, match="already holds results"):
        evaluate(model, root, out_dir=tmp_path, n_bootstrap=0)
    assert (tmp_path / "metrics.json").read_text() == before
    evaluate(model, root, out_dir=tmp_path, n_bootstrap=0, overwrite=True)


def test_unreadable_image_named_or_skipped(tmp_path):
    values = np.array([10, 100, 200, 250, 30, 180])
    root = make_prepared(
        tmp_path / "bad", "toy-bad", "multiclass", CLASSES, np.array([0, 1, 2, 2, 0, 1]), values
    )
    (root / "images" / "img_002.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    model = StubModel(CLASSES, angles_table(3))
    with pytest.raises(DataError, match=r"img_002\.png.*--on-bad-image skip"):
        evaluate(model, root, n_bootstrap=0)
    result = evaluate(model, root, n_bootstrap=0, on_bad_image="skip")
    assert result["n_skipped"] == 1 and result["metrics"]["n"] == 5
    assert result["skipped"][0]["image"] == "images/img_002.png"


def test_bad_dataset_arguments(multiclass_set, tmp_path):
    root, _, _ = multiclass_set
    model = StubModel(CLASSES, angles_table(3))
    with pytest.raises(ConfigError, match="unknown dataset 'chexpurt'"):
        evaluate(model, root, dataset="chexpurt")
    with pytest.raises(ConfigError, match="holds the prepared dataset 'toy-multiclass', not 'rsna'"):
        evaluate(model, root, dataset="rsna")
    with pytest.raises(DataError, match="no 'validate' split"):
        evaluate(model, root, split="validate")
    with pytest.raises(DataError, match="dataset.json not found"):
        evaluate(model, tmp_path)
    with pytest.raises(ConfigError, match="no '\\{\\}' placeholder"):
        evaluate(model, root, templates=["no placeholder"])
    # a model without a backbone needs its tokenizer and preprocessing passed in
    bare = StubModel(CLASSES, angles_table(3))
    backbone = bare.backbone
    del bare.backbone
    with pytest.raises(ConfigError, match="pass tokenizer and preprocess for a model without a backbone"):
        evaluate(bare, root)
    assert (
        evaluate(bare, root, tokenizer=backbone.tokenizer, preprocess=backbone.preprocess)["metrics"]["n"]
        == 30
    )


def test_evaluate_many_combined_table(multiclass_set, noise_set, tmp_path):
    root, _, _ = multiclass_set
    built = []

    def factory(scale):
        def make():
            built.append(scale)
            return StubModel(CLASSES, angles_table(3), scale=scale)

        return make

    summary = evaluate_many(
        {"cold": factory(2.0), "hot": factory(20.0)},
        {"toy-multiclass": root, "toy-noise": noise_set},
        out_dir=tmp_path,
        n_bootstrap=0,
    )
    assert built == [2.0, 20.0]
    assert len(summary["runs"]) == 4
    table = (tmp_path / "results.md").read_text()
    for model in ("cold", "hot"):
        for dataset in ("toy-multiclass", "toy-noise"):
            assert f"| {dataset} (test) | {model} |" in table
            assert (tmp_path / model / dataset / "metrics.json").is_file()
    with pytest.raises(OutputExistsError):
        evaluate_many({"cold": factory(2.0)}, {"toy-multiclass": root}, out_dir=tmp_path, n_bootstrap=0)
