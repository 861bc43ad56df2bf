"""Per-dataset class names and templates; user template files with clear errors."""

from __future__ import annotations

import json

import pytest

from medpeft.errors import ConfigError
from medpeft.evaluation.prompts import DATASETS, build_prompts, dataset_prompts, load_templates


def test_dataset_defaults():
    assert dataset_prompts("chexpert-5x200").class_names == (
        "Atelectasis",
        "Cardiomegaly",
        "Consolidation",
        "Edema",
        "Pleural Effusion",
    )
    assert dataset_prompts("rsna").class_names == ("No Finding", "pneumonia")
    assert dataset_prompts("siim").class_names == ("No Finding", "pneumothorax")
    mhist = dataset_prompts("mhist")
    assert dict(zip(mhist.label_keys, mhist.class_names, strict=True)) == {
        "HP": "hyperplastic polyp",
        "SSA": "sessile serrated adenoma",
    }
    lc = dataset_prompts("lc25000")
    assert dict(zip(lc.label_keys, lc.class_names, strict=True)) == {
        "lung_aca": "lung adenocarcinoma",
        "lung_n": "benign lung tissue",
        "lung_scc": "lung squamous cell carcinoma",
        "colon_aca": "colon adenocarcinoma",
        "colon_n": "benign colonic tissue",
    }
    nih = dataset_prompts("nih")  # alias
    assert nih.task == "multilabel" and len(nih.class_names) == 14 and "Pleural Thickening" in nih.class_names
    assert "Pleural_Thickening" in nih.label_keys
    assert {d.task for d in DATASETS.values()} == {"multiclass", "binary", "multilabel"}
    for spec in DATASETS.values():
        prompts = spec.prompts()
        assert len(prompts) == len(spec.class_names) and all(len(p) == len(spec.templates) for p in prompts)
    assert dataset_prompts("rsna").prompts()[1][0] == "a chest X-ray showing pneumonia."
    assert "histopathology" in dataset_prompts("mhist").templates[0]


def test_unknown_or_training_only_dataset():
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'"):
        dataset_prompts("imagenet")
    with pytest.raises(ConfigError, match="'mimic-cxr' has no zero-shot classes"):
        dataset_prompts("mimic-cxr")


def test_build_prompts_shape_and_mapping():
    assert build_prompts(["a", "b"], ["x {}.", "{} y"]) == [["x a.", "a y"], ["x b.", "b y"]]
    mapping = {"a": ["first a", "second {}"], "b": ["first b", "second b"], "unused": ["x", "y"]}
    assert build_prompts(["a", "b"], mapping) == [["first a", "second a"], ["first b", "second b"]]
    with pytest.raises(ConfigError, match=r"no prompts for \['c'\]"):
        build_prompts(["a", "c"], mapping)
    with pytest.raises(ConfigError, match="same number of prompts"):
        build_prompts(["a", "b"], {"a": ["1", "2"], "b": ["1"]})
    with pytest.raises(ConfigError, match="no '\\{\\}' placeholder"):
        build_prompts(["a"], ["no placeholder"])


def test_load_text_templates(tmp_path):
    path = tmp_path / "templates.txt"
    path.write_text("# my prompts\n\na radiograph with {}.\n  {} seen on the film  \n", encoding="utf-8")
    assert load_templates(path) == ["a radiograph with {}.", "{} seen on the film"]
    path.write_text("a radiograph with {}.\n\nmissing the placeholder\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"templates.txt, line 3: template 'missing the placeholder' has no"
    ):
        load_templates(path)
    path.write_text("# only a comment\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no templates"):
        load_templates(path)


def test_load_json_templates(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(["a {}", "b {}"]), encoding="utf-8")
    assert load_templates(listed) == ["a {}", "b {}"]
    per_class = tmp_path / "per_class.json"
    per_class.write_text(
        json.dumps({"pneumonia": ["lung infection"], "No Finding": "normal chest"}), encoding="utf-8"
    )
    loaded = load_templates(per_class)
    assert build_prompts(["No Finding", "pneumonia"], loaded) == [["normal chest"], ["lung infection"]]
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": ["x",]}', encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        load_templates(broken)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": []}), encoding="utf-8")
    with pytest.raises(ConfigError, match="class 'a' must map to a non-empty list"):
        load_templates(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_templates(tmp_path / "missing.txt")
