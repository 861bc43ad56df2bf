"""prepare vqa-rad: test_* phrase types are the test split; image leakage dropped (or kept by name); bad items named."""

from __future__ import annotations

import json
import shutil

import pytest
from a3data_fixtures import assert_no_image_in_two_splits, read_all, run, synth, truth

from medpeft.errors import ConfigError, DataError

JSON = "VQA_RAD Dataset Public.json"


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return synth(tmp_path_factory.mktemp("vqarad"), "vqa-rad", n=15)


def _edit(raw, tmp_path, change):
    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    items = json.loads((copy / JSON).read_text())
    change(items)
    (copy / JSON).write_text(json.dumps(items))
    return copy


def test_split_by_phrase_type_and_leak_dropped(raw, tmp_path):
    items = json.loads((raw / JSON).read_text())
    test_images = {q["image_name"] for q in items if q["phrase_type"].startswith("test_")}
    leaked = [q for q in items if q["image_name"] in test_images and not q["phrase_type"].startswith("test_")]
    assert len(leaked) == 1  # the synthetic release, like the real one, shares an image
    summary = run("vqa-rad", raw, tmp_path / "out")
    samples = read_all(tmp_path / "out")
    assert set(samples) == {"train", "test"}  # no validation split in VQA-RAD
    assert summary["dropped"] == {
        "samples: image also in the test split (dropped from train to avoid leakage)": 1
    }
    assert summary["kept_total"] == len(items) - 1
    assert {s.extra["qid"] for s in samples["test"]} == {
        str(q["qid"]) for q in items if q["phrase_type"].startswith("test_")
    }
    assert_no_image_in_two_splits(samples)
    gold = truth(raw)
    for s in samples["train"] + samples["test"]:
        record = gold[f"VQA_RAD Image Folder/{_name(items, s.extra['qid'])}"]
        assert {"question": s.question, "answer": s.answer, "closed": s.answer_type == "closed"} in record[
            "qa"
        ]
        assert s.organ == "CHEST" and s.modality is None
        assert (s.lesion_mask is not None) == (record["finding"] is not None)


def _name(items, qid):
    return next(q["image_name"] for q in items if str(q["qid"]) == qid)


def test_keep_reproduces_the_published_split(raw, tmp_path):
    summary = run("vqa-rad", raw, tmp_path / "out", image_overlap="keep")
    assert summary["dropped"] == {}
    assert any("kept as published" in note for note in summary["notes"])
    with pytest.raises(ConfigError, match="image_overlap must be one of"):
        run("vqa-rad", raw, tmp_path / "bad", image_overlap="move")


def test_number_answers_become_text(raw, tmp_path):
    copy = _edit(raw, tmp_path, lambda it: it[0].update(answer=3, answer_type="OPEN"))
    run("vqa-rad", copy, tmp_path / "out")
    rows = {s.extra["qid"]: s for split in read_all(tmp_path / "out").values() for s in split}
    assert rows["1"].answer == "3" and rows["1"].answer_type == "open"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda it: it[2].update(image_name="synpic1.jpg"), r"item 2: image file not found: .*synpic1\.jpg"),
        (lambda it: it[2].update(answer_type="closed?"), r"item 2: field 'answer_type' is 'closed\?'"),
        (lambda it: it[2].update(phrase_type=""), r"item 2: missing field 'phrase_type'"),
        (lambda it: it[2].pop("answer"), r"item 2: missing field\(s\) \['answer'\]"),
        (lambda it: it[2].update(qid=it[1]["qid"]), r"item 2: qid \d+ appears twice \(first at .*item 1\)"),
    ],
)
def test_bad_items_are_named(raw, tmp_path, change, message):
    with pytest.raises(DataError, match=message):
        run("vqa-rad", _edit(raw, tmp_path, change), tmp_path / "out")
