"""prepare nih-cxr14, lc25000, mhist, chexpert-5x200 and generic on hand-built layouts."""

from __future__ import annotations

import pandas as pd
import pytest
from prepare_fixtures import write_jpeg, write_png

from medpeft.data.labels import CHEXPERT_5X200_CLASSES, CHEXPERT_LABELS, LC25000_CLASSES, NIH_LABELS
from medpeft.data.manifest import read_dataset_info, read_manifest
from medpeft.data.prepare import prepare
from medpeft.errors import DataError


def _run(dataset, raw, out, **kw):
    return prepare(dataset, raw, out, seed=kw.pop("seed", 0), progress=False, **kw)


# ---------------------------------------------------------------- NIH ChestX-ray14
def _nih(root, findings=None):
    entries = [
        ("00000001_000.png", "Effusion|Mass", "1"),
        ("00000001_001.png", "No Finding", "1"),
        ("00000002_000.png", "Hernia", "2"),
        ("00000003_000.png", "No Finding", "3"),
        ("00000004_000.png", "Pleural_Thickening|Nodule", "4"),
        ("00000004_001.png", "No Finding", "4"),
        ("00000005_000.png", "Atelectasis", "5"),
        ("00000006_000.png", "No Finding", "6"),
    ]
    if findings:
        entries[2] = (entries[2][0], findings, "2")
    for k, (name, _, _) in enumerate(entries):
        write_png(root / f"images_00{1 + k % 2}" / "images" / name, value=k)
    pd.DataFrame(
        [
            {
                "Image Index": n,
                "Finding Labels": f,
                "Follow-up #": "0",
                "Patient ID": p,
                "View Position": "PA",
            }
            for n, f, p in entries
        ]
    ).to_csv(root / "Data_Entry_2017.csv", index=False)
    (root / "train_val_list.txt").write_text("\n".join(n for n, _, p in entries if p != "5") + "\n")
    (root / "test_list.txt").write_text("00000005_000.png\n")
    return root


def test_nih(tmp_path):
    raw = _nih(tmp_path / "raw")
    summary = _run("nih-cxr14", raw, tmp_path / "out", val_size=2)
    test = read_manifest(tmp_path / "out/test.csv")
    train, val = read_manifest(tmp_path / "out/train.csv"), read_manifest(tmp_path / "out/validate.csv")
    assert test["image_id"].tolist() == ["00000005_000.png"] and test["Atelectasis"].iat[0] == 1
    assert len(val) >= 2 and not set(val["subject_id"]) & set(train["subject_id"])
    assert summary["kept"]["train"] + summary["kept"]["validate"] == 7
    rows = pd.concat([train, val]).set_index("image_id")
    assert [c for c in NIH_LABELS if rows.loc["00000001_000.png", c] == 1] == ["Effusion", "Mass"]
    assert rows.loc["00000004_000.png", "Pleural_Thickening"] == 1
    assert rows.loc["00000001_001.png", list(NIH_LABELS)].sum() == 0
    info = read_dataset_info(tmp_path / "out")
    assert info.task == "multilabel" and "Pleural Thickening" in info.class_names


def test_nih_unknown_finding(tmp_path):
    raw = _nih(tmp_path / "raw", findings="Hernia|Broken Heart")
    with pytest.raises(
        DataError,
        match=r"Data_Entry_2017\.csv line 4: Finding Labels 'Hernia\|Broken Heart' holds 'Broken Heart'",
    ):
        _run("nih-cxr14", raw, tmp_path / "out")


# ---------------------------------------------------------------- LC25000 and MHIST
def _lc(root, empty=None):
    for k, cls in enumerate(LC25000_CLASSES):
        group = "lung_image_sets" if cls.startswith("lung") else "colon_image_sets"
        folder = root / "lung_colon_image_set" / group / cls
        folder.mkdir(parents=True)
        if cls != empty:
            for i in range(2):
                write_jpeg(folder / f"{cls}{i}.jpeg", mode="RGB", value=10 * k + i)
    return root


