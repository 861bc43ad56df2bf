"""`medpeft a3tune eval`: the three result files, a two-adapter table, the attention diagnostic per sample (true
lesion masks where the manifest has them), overlays; bad input fails clearly and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from a3_cli import run
from a3_helpers import tiny
from a3_vqa_data import write_vqa

from medpeft.a3tune import A3TuneConfig, A3TuneModel
from medpeft.evaluation.generation_metrics import sample_scores


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data, weak = write_vqa(root, {"train": 8, "test": 6}, lesion=True)
    # the test split's first two samples lose their true mask, so their diagnostic uses the weak masks
    lines = (data / "test.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    for r in rows[:2]:
        r.pop("lesion_mask", None)
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    torch.set_num_threads(1)
    argv = ["a3tune", "train", "--base", "llava-tiny", "--data", str(data), "--weak-labels", str(weak), "--out",
            str(root / "run"), "--max-steps", "2", "--batch-size", "4", "--quiet"]  # fmt: skip
    assert run(argv) == 0
    return data, weak, root / "run" / "final"


def evaluate(data: Path, out: Path, *extra: str) -> int:
    return run(["a3tune", "eval", "--base", "llava-tiny", "--data", str(data), "--out", str(out),
                "--max-new-tokens", "4", "--quiet", *extra])  # fmt: skip


def test_two_adapters_three_files_and_overlays(setup, tmp_path):
    data, weak, final = setup
    out = tmp_path / "ev"
    assert evaluate(data, out, "--adapter", "none", "--adapter", str(final), "--weak-labels", str(weak),
                    "--overlays", "2", "--batch-size", "4") == 0  # fmt: skip
    assert {p.name for p in out.iterdir()} == {"predictions.csv", "metrics.json", "results.md", "overlays"}
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == 12 and list(preds["adapter"].unique()) == ["base", "run"]
    for _, row in preds.iterrows():  # every score equals the metric of that row's strings
        expected = sample_scores(str(row["prediction"]) if isinstance(row["prediction"], str) else "",
                                 row["answer"], row["answer_type"])  # fmt: skip
        assert row["f1"] == pytest.approx(expected["f1"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["adapters"]) == {"base", "run"}  # RUN/final is labelled by its run
    for summary in metrics["adapters"].values():
        assert summary["n"] == 6 and summary["closed_accuracy_n"] == 4 and summary["open_recall_n"] == 2
        assert 0 < summary["attention_in_mask"] < 1 and summary["attention_in_mask_n"] == 4
    assert metrics["weak_labels"]["weak_label_ids_not_in_split"] == 6  # the train split's squares
    # per sample: true lesion masks where present, weak masks for the two without, nothing without a square
    base_rows = preds[preds["adapter"] == "base"]
    assert list(base_rows["mask_source"]) == ["weak", "weak", "none", "lesion", "lesion", "none"]
    assert base_rows["attention_in_mask"].isna().tolist() == [False, False, True, False, False, True]
    table = (out / "results.md").read_text()
    assert "| base | 6 |" in table and "| run | 6 |" in table
    assert sorted(p.name for p in (out / "overlays" / "run").iterdir()) == ["test-0.png", "test-1.png"]
    assert sorted(p.name for p in (out / "overlays" / "base").iterdir()) == ["test-0.png", "test-1.png"]
    # results are never overwritten without --overwrite
    assert evaluate(data, out, "--adapter", "none") == 1
    assert evaluate(data, out, "--adapter", "none", "--overwrite") == 0
    assert set(json.loads((out / "metrics.json").read_text())["adapters"]) == {"base"}


def test_beam_search_and_base_adapter_default(setup, tmp_path):
    data, _, _ = setup
    assert evaluate(data, tmp_path / "ev", "--num-beams", "2") == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["settings"]["num_beams"] == 2 and set(metrics["adapters"]) == {"base"}
    assert metrics["weak_labels"] is None


def test_bad_input_fails_clearly_and_writes_nothing(setup, tmp_path, capsys):
    data, weak, final = setup
    out = tmp_path / "ev"
    assert evaluate(data, out, "--split", "validate") == 1
    assert "no 'validate' split" in capsys.readouterr().err and not out.exists()
    # an adapter made for another base model (GQA Mistral) fails after the first adapter ran: nothing written
    other = tmp_path / "mistral_adapter"
    A3TuneModel(tiny("llava-tiny-mistral"), A3TuneConfig(q_experts=2, k_experts=2)).save_pretrained(other)
    assert evaluate(data, out, "--adapter", str(final), "--adapter", str(other)) == 1
    err = capsys.readouterr().err
    assert "adapter was built for another base model" in err and "num_key_value_heads" in err
    assert not out.exists()
    assert evaluate(data, out, "--adapter", str(tmp_path / "missing")) == 1
    assert "adapter not found" in capsys.readouterr().err and not out.exists()


def test_adapter_labels():
    from medpeft.evaluation.generation_eval import adapter_labels

    assert adapter_labels(["none", "runs/a3/final", "runs/lora/final", "x/best", "ad", "y/ad"]) == [
        "base", "a3", "lora", "x", "ad", "ad_2"]  # fmt: skip
