"""`medpeft demo a3tune`: a quick run end to end (files, metrics keys and ranges, report consistent with
metrics.json, reproducibility for a fixed seed, refusal to overwrite) and the goal arithmetic."""

from __future__ import annotations

import json

import pytest

from medpeft.cli import main
from medpeft.demo.a3tune import A3DemoSettings, run_a3tune_demo
from medpeft.demo.a3tune.outputs import MODEL_NAMES, REFERENCE, REPORTED, goal, report_text
from medpeft.errors import ConfigError, OutputExistsError

KEYS = ("closed_accuracy", "open_recall", "attention_in_lesion")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_a3(tmp_path_factory):
    out = tmp_path_factory.mktemp("a3demo") / "run"
    assert main(["demo", "a3tune", "--quick", "--out", str(out), "--seed", "1", "--quiet"]) == 0
    return out


def test_quick_a3_demo_writes_every_result(quick_a3):
    metrics = json.loads((quick_a3 / "metrics.json").read_text())
    assert metrics["seed"] == 1 and metrics["quick"] is True
    assert sorted(metrics["results"]) == sorted(REPORTED) == ["a3tune", "a3tune-true-masks", "base", "lora"]
    assert MODEL_NAMES == ("base", "lora", "a3tune")  # the three models the goal is about
    n_lesion = metrics["data"]["n_test_with_lesion"]
    assert 0 < n_lesion <= metrics["data"]["n_test"]
    for model in REPORTED:
        r = metrics["results"][model]
        assert set(KEYS) <= set(r)
        assert 0.0 <= r["closed_accuracy"] <= 100.0 and 0.0 <= r["open_recall"] <= 100.0
        assert 0.0 <= r["attention_in_lesion"] <= 1.0
        assert r["attention_in_lesion_n"] == n_lesion  # only questions on images with a TRUE lesion mask
        overlays = sorted((quick_a3 / "eval" / "overlays" / model).glob("*.png"))
        assert len(overlays) == 2 and all(p.read_bytes()[:8] == PNG for p in overlays)
    g = metrics["goal"]
    ratio = (
        metrics["results"]["a3tune"]["attention_in_lesion"]
        / metrics["results"]["lora"]["attention_in_lesion"]
    )
    assert g["attention_ratio_a3tune_over_lora"] == pytest.approx(ratio)
    assert g["met"] is (ratio >= 2.0)
    reference = (
        metrics["results"][REFERENCE]["attention_in_lesion"]
        / metrics["results"]["lora"]["attention_in_lesion"]
    )
    assert g["attention_ratio_true_masks_over_lora"] == pytest.approx(reference)
    assert metrics["data"]["generalist_loss_last"] > 0  # the generalist's LM loss of its last step
    w = metrics["weak_labels"]
    assert (w["proposer"], w["scorer"]) == ("regions", "medpeft-demo-generalist") and w["n_with_lesion"] > 0
    assert 0.0 <= w["top1_hit_rate"] <= 1.0 and 0.0 <= w["mean_inside_fraction"] <= 1.0
    # the library's own outputs are there: adapters, the merged generalist, weak labels, eval tables
    for path in ("models/lora/final/a3tune_config.json", "models/a3tune/final/a3tune_moe.safetensors",
                 "models/generalist/config.json", "models/a3tune-true-masks/final/a3tune_moe.safetensors",
                 "models/medpeft-demo-generalist/open_clip_config.json",
                 "models/llava-tiny-demo/tokenizer.json", "weak-labels/masks.npz", "true-masks/masks.npz",
                 "eval/predictions.csv"):  # fmt: skip
        assert (quick_a3 / path).is_file(), path


def test_quick_a3_report_states_the_measured_numbers(quick_a3):
    metrics = json.loads((quick_a3 / "metrics.json").read_text())
    report = (quick_a3 / "report.md").read_text()
    for model in REPORTED:
        r = metrics["results"][model]
        row = (f"| {model} | {r['closed_accuracy']:.1f} | {r['open_recall']:.1f} | "
               f"{r['attention_in_lesion']:.4f} | {r['attention_in_lesion_n']} |")  # fmt: skip
        assert row in report
    verdict = "met" if metrics["goal"]["met"] else "not met"
    assert f"at least 2x plain LoRA's): {verdict} in this run" in report
    assert f"(ratio {metrics['goal']['attention_ratio_a3tune_over_lora']:.3f})" in report
    assert f"is {metrics['goal']['attention_ratio_true_masks_over_lora']:.3f}x plain LoRA's" in report
    assert "quick run" in report
    for png in (quick_a3 / "eval" / "overlays").rglob("*.png"):
        assert f"]({png.relative_to(quick_a3)})" in report


def test_quick_a3_demo_is_reproducible_and_refuses_to_overwrite(quick_a3, tmp_path):
    again = run_a3tune_demo(tmp_path / "again", seed=1, quick=True, progress=False)
    assert (tmp_path / "again" / "metrics.json").read_bytes() == (quick_a3 / "metrics.json").read_bytes()
    assert again.metrics["results"]["a3tune"]["attention_in_lesion"] > 0
    before = (quick_a3 / "metrics.json").read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        run_a3tune_demo(quick_a3, seed=1, quick=True, progress=False)
    assert (quick_a3 / "metrics.json").read_bytes() == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="not written by 'medpeft demo a3tune'"):
        run_a3tune_demo(foreign, quick=True, overwrite=True, progress=False)
    assert (foreign / "mine.txt").read_text() == "keep"