def test_lc25000(tmp_path):
    _run("lc25000", _lc(tmp_path / "raw"), tmp_path / "out", image_size=16)
    df = read_manifest(tmp_path / "out/test.csv")
    assert len(df) == 10 and (df[list(LC25000_CLASSES)].sum(axis=1) == 1).all()
    assert df["image"].str.endswith(".jpg").all()  # colour cache is JPEG
    assert df.set_index("image_id").loc["lung_image_sets/lung_scc/lung_scc1", "lung_scc"] == 1
    assert read_dataset_info(tmp_path / "out").class_names[0] == "lung adenocarcinoma"


def test_lc25000_empty_folder(tmp_path):
    with pytest.raises(DataError, match=r"colon_n holds no \.jpeg"):
        _run("lc25000", _lc(tmp_path / "raw", empty="colon_n"), tmp_path / "out")


def _mhist(root, bad_label=None):
    rows = []
    for i in range(6):
        name = f"MHIST_{i:03d}.png"
        write_png(root / "images" / name, mode="RGB", value=i)
        rows.append(
            {
                "Image Name": name,
                "Majority Vote Label": "SSA" if i % 2 else "HP",
                "Number of Annotators who Selected SSA (Out of 7)": "3",
                "Partition": "test" if i > 3 else "train",
            }
        )
    if bad_label:
        rows[2]["Majority Vote Label"] = bad_label
    pd.DataFrame(rows).to_csv(root / "annotations.csv", index=False)
    return root


def test_mhist(tmp_path):
    summary = _run("mhist", _mhist(tmp_path / "raw"), tmp_path / "out")
    assert summary["kept"] == {"train": 4, "test": 2}
    test = read_manifest(tmp_path / "out/test.csv")
    assert test["image_id"].tolist() == ["MHIST_004.png", "MHIST_005.png"] and test["SSA"].tolist() == [0, 1]
    info = read_dataset_info(tmp_path / "out")
    assert info.task == "binary" and info.positive_class == "SSA"


def test_mhist_bad_label(tmp_path):
    with pytest.raises(
        DataError, match=r"annotations\.csv line 4: Majority Vote Label 'TA' is not one of HP, SSA"
    ):
        _run("mhist", _mhist(tmp_path / "raw", bad_label="TA"), tmp_path / "out")


# ---------------------------------------------------------------- CheXpert 5x200
def _chexpert(root):
    rows = []
    k = 0
    for cls in CHEXPERT_5X200_CLASSES:
        for i in range(3):
            labels = {c: "" for c in CHEXPERT_LABELS}
            labels[cls] = "1.0"
            if i == 2:  # a second finding positive: not a clean 5x200 row
                labels["Pneumonia" if cls != "Edema" else "Lung Opacity"] = (
                    "1.0" if cls != "Cardiomegaly" else "-1.0"
                )
            k += 1
            path = f"CheXpert-v1.0-small/train/patient{k:05d}/study1/view1_frontal.jpg"
            write_jpeg(root / path, value=k)
            rows.append(
                {
                    "Path": path,
                    "Sex": "Male",
                    "Age": "60",
                    "Frontal/Lateral": "Frontal",
                    "AP/PA": "AP",
                    **labels,
                }
            )
            lat = path.replace("view1_frontal", "view2_lateral")
            write_jpeg(root / lat, value=k + 100)
            rows.append(
                {"Path": lat, "Sex": "Male", "Age": "60", "Frontal/Lateral": "Lateral", "AP/PA": "", **labels}
            )
    (root / "CheXpert-v1.0-small").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "CheXpert-v1.0-small/train.csv", index=False)
    return root


def test_chexpert_5x200(tmp_path):
    raw = _chexpert(tmp_path / "raw")
    summary = _run("chexpert-5x200", raw, tmp_path / "out", n_per_class=2)
    df = read_manifest(tmp_path / "out/test.csv")
    assert len(df) == 10 and summary["class_counts"]["test"] == dict.fromkeys(CHEXPERT_5X200_CLASSES, 2)
    assert summary["dropped"]["images: lateral view"] == 15
    assert not df["image"].str.contains("lateral").any()
    assert "test.csv" in read_dataset_info(tmp_path / "out").splits.values()
    with pytest.raises(DataError, match=r"only 2 frontal rows qualify for 'Atelectasis'"):
        _run("chexpert-5x200", raw, tmp_path / "out2", n_per_class=3)


