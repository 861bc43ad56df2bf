"""`synthesize()` and `medpeft synth`: determinism, refusing to clobber, clear errors, the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from medpeft.cli import main
from medpeft.data.datasets import DATASETS, resolve_dataset
from medpeft.data.synthetic import synthesize
from medpeft.errors import ConfigError, OutputExistsError


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(("dataset", "n"), [("mimic-cxr", 6), ("rsna", 5), ("siim", 5), ("mhist", 3)])
def test_same_seed_same_bytes_and_different_seed_different_data(tmp_path, dataset, n):
    a = _digest(Path(synthesize(dataset, tmp_path / "a", n=n, seed=3, image_size=64)["out"]))
    b = _digest(Path(synthesize(dataset, tmp_path / "b", n=n, seed=3, image_size=64)["out"]))
    c = _digest(Path(synthesize(dataset, tmp_path / "c", n=n, seed=4, image_size=64)["out"]))
    assert a == b
    assert a != c
    shared = set(a) & set(c)
    assert all(a[k] != c[k] for k in shared if k.endswith((".jpg", ".dcm", ".png")))


def test_summary_names_counts_and_paths(tmp_path):
    summary = synthesize("siim", tmp_path / "s", n=4, seed=0, image_size=64)
    assert summary["dataset"] == "siim" and summary["n"] == 4 and summary["image_size"] == 64
    assert summary["counts"]["images"] == 4
    for rel in summary["paths"].values():
        assert (Path(summary["out"]) / rel).exists()
    truth = json.loads((Path(summary["out"]) / summary["truth"]).read_text())
    assert truth["dataset"] == "siim" and len(truth["images"]) == 4


def test_chexpert_alias_and_dataset_names():
    assert resolve_dataset("chexpert") == "chexpert-5x200"
    assert resolve_dataset("NIH_CXR14") == "nih-cxr14"
    assert [resolve_dataset(d) for d in DATASETS] == list(DATASETS)


def test_unknown_dataset_lists_the_valid_names(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset 'chest'.*mimic-cxr.*mhist"):
        synthesize("chest", tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing written before validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n": 0}, "n must be"), ({"image_size": 8}, "image size"), ({"seed": -1}, "seed")],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        synthesize("mhist", tmp_path / "x", **kwargs)


def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not empty"):
        synthesize("mhist", out, n=2, image_size=64)
    synthesize("mhist", out, n=2, image_size=64, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"  # a folder synth did not write is never emptied
    assert len(list((out / "images").iterdir())) == 2
    synthesize("mhist", out, n=3, image_size=64, overwrite=True)  # a previous synth output is replaced


def test_previous_synth_output_is_replaced_on_overwrite(tmp_path):
    out = tmp_path / "out"
    synthesize("mhist", out, n=4, image_size=64)
    synthesize("mhist", out, n=2, image_size=64, overwrite=True)
    assert len(list((out / "images").iterdir())) == 2  # no stale images from the first run


def test_progress_callback_counts_every_image(tmp_path):
    seen: list[int] = []
    synthesize("chexpert", tmp_path / "c", n=1, image_size=64, progress=seen.append)
    frame_rows = (tmp_path / "c" / "CheXpert-v1.0-small" / "train.csv").read_text().strip().splitlines()
    assert sum(seen) == len(frame_rows) - 1


def test_cli_writes_a_dataset(tmp_path, capsys):
    assert (
        main(["synth", "mhist", "--out", str(tmp_path / "m"), "--n", "3", "--image-size", "64", "--quiet"])
        == 0
    )
    out = capsys.readouterr().out
    assert "wrote synthetic mhist" in out and "annotations.csv" in out
    assert (tmp_path / "m" / "annotations.csv").is_file()


def test_cli_errors_are_one_clean_line(tmp_path, capsys):
    assert main(["synth", "nope", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown dataset 'nope'" in err[0] and "rsna" in err[0]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert main(["synth", "rsna", "--out", str(tmp_path / "full"), "--n", "1", "--quiet"]) == 1
    assert "not empty" in capsys.readouterr().err


def test_cli_help_explains_the_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in (
        "DATASET",
        "--out",
        "--n",
        "--seed",
        "--image-size",
        "--overwrite",
        "synthetic_truth.json",
        "chexpert",
    ):
        assert word in text
