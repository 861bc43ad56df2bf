"""`medpeft finetune`: help, a short run, refusal to reuse an output folder, user errors as one line."""

from __future__ import annotations

import json

import pytest

from medpeft.cli import main


def test_help_lists_both_tasks(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "segmentation" in text and "detection" in text and "--adapter" in text
    with pytest.raises(SystemExit):
        main(["finetune", "detection", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--mgca-compat",
        "--zero-shot-map",
        "--resume",
        "--fraction",
        "--precision",
        "EVERY test image",
    ):
        assert option in text
    assert main(["finetune"]) == 2


def test_segmentation_run_and_refusal(blob_data, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    args = ["finetune", "segmentation", "--backbone", "tiny", "--data", str(blob_data), "--out", str(out),
            "--epochs", "1", "--max-steps", "2", "--batch-size", "4", "--decoder-width", "16", "--overlays", "1"]  # fmt: skip
    assert main(args) == 0
    assert "test Dice (MGCA)" in capsys.readouterr().out
    result = json.loads((out / "test_metrics.json").read_text())
    assert result["steps"] == 2 and result["config"]["encoder"]["blocks"] == [1, 2, 3, 4]
    assert main(args) == 1
    assert "already holds results" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0  # a finished run resumes to its stored result
    assert main([*args[:-2], "--overlays", "2", "--resume", "--lr", "0.1"]) == 1
    assert "settings differ" in capsys.readouterr().err


def test_user_errors_are_one_line(blob_data, tmp_path, capsys) -> None:
    base = [
        "finetune",
        "detection",
        "--backbone",
        "tiny",
        "--data",
        str(blob_data),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*base, "--zero-shot-map", "--resume"]) == 1
    assert "--zero-shot-map trains nothing" in capsys.readouterr().err
    assert main([*base, "--fraction", "0.5"]) == 1
    assert "train_fraction_0.5.csv not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # a failed start leaves no output folder behind
