"""synth slake / vqa-rad / pathvqa / iu-xray: determinism, answers from the truth, lesion sites, registry, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from a3data_fixtures import cli, read_all, synth, truth
from PIL import Image

from medpeft.data.datasets import CONVERSATION_DATASETS, REGISTRY, resolve_dataset
from medpeft.data.synthetic.vqa import VQA_FINDINGS, lesion_site
from medpeft.errors import ConfigError

A3TUNE = ("slake", "vqa-rad", "pathvqa", "iu-xray")


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("dataset", A3TUNE)
def test_same_seed_same_bytes(tmp_path, dataset):
    a = _digest(synth(tmp_path / "a", dataset, n=6, seed=3))
    b = _digest(synth(tmp_path / "b", dataset, n=6, seed=3))
    c = _digest(synth(tmp_path / "c", dataset, n=6, seed=4))
    assert a and a == b
    assert a != c


def test_lesion_site_hand_cases():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:4, 1:3] = True  # image left = patient's right
    assert lesion_site(mask) == "right lung"
    mask[:] = False
    mask[5:7, 7:9] = True
    assert lesion_site(mask) == "left lung"
    mask[5:7, 1:3] = True  # half on each side
    assert lesion_site(mask) == "both lungs"
    mask[:] = False
    mask[0:10, 1:5] = True  # 40 pixels left of the midline
    mask[0, 5] = True  # one pixel across: still one lung (share > 0.9)
    assert lesion_site(mask) == "right lung"


@pytest.mark.parametrize("dataset", ["slake", "vqa-rad"])
def test_questions_are_answerable_from_the_truth_and_balanced(tmp_path, dataset):
    raw = synth(tmp_path, dataset, n=24, size=64)
    gold = truth(raw)
    assert len(gold) == 24
    yes = no = 0
    names = {v: k for k, v in VQA_FINDINGS.items()}
    for record in gold.values():
        finding = record["finding"]
        assert (record["lesion_mask"] is None) == (finding is None)
        if finding is not None:  # the site answer is the site of the saved true mask
            mask = np.array(Image.open(raw / record["lesion_mask"])) > 0
            assert mask.any() and lesion_site(mask) == record["site"]
        for qa in record["qa"]:
            q, a = qa["question"], qa["answer"].lower()
            if q.startswith("Is there a "):
                asked = names[q.removeprefix("Is there a ").removesuffix(" in this image?")]
                assert a == ("yes" if asked == finding else "no")
            elif q == "Is this chest X-ray normal?":
                assert a == ("yes" if finding is None else "no")
            elif q == "What abnormality is seen?":
                assert a == VQA_FINDINGS[finding]
            else:
                assert q == f"Where is the {VQA_FINDINGS[finding]}?" and a == record["site"]
            yes += qa["closed"] and a == "yes"
            no += qa["closed"] and a == "no"
    assert yes == no == 24


def test_registry_entries():
    assert CONVERSATION_DATASETS == A3TUNE
    assert {d: (REGISTRY[d].kind, REGISTRY[d].weak_label_k) for d in A3TUNE} == {
        "slake": ("vqa", 8), "vqa-rad": ("vqa", 8), "pathvqa": ("vqa", 8), "iu-xray": ("report", 4)}  # fmt: skip
    assert REGISTRY["mimic-cxr"].kind == "image-label" and REGISTRY["mimic-cxr"].weak_label_k == 4
    assert REGISTRY["rsna"].kind == "image-label" and not REGISTRY["rsna"].is_conversation
    assert [resolve_dataset(a) for a in ("VQA_RAD", "path-vqa", "openi")] == ["vqa-rad", "pathvqa", "iu-xray"]
    with pytest.raises(ConfigError, match="kind must be one of"):
        type(REGISTRY["rsna"])("x", "x", "x", "x", 1, 64, kind="qa")


def test_cli_synth_then_prepare(tmp_path, capsys):
    assert (
        cli("synth", ["vqa-rad", "--out", str(tmp_path / "raw"), "--n", "8", "--image-size", "64", "--quiet"])
        == 0
    )
    assert "wrote synthetic vqa-rad" in capsys.readouterr().out
    argv = [
        "vqa-rad",
        "--raw",
        str(tmp_path / "raw"),
        "--out",
        str(tmp_path / "out"),
        "--image-overlap",
        "keep",
    ]
    assert cli("prepare", [*argv, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "samples" in out and "kept as published" in out
    summary = json.loads((tmp_path / "out" / "prepare_summary.json").read_text())
    assert summary["options"]["image_overlap"] == "keep" and summary["unit"] == "samples"
    assert sum(len(v) for v in read_all(tmp_path / "out").values()) == summary["kept_total"]
    with pytest.raises(ConfigError, match="--split-fractions does not apply to vqa-rad"):
        cli("prepare", [*argv[:4], str(tmp_path / "o2"), "--split-fractions", "0.5", "0.25", "0.25"])


def test_cli_help_lists_the_new_datasets_and_flags(capsys):
    with pytest.raises(SystemExit):
        cli("prepare", ["--help"])
    text = capsys.readouterr().out
    for word in (
        "slake",
        "llava-json",
        "--reports-for",
        "--image-overlap",
        "--split-fractions",
        "--images-dir",
    ):
        assert word in text
    with pytest.raises(SystemExit):
        cli("synth", ["--help"])
    text = capsys.readouterr().out
    assert all(d in text for d in A3TUNE)
