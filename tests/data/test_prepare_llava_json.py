"""prepare llava-json: the authors' released {training,test}.json read, validated, images checked, ids unique."""

from __future__ import annotations

import json

import pytest
from a3data_fixtures import read_all, run
from prepare_fixtures import write_png

from medpeft.data.conversation_info import read_conversation_info
from medpeft.errors import DataError


def _item(i, image, answer):
    return {"id": f"q{i}", "image": image, "conversations": [
        {"from": "human", "value": f"<image>\nQuestion {i}?"}, {"from": "gpt", "value": answer}]}  # fmt: skip


def _folder(root, train, test, images=("a.png", "b.png", "c.png")):
    root.mkdir(parents=True)
    for name in images:
        write_png(root / "imgs" / name)
    (root / "training.json").write_text(json.dumps(train))
    (root / "test.json").write_text(json.dumps(test))
    return root


def test_authors_json_round_trip_with_inferred_answer_types(tmp_path):
    raw = _folder(
        tmp_path / "raw",
        [_item(1, "a.png", "Yes"), _item(2, "a.png", "left lung"), _item(3, "b.png", "no")],
        [_item(4, "c.png", "liver")],
    )
    summary = run("llava-json", raw, tmp_path / "out", images_dir=raw / "imgs", name="slake", image_size=16)
    samples = read_all(tmp_path / "out")
    assert set(samples) == {"train", "test"} and summary["kept"] == {"train": 3, "test": 1}
    assert [(s.id, s.answer_type, s.dataset) for s in samples["train"]] == [
        ("q1", "closed", "slake"), ("q2", "open", "slake"), ("q3", "closed", "slake")]  # fmt: skip
    assert samples["train"][0].image == samples["train"][1].image == "images/a.png"
    info = read_conversation_info(tmp_path / "out")
    assert info.name == "slake" and info.kind == "vqa" and info.weak_label_k == 8


def test_report_kind_and_leakage(tmp_path):
    raw = _folder(tmp_path / "raw", [_item(1, "a.png", "Lungs clear."), _item(2, "b.png", "Effusion.")],
                  [_item(3, "a.png", "Lungs clear.")])  # fmt: skip
    summary = run("llava-json", raw, tmp_path / "out", images_dir=raw / "imgs", kind="report")
    samples = read_all(tmp_path / "out")
    assert {s.answer_type for split in samples.values() for s in split} == {"report"}
    assert summary["dropped"] == {
        "samples: image also in the test split (dropped from train to avoid leakage)": 1
    }
    assert read_conversation_info(tmp_path / "out").weak_label_k == 4


def test_bad_items_are_named(tmp_path):
    raw = _folder(
        tmp_path / "a", [_item(1, "a.png", "Yes"), _item(2, "missing.png", "No")], [_item(3, "c.png", "x")]
    )
    with pytest.raises(DataError, match=r"training\.json item 1: image file not found: .*missing\.png"):
        run("llava-json", raw, tmp_path / "out", images_dir=raw / "imgs")
    summary = run("llava-json", raw, tmp_path / "out", images_dir=raw / "imgs", on_missing="skip")
    assert summary["dropped"] == {"samples: image file missing": 1}
    raw = _folder(tmp_path / "b", [_item(1, "a.png", "Yes")], [_item(1, "c.png", "x")])
    with pytest.raises(DataError, match=r"test\.json item 0: id 'q1' is also in training\.json"):
        run("llava-json", raw, tmp_path / "out2", images_dir=raw / "imgs")
    bad = _item(1, "a.png", "Yes")
    bad["conversations"][0]["value"] = "no placeholder"
    raw = _folder(tmp_path / "c", [bad], [])
    with pytest.raises(DataError, match=r"training\.json item 0: the human turn has no <image> placeholder"):
        run("llava-json", raw, tmp_path / "out3", images_dir=raw / "imgs")


def test_existing_output_needs_overwrite_and_stale_outputs_go(tmp_path):
    from medpeft.errors import OutputExistsError

    raw = _folder(
        tmp_path / "raw", [_item(1, "a.png", "Yes"), _item(2, "b.png", "No")], [_item(3, "c.png", "x")]
    )
    out = tmp_path / "out"
    run("llava-json", raw, out, images_dir=raw / "imgs", image_size=16)
    assert (out / "images" / "a.png").is_file()
    with pytest.raises(OutputExistsError):
        run("llava-json", raw, out, images_dir=raw / "imgs")
    run("llava-json", raw, out, images_dir=raw / "imgs", overwrite=True)  # no cache this time
    assert not (out / "images").exists()
    assert read_all(out)["train"][0].image.endswith("imgs/a.png")
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json",
        "prepare_summary.json",
        "test.jsonl",
        "train.jsonl",
    ]
