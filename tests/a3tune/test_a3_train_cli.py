"""`medpeft a3tune train` on a synthetic VQA manifest with weak labels: the loss falls, metrics.jsonl has every
field, the adapter reloads; --method lora trains only LoRA; the ablations change the config; gradient
checkpointing gives the same numbers; bad input fails with a clear message and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from a3_cli import run
from a3_helpers import tiny
from a3_vqa_data import write_vqa, write_weak
from safetensors.torch import load_file

from medpeft.a3tune import A3TuneModel
from medpeft.io import safe_torch_load

FIELDS = {"step", "epoch", "loss", "lm_loss", "align_loss", "balance_loss", "attention_in_mask", "lr",
          "skipped_steps", "samples_per_s"}  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vqa(tmp_path_factory):
    return write_vqa(tmp_path_factory.mktemp("vqa"), {"train": 12, "test": 3})


def train(data: Path, weak: Path | None, out: Path, *extra: str) -> int:
    args = ["a3tune", "train", "--base", "llava-tiny", "--data", str(data), "--out", str(out), "--batch-size", "4",
            "--lr", "3e-3", "--quiet", *extra]  # fmt: skip
    if weak is not None:
        args += ["--weak-labels", str(weak)]
    return run(args)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_training_lowers_the_loss_and_logs_every_field(vqa, tmp_path):
    data, weak = vqa
    out = tmp_path / "run"
    assert train(data, weak / "masks.npz", out, "--epochs", "3", "--checkpoint-every", "3") == 0
    recs = records(out)
    assert [r["step"] for r in recs] == list(range(1, 10))  # 12 samples / batch 4 = 3 steps x 3 epochs
    assert all(set(r) == FIELDS for r in recs)
    assert all(r["align_loss"] > 0 and 0 < r["attention_in_mask"] < 1 for r in recs)
    assert np.mean([r["loss"] for r in recs[-3:]]) < np.mean([r["loss"] for r in recs[:3]]) - 0.3
    final = out / "final"
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "a3tune_moe.safetensors",
        "a3tune_config.json",
    } <= {p.name for p in final.iterdir()}
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000006.pt", "step-00000009.pt"]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 9
    wl = summary["weak_labels"]  # 8 of 12 train images have a square; the 2 test squares are not in the split
    assert (wl["with_masks"], wl["samples_without_weak_labels"], wl["weak_label_ids_not_in_split"]) == (
        8,
        4,
        2,
    )
    reloaded = A3TuneModel.from_pretrained(tiny("llava-tiny"), final)
    saved = load_file(str(final / "a3tune_moe.safetensors"))
    assert saved.keys() == reloaded.moe_state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in reloaded.moe_state_dict().items())


def test_method_lora_trains_only_lora_on_the_same_modules(vqa, tmp_path):
    data, weak = vqa
    out = tmp_path / "lora"
    assert train(data, weak, out, "--method", "lora", "--max-steps", "2") == 0
    final = out / "final"
    assert not (final / "a3tune_moe.safetensors").exists()
    assert json.loads((final / "a3tune_config.json").read_text())["method"] == "lora"
    adapter = safe_torch_load(out / "checkpoints" / "step-00000002.pt")["adapter"]
    assert adapter and all(".lora_A." in k or ".lora_B." in k for k in adapter)
    modules = {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in adapter}
    assert modules == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert all("language_model" in k for k in adapter)  # never the vision tower or the projector
    recs = records(out)
    assert all(
        r["align_loss"] == 0 and r["attention_in_mask"] is None and r["loss"] == r["lm_loss"] for r in recs
    )


@pytest.mark.parametrize(("flag", "moe", "align"), [("--no-moe", False, True), ("--no-align", True, False)])
def test_ablations(vqa, tmp_path, flag, moe, align):
    data, weak = vqa
    assert train(data, weak, tmp_path / "run", flag, "--max-steps", "1") == 0
    config = json.loads((tmp_path / "run" / "final" / "a3tune_config.json").read_text())["config"]
    assert (config["moe"], config["align"]) == (moe, align)
    assert (tmp_path / "run" / "final" / "a3tune_moe.safetensors").exists() == moe
    rec = records(tmp_path / "run")[0]
    assert (rec["align_loss"] > 0) == align


def test_gradient_checkpointing_gives_the_same_numbers(vqa, tmp_path):
    data, weak = vqa
    assert train(data, weak, tmp_path / "plain", "--max-steps", "2") == 0
    assert train(data, weak, tmp_path / "ckpt", "--max-steps", "2", "--gradient-checkpointing") == 0
    a, b = records(tmp_path / "plain"), records(tmp_path / "ckpt")
    for key in ("loss", "lm_loss", "align_loss", "attention_in_mask"):
        assert [r[key] for r in a] == pytest.approx([r[key] for r in b], rel=1e-5), key


def test_bf16_and_gradient_accumulation_run_on_cpu(vqa, tmp_path):
    data, weak = vqa
    assert (
        train(data, weak, tmp_path / "run", "--max-steps", "1", "--precision", "bf16", "--grad-accum", "2")
        == 0
    )
    rec = records(tmp_path / "run")[0]
    assert np.isfinite(rec["loss"]) and rec["attention_in_mask"] is not None


def test_bad_input_fails_clearly_and_writes_nothing(vqa, tmp_path, capsys):
    data, weak = vqa
    out = tmp_path / "run"
    assert train(data, weak, out, "--max-steps", "1", "--batch-size", "16") == 1
    assert "fewer than one batch of 16" in capsys.readouterr().err and not out.exists()
    # a folder without the train split
    only_test = tmp_path / "only_test"
    only_test.mkdir()
    (only_test / "test.jsonl").write_text((data / "test.jsonl").read_text())
    assert train(only_test, None, tmp_path / "a", "--max-steps", "1") == 1
    assert "no 'train' split" in capsys.readouterr().err and not (tmp_path / "a").exists()
    # masks not on the weak-label store's frame
    bad = write_weak(tmp_path / "bad", {"train-0": np.ones((1, 32, 32), dtype=np.uint8)})
    assert train(data, bad, tmp_path / "b", "--max-steps", "1") == 1
    err = capsys.readouterr().err
    assert "train-0" in err and "[1, 32, 32]" in err and not (tmp_path / "b").exists()
    # an existing run is never overwritten without --resume
    assert train(data, weak, tmp_path / "c", "--max-steps", "1") == 0
    assert train(data, weak, tmp_path / "c", "--max-steps", "1") == 1
    assert "--resume" in capsys.readouterr().err