def test_true_mask_store_holds_each_lesion_and_nothing_else(quick_a3):
    import numpy as np

    from medpeft.a3tune.examples import ConversationExamples
    from medpeft.a3tune.weak_labels.store import load_weak_labels
    from medpeft.data.conversations import read_conversations
    from medpeft.demo.a3tune.true_masks import lesion_frame

    task = quick_a3 / "data" / "prepared" / "task"
    samples = read_conversations(task / "train.jsonl")
    with_lesion = [s for s in samples if s.lesion_mask]
    assert 0 < len(with_lesion) < len(samples)  # normal images' questions get no mask
    store = load_weak_labels(quick_a3 / "true-masks")
    assert store.ids == [s.id for s in with_lesion]
    for s in with_lesion:
        masks = store.masks(s.id)
        assert masks.shape == (1, 256, 256) and masks.dtype == np.uint8
        assert np.array_equal(masks[0].astype(bool), lesion_frame(task / s.lesion_mask))
        assert masks.any()
    store.close()
    # A³Tune's data reads it like any weak-label folder: the normal images' questions are counted, not lost
    examples = ConversationExamples(task, "train", grid=8, weak_labels=quick_a3 / "true-masks")
    assert examples.match.with_masks == len(with_lesion)
    assert len(examples.match.without_masks) == len(samples) - len(with_lesion)


def test_goal_is_the_ratio_of_attention_in_lesion():
    results = {"lora": {"attention_in_lesion": 0.1}, "a3tune": {"attention_in_lesion": 0.25}, "base": {}}
    assert goal(results) == {
        "attention_ratio_a3tune_over_lora": pytest.approx(2.5),
        "target": 2.0,
        "met": True,
    }
    results["a3tune"]["attention_in_lesion"] = 0.19
    assert goal(results)["met"] is False
    results[REFERENCE] = {"attention_in_lesion": 0.5}
    assert goal(results)["attention_ratio_true_masks_over_lora"] == pytest.approx(5.0)
    results["lora"]["attention_in_lesion"] = None
    assert goal(results) == {"attention_ratio_a3tune_over_lora": None, "target": 2.0, "met": False,
                             "attention_ratio_true_masks_over_lora": None}  # fmt: skip


def test_report_marks_missing_numbers():
    r = {
        "closed_accuracy": 50.0,
        "open_recall": None,
        "attention_in_lesion": None,
        "attention_in_lesion_n": 0,
    }
    metrics = {
        "seed": 0, "quick": False, "results": {m: r for m in MODEL_NAMES},
        "goal": {"attention_ratio_a3tune_over_lora": None, "target": 2.0, "met": False},
        "weak_labels": {"proposer": "regions", "scorer": "tiny", "top1_hit_rate": 0.5, "n_with_lesion": 2,
                        "mean_inside_fraction": 0.25},
        "data": {"n_train": 10, "n_test": 4, "n_test_with_lesion": 0},
        "models": {m: m for m in MODEL_NAMES},
    }  # fmt: skip
    text = report_text(metrics, wall_seconds=1.0, figures=[])
    assert "| base | 50.0 | n/a | n/a | 0 |" in text and "not met in this run (ratio n/a)" in text
    assert "quick run" not in text and "Attention overlays" not in text


def test_settings_reject_bad_values_and_cli_rejects_bad_method(capsys):
    with pytest.raises(ConfigError, match="adapt_steps must be positive"):
        A3DemoSettings(adapt_steps=0)
    with pytest.raises(ConfigError, match="align_weight must be >= 0, got -0.5"):
        A3DemoSettings(align_weight=-0.5)
    assert A3DemoSettings(align_weight=0.0, n_overlays=0).align_weight == 0.0
    with pytest.raises(SystemExit):
        main(["demo", "dpo", "--quick"])
    assert "invalid choice: 'dpo'" in capsys.readouterr().err


def test_demo_tokenizer_keeps_tiny_ids_and_knows_every_demo_word():
    from medpeft.backbones.llava import tiny_tokenizer
    from medpeft.demo.a3tune.preset import demo_tokenizer

    texts = [
        "<image>\nIs there a pleural effusion in this image?",
        "Yes",
        "Where is the nodule?",
        "both lungs",
    ]
    tok, size = demo_tokenizer(texts)
    tiny = tiny_tokenizer()
    assert tiny("Yes")["input_ids"] == [tiny.unk_token_id]  # why the preset exists
    tiny_vocab = tiny.backend_tokenizer.get_vocab(with_added_tokens=False)
    new = set(tok.backend_tokenizer.get_vocab(with_added_tokens=False)) - set(tiny_vocab)
    assert new == {"Is", "Where", "Yes", "both", "effusion", "nodule", "pleural"}
    assert size == len(tiny_vocab) + len(new)
    assert tok("right lung")["input_ids"] == tiny("right lung")["input_ids"]
    for text in texts:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True).replace(" ?", "?") == text.replace("<image>\n", "")
    assert tok("<image>")["input_ids"] == [tiny.convert_tokens_to_ids("<image>")]
