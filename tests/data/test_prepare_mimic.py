"""prepare mimic-cxr on a hand-built 4-study tree whose correct output is known line by line."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from prepare_fixtures import MIMIC_STUDIES, make_mimic

from medpeft.cli import main
from medpeft.data.labels import CHEXPERT_LABELS
from medpeft.data.manifest import read_dataset_info, read_manifest
from medpeft.data.prepare import prepare
from medpeft.errors import ConfigError, DataError, OutputExistsError


@pytest.fixture
def raw(tmp_path):
    return make_mimic(tmp_path / "raw")


def _run(raw, out, **kw):
    kw.setdefault("seed", 0)
    kw.setdefault("progress", False)
    return prepare("mimic-cxr", raw, out, **kw)


def test_hand_checked_output(raw, tmp_path):
    out = tmp_path / "out"
    summary = _run(raw, out, image_size=16)
    assert summary["kept"] == {"train": 1, "validate": 1, "test": 1}
    assert summary["dropped"] == {
        "images: view not PA/AP (lateral or other)": 1,
        "studies: report has neither FINDINGS nor IMPRESSION": 1,
        "images: study report missing or without FINDINGS/IMPRESSION": 1,
    }
    train, val, test = (read_manifest(out / f"{s}.csv") for s in ("train", "validate", "test"))
    assert (
        train["image_id"].tolist() == ["d1"]
        and val["image_id"].tolist() == ["d3"]
        and test["image_id"].tolist() == ["d5"]
    )
    assert (
        train["text"].iat[0] == "The heart is enlarged. Mild pulmonary edema. Cardiomegaly with mild edema."
    )
    assert val["text"].iat[0] == "Small right pleural effusion."
    assert test["text"].iat[0] == "Lungs are clear."
    # labels follow the study even though the CheXpert CSV rows are in reverse order
    ones = {
        s: [c for c in CHEXPERT_LABELS if df[c].iat[0] == 1]
        for s, df in (("t", train), ("v", val), ("x", test))
    }
    assert ones == {"t": ["Cardiomegaly"], "v": ["Pleural Effusion"], "x": ["No Finding"]}
    assert train["Edema"].iat[0] == 0  # -1 -> 0 (paper policy)
    subjects = [set(df["subject_id"]) for df in (train, val, test)]
    assert not (subjects[0] & subjects[1] or subjects[0] & subjects[2] or subjects[1] & subjects[2])
    assert (out / "images/files/p10/p10000001/s50000001/d1.png").is_file()
    info = read_dataset_info(out)
    assert info.task == "multilabel" and info.classes == list(CHEXPERT_LABELS) and info.has_text
    assert json.loads((out / "prepare_summary.json").read_text())["kept_total"] == 3


def test_without_cache_points_at_raw(raw, tmp_path):
    out = tmp_path / "out"
    _run(raw, out)
    df = pd.read_csv(out / "train.csv", dtype=str)
    assert df["image"].iat[0] == "../raw/files/p10/p10000001/s50000001/d1.jpg"
    assert read_manifest(out / "train.csv")["image"].iat[0].endswith("d1.jpg")


@pytest.mark.parametrize(
    ("policy", "edema", "values"), [("one", 1, [0.0, 1.0]), ("keep", -1, [-1.0, 0.0, 1.0])]
)
def test_uncertain_policy(raw, tmp_path, policy, edema, values):
    _run(raw, tmp_path / "out", uncertain=policy)
    assert read_manifest(tmp_path / "out/train.csv")["Edema"].iat[0] == edema
    assert read_dataset_info(tmp_path / "out").label_values == values


def test_label_outside_allowed_values(tmp_path):
    studies = [list(s) for s in MIMIC_STUDIES]
    studies[1][5] = {"Pleural Effusion": "2.0"}
    raw = make_mimic(tmp_path / "raw", [tuple(s) for s in studies])
    # rows are written reversed: study index 1 of 4 is on file line 4
    with pytest.raises(
        DataError, match=r"mimic-cxr-2\.0\.0-chexpert\.csv line 4, column 'Pleural Effusion': value '2\.0'"
    ):
        _run(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # a failed run leaves nothing behind


def test_study_in_labels_but_not_in_split(tmp_path):
    extra = {"subject_id": "10000009", "study_id": "59999999", **{c: "" for c in CHEXPERT_LABELS}}
    raw = make_mimic(tmp_path / "raw", extra_label_rows=[extra])
    with pytest.raises(
        DataError, match=r"line 2: study 59999999 has labels but is not in mimic-cxr-2\.0\.0-split\.csv"
    ):
        _run(raw, tmp_path / "out")
    summary = _run(raw, tmp_path / "out", on_missing="skip")
    assert summary["dropped"]["studies: in labels but not in split file"] == 1
    assert summary["kept"] == {"train": 1, "validate": 1, "test": 1}


def test_missing_image_error_or_skip(raw, tmp_path):
    gone = raw / "files/p10/p10000002/s50000002/d3.jpg"
    gone.unlink()
    with pytest.raises(
        DataError, match=rf"split\.csv line 4: image file not found: {gone}.*--on-missing skip"
    ):
        _run(raw, tmp_path / "out")
    summary = _run(raw, tmp_path / "out", on_missing="skip")
    assert summary["dropped"]["images: file missing"] == 1 and "validate" not in summary["kept"]


def test_missing_report(raw, tmp_path):
    (raw / "files/p10/p10000002/s50000002.txt").unlink()
    with pytest.raises(DataError, match=r"report not found: .*s50000002\.txt"):
        _run(raw, tmp_path / "out")


def test_truncated_csv(raw, tmp_path):
    path = raw / "mimic-cxr-2.0.0-split.csv"
    text = path.read_text()
    path.write_text(text[: text.rindex(",")])  # cut inside the last record
    with pytest.raises(
        DataError, match=r"split\.csv line 6: 3 fields where the header has 4; is the file truncated"
    ):
        _run(raw, tmp_path / "out")


def test_subject_in_two_splits(raw, tmp_path):
    path = raw / "mimic-cxr-2.0.0-split.csv"
    df = pd.read_csv(path, dtype=str)
    df.loc[df["dicom_id"] == "d5", "split"] = "train"
    df.to_csv(path, index=False)
    with pytest.raises(
        DataError, match=r"subject 10000003 is in both 'test' \(line 5\) and 'train' \(line 6\)"
    ):
        _run(raw, tmp_path / "out")


def test_corrupt_jpeg_error_or_skip(raw, tmp_path):
    bad = raw / "files/p10/p10000001/s50000001/d1.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DataError, match=rf"{bad}: corrupt or truncated"):
        _run(raw, tmp_path / "out")
    summary = _run(raw, tmp_path / "out", on_bad_image="skip")
    assert summary["dropped"]["unreadable image"] == 1 and "train" not in summary["kept"]


def test_out_dir_rules(raw, tmp_path):
    out = tmp_path / "out"
    _run(raw, out, fractions=[0.5])
    assert (out / "train_fraction_0.5.csv").is_file()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        _run(raw, out)
    (out / "mine.txt").write_text("user file")
    _run(raw, out, overwrite=True)
    assert not (out / "train_fraction_0.5.csv").exists()  # stale output of the earlier run removed
    assert (out / "mine.txt").read_text() == "user file"  # not ours: left alone
    with pytest.raises(ConfigError, match="must not be inside one another"):
        _run(raw, raw / "prepared")
    with pytest.raises(ConfigError, match="unknown option"):
        _run(raw, tmp_path / "o2", mask_size=3)


def test_cli(raw, tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(["prepare", "mimic-cxr", "--raw", str(raw), "--out", str(out), "--image-size", "16", "--quiet"])
        == 0
    )
    text = capsys.readouterr().out
    assert "train" in text and "report has neither FINDINGS nor IMPRESSION: 1" in text
    assert main(["prepare", "mimic-cxr", "--raw", str(raw), "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (
        main(["prepare", "rsna", "--raw", str(raw), "--out", str(tmp_path / "x"), "--uncertain", "one"]) == 1
    )
    assert "--uncertain does not apply to rsna" in capsys.readouterr().err
    assert main(["prepare", "nosuch", "--raw", str(raw), "--out", str(tmp_path / "y")]) == 1
    assert "unknown dataset 'nosuch'" in capsys.readouterr().err
