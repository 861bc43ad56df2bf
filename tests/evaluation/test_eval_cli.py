"""``medpeft eval`` and ``medpeft predict`` end to end on the tiny backbone over synthetic data."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from zero_shot_helpers import deep_model, write_noise_png

import medpeft.backbones.clip
from medpeft.cli import main


@pytest.fixture(scope="module")
def rsna(tmp_path_factory):
    """Synthetic RSNA raw layout (DICOMs) prepared into manifests."""
    from medpeft.data.prepare import prepare
    from medpeft.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("rsna")
    synthesize("rsna", root / "raw", n=24, seed=0, image_size=64)
    prepare("rsna", root / "raw", root / "prepared", image_size=64, progress=False)
    return root


@pytest.fixture
def fast_backbone(monkeypatch, tiny_backbone):
    """Hand the CLI copies of the session's tiny backbone instead of building one per command."""
    calls = []

    def load(spec, *args, **kwargs):
        calls.append(spec)
        assert spec == "tiny"
        return copy.deepcopy(tiny_backbone)

    monkeypatch.setattr(medpeft.backbones.clip, "load_backbone", load)
    return calls


def _error(capsys) -> str:
    return capsys.readouterr().err


def test_eval_end_to_end(rsna, tmp_path, capsys):
    out = tmp_path / "run"
    data = rsna / "prepared"
    argv = [
        "eval",
        "--backbone",
        "tiny",
        "--dataset",
        "rsna",
        "--data",
        str(data),
        "--split",
        "train",
        "--out",
        str(out),
        "--bootstrap",
        "20",
        "--quiet",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| rsna (train) | base |" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    preds = pd.read_csv(out / "predictions.csv")
    assert metrics["metrics"]["n"] == len(preds) == len(pd.read_csv(data / "train.csv"))
    assert metrics["class_names"] == ["No Finding", "pneumonia"] and metrics["model"]["kind"] == "base"
    assert metrics["prompts"]["pneumonia"] == [
        "a chest X-ray showing pneumonia.",
        "pneumonia presented in the chest radiograph.",
    ]
    assert {"roc.png", "confusion.png", "results.md"} <= {p.name for p in out.iterdir()}
    assert main(argv) == 1
    assert "already holds results" in _error(capsys)


def test_eval_several_adapters_and_datasets(rsna, tmp_path, capsys, fast_backbone, tiny_backbone):
    from medpeft.data.prepare import prepare
    from medpeft.data.synthetic import synthesize

    synthesize("mhist", tmp_path / "mhist-raw", n=12, seed=1, image_size=64)
    prepare("mhist", tmp_path / "mhist-raw", tmp_path / "mhist", image_size=64, progress=False)
    deep_model(tiny_backbone).save_pretrained(tmp_path / "ace")
    deep_model(tiny_backbone, hgnn=(), label_guided=False).save_pretrained(tmp_path / "lora")
    out = tmp_path / "table"
    argv = [
        "eval",
        "--backbone",
        "tiny",
        "--adapter",
        "none",
        "--adapter",
        str(tmp_path / "ace"),
        "--adapter",
        str(tmp_path / "lora"),
        "--dataset",
        f"rsna={rsna / 'prepared'}",
        "--dataset",
        f"mhist={tmp_path / 'mhist'}",
        "--split",
        "train",
        "--bootstrap",
        "0",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for adapter in ("base", "ace", "lora"):
        for dataset in ("rsna", "mhist"):
            assert f"| {dataset} (train) | {adapter} |" in printed
            assert (out / adapter / dataset / "metrics.json").is_file()
    kinds = {
        a: json.loads((out / a / "rsna" / "metrics.json").read_text())["model"]["kind"]
        for a in ("base", "ace", "lora")
    }
    assert kinds == {"base": "base", "ace": "ace-lora", "lora": "lora"}
    assert (out / "results.md").read_text().count("(train) |") == 6
    assert fast_backbone == ["tiny"]  # loaded once, copied per adapter


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "chexpurt", "--data", "."], "unknown dataset 'chexpurt'"),
        (["--dataset", "rsna"], "give its folder with --data DIR"),
        (["--dataset", "rsna=.", "--adapter", "missing.pt"], "adapter not found: missing.pt"),
        (["--dataset", "siim", "--data", "{rsna}"], "holds the prepared dataset 'rsna', not 'siim'"),
        (["--dataset", "rsna", "--data", "{rsna}", "--split", "valid"], "no 'valid' split"),
        (["--dataset", "rsna", "--data", "{rsna}", "--templates", "{tpl}"], "no '{}' placeholder"),
    ],
)
def test_eval_bad_arguments(extra, message, rsna, tmp_path, capsys, fast_backbone):
    (tmp_path / "t.txt").write_text("a template without a placeholder\n")
    extra = [e.format(rsna=rsna / "prepared", tpl=tmp_path / "t.txt") for e in extra]
    assert main(["eval", "--backbone", "tiny", *extra, "--quiet"]) == 1
    assert message in _error(capsys)
    assert fast_backbone == []  # nothing loaded before the arguments were checked


def test_predict_files_folders_dicom_and_heatmaps(rsna, tmp_path, capsys, fast_backbone):
    dicoms = sorted((rsna / "raw").rglob("*.dcm"))[:2]
    folder = tmp_path / "pngs"
    pngs = [write_noise_png(folder / "sub" / f"x{i}.png", seed=i) for i in range(2)]
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "preds.csv"
    argv = [
        "predict",
        "--backbone",
        "tiny",
        "--labels",
        "no finding, pneumonia",
        "--templates",
        "chest-xray",
        "--out",
        str(out),
        "--heatmap",
        str(tmp_path / "maps"),
        "--quiet",
        str(folder),
        *map(str, dicoms),
    ]
    assert main(argv) == 0
    frame = pd.read_csv(out)
    assert frame["image"].tolist() == [*map(str, pngs), *map(str, dicoms)]
    assert list(frame.columns) == ["image", "predicted", "no finding", "pneumonia"]
    assert len(list((tmp_path / "maps").glob("*.png"))) == 4
    assert main(argv) == 1
    assert "exists; use --overwrite" in _error(capsys)


def test_predict_bad_inputs(tmp_path, capsys, fast_backbone):
    empty = tmp_path / "empty"
    empty.mkdir()
    good = write_noise_png(tmp_path / "ok.png", seed=0)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x01" * 30)
    base = ["predict", "--backbone", "tiny", "--quiet"]
    assert main([*base, "--labels", "a,b", str(empty)]) == 1
    assert "no PNG, JPEG or DICOM images found under the folder" in _error(capsys)
    assert main([*base, "--labels", "pneumonia", str(good)]) == 1
    assert "at least two labels" in _error(capsys)
    assert main([*base, "--labels", "a,b", str(tmp_path / "nope.png")]) == 1
    assert "no such image file or folder" in _error(capsys)
    assert main([*base, "--labels", "a,b", "--out", str(tmp_path / "p.xlsx"), str(good)]) == 1
    assert ".csv or .json" in _error(capsys)
    assert fast_backbone == []
    assert main([*base, "--labels", "a,b", str(good), str(corrupt)]) == 1
    assert "corrupt.png" in _error(capsys)
    assert main([*base, "--labels", "a,b", "--on-bad-image", "skip", str(good), str(corrupt)]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 of 2 unreadable images" in captured.err and "corrupt.png" in captured.err
    assert "ok.png" in captured.out