def test_chexpert_from_existing_csv(tmp_path):
    raw = _chexpert(tmp_path / "raw")
    path = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"
    good = pd.DataFrame([{"Path": path, **{c: int(c == "Atelectasis") for c in CHEXPERT_5X200_CLASSES}}])
    good.to_csv(tmp_path / "5x200.csv", index=False)
    _run("chexpert-5x200", raw, tmp_path / "out", from_csv=tmp_path / "5x200.csv")
    assert read_manifest(tmp_path / "out/test.csv")["Atelectasis"].tolist() == [1]
    good["Edema"] = 1
    good.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(
        DataError, match=r"bad\.csv line 2: a 5x200 row needs exactly one .* \(got Atelectasis, Edema\)"
    ):
        _run("chexpert-5x200", raw, tmp_path / "out2", from_csv=tmp_path / "bad.csv")


# ---------------------------------------------------------------- generic image-text CSV
def test_generic(tmp_path):
    raw = tmp_path / "raw"
    rows = []
    for i in range(12):
        write_png(raw / "imgs" / f"{i}.png", value=i)
        rows.append(
            {
                "image": f"imgs/{i}.png",
                "text": f"report {i}",
                "Edema": ["1", "0", "-1", ""][i % 4],
                "subject_id": f"s{i // 2:03d}",
            }
        )
    rows[5]["text"] = "  "
    pd.DataFrame(rows).to_csv(raw / "manifest.csv", index=False)
    summary = _run("generic", raw, tmp_path / "out", val_fraction=0.34, uncertain="keep")
    assert summary["dropped"] == {"rows: empty text": 1}
    train, val = read_manifest(tmp_path / "out/train.csv"), read_manifest(tmp_path / "out/validate.csv")
    assert len(train) + len(val) == 11 and not set(train["subject_id"]) & set(val["subject_id"])
    assert set(pd.concat([train, val])["Edema"]) == {-1.0, 0.0, 1.0}
    rows[3]["Edema"] = "yes"
    pd.DataFrame(rows).to_csv(raw / "manifest.csv", index=False)
    with pytest.raises(
        DataError, match=r"manifest\.csv line 5, column 'Edema': value 'yes' is not one of 1, 0, -1 or blank"
    ):
        _run("generic", raw, tmp_path / "out2")


def test_nih_corrupt_png_error_or_skip(tmp_path):
    raw = _nih(tmp_path / "raw")
    bad = raw / "images_002/images/00000001_001.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"cannot read image {bad}: corrupt or truncated"):
        _run("nih-cxr14", raw, tmp_path / "out")
    summary = _run("nih-cxr14", raw, tmp_path / "out", on_bad_image="skip")
    assert summary["dropped"] == {"unreadable image": 1}
    assert summary["dropped_examples"]["unreadable image"] == [str(bad)]


def test_empty_or_missing_raw(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        DataError, match=r"Data_Entry_2017\.csv not found: expected .*empty/Data_Entry_2017\.csv"
    ):
        _run("nih-cxr14", tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DataError, match=r"--raw .*nowhere does not exist"):
        _run("mhist", tmp_path / "nowhere", tmp_path / "out")


@pytest.mark.parametrize("image_size", [None, 16])
def test_relative_raw_and_out_paths(tmp_path, monkeypatch, image_size):
    """``medpeft prepare lc25000 --raw raw --out out`` from the working folder, with and without a cache."""
    _lc(tmp_path / "raw")
    monkeypatch.chdir(tmp_path)
    _run("lc25000", "raw", "out", image_size=image_size)
    df = read_manifest(tmp_path / "out/test.csv", check_files=True)
    assert len(df) == 10
    assert not list(tmp_path.glob(".out.partial-*"))
