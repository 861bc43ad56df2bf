"""prepare slake: English subset, answers answerable from the synthetic truth, lesion masks, bad items named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from a3data_fixtures import assert_no_image_in_two_splits, read_all, run, synth, truth
from PIL import Image

from medpeft.data.conversation_info import read_conversation_info
from medpeft.errors import DataError


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return synth(tmp_path_factory.mktemp("slake"), "slake", n=16)


def _edit(raw, tmp_path, split, change):
    """A copy of the raw SLAKE folder with ``change(items)`` applied to ``split``'s JSON."""
    import shutil

    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    path = copy / "Slake1.0" / f"{split}.json"
    items = json.loads(path.read_text())
    change(items)
    path.write_text(json.dumps(items))
    return copy


def test_round_trip_english_only_and_answerable(raw, tmp_path):
    summary = run("slake", raw, tmp_path / "out")
    samples = read_all(tmp_path / "out")
    assert set(samples) == {"train", "validate", "test"}
    n_zh = sum(
        1
        for s in ("train", "validate", "test")
        for q in json.loads((raw / "Slake1.0" / f"{s}.json").read_text())
        if q["q_lang"] == "zh"
    )
    assert n_zh == 16 and summary["dropped"] == {"questions: not English (q_lang != 'en')": 16}
    rows = [s for split in samples.values() for s in split]
    assert len(rows) == summary["kept_total"] == sum(summary["kept"].values()) > 0
    gold = truth(raw)
    for s in rows:
        assert s.dataset == "slake" and s.organ == "Lung" and s.modality == "X-Ray"
        assert s.conversations[0]["value"].startswith("<image>\n")
        record = gold[f"Slake1.0/imgs/{s.extra['img_name']}"]
        assert record["split"] == s.split
        assert {"question": s.question, "answer": s.answer, "closed": s.answer_type == "closed"} in record[
            "qa"
        ]
        if s.answer_type == "closed":
            assert s.answer in ("Yes", "No")
    closed = [s.answer for s in rows if s.answer_type == "closed"]
    assert closed.count("Yes") == closed.count("No") > 0  # balanced by construction
    assert_no_image_in_two_splits(samples)
    info = read_conversation_info(tmp_path / "out")
    assert info.kind == "vqa" and info.weak_label_k == 8 and info.has_lesion_mask
    assert {k: sum(v.values()) for k, v in info.counts.items()} == summary["kept"]


def test_lesion_mask_is_the_true_mask_at_the_manifest_image_size(raw, tmp_path):
    run("slake", raw, tmp_path / "out", image_size=32)
    rows = [s for split in read_all(tmp_path / "out").values() for s in split]
    gold = truth(raw)
    with_mask = [s for s in rows if s.lesion_mask]
    assert with_mask and all(gold[f"Slake1.0/imgs/{s.extra['img_name']}"]["finding"] for s in with_mask)
    for s in rows:
        record = gold[f"Slake1.0/imgs/{s.extra['img_name']}"]
        assert (s.lesion_mask is None) == (record["lesion_mask"] is None)
    s = with_mask[0]
    mask = np.array(Image.open(tmp_path / "out" / s.lesion_mask))
    image = Image.open(tmp_path / "out" / s.image)
    assert mask.shape == (image.height, image.width) == (32, 32)
    assert set(np.unique(mask)) <= {0, 255} and mask.any()
    full = np.array(Image.open(raw / gold[f"Slake1.0/imgs/{s.extra['img_name']}"]["lesion_mask"]))
    expected = np.array(Image.fromarray(full).resize((32, 32), Image.Resampling.NEAREST))
    assert np.array_equal(mask, expected)


def test_missing_image_is_named_or_skipped_and_counted(raw, tmp_path):
    copy = _edit(raw, tmp_path, "train", lambda items: items[0].update(img_name="xmlab999/source.jpg"))
    with pytest.raises(DataError, match=r"train\.json item 0: image file not found: .*xmlab999"):
        run("slake", copy, tmp_path / "out")
    summary = run("slake", copy, tmp_path / "out2", on_missing="skip")
    assert summary["dropped"]["questions: image file missing"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda it: it[1].update(answer_type="MAYBE"), r"test\.json item 1: field 'answer_type' is 'MAYBE'"),
        (lambda it: it[1].pop("question"), r"test\.json item 1: missing field\(s\) \['question'\]"),
        (lambda it: it[1].update(answer=""), r"test\.json item 1: missing field\(s\) \['answer'\]"),
        (lambda it: it.append(dict(it[0])), r"test\.json item \d+: qid \d+ appears twice"),
        (
            lambda it: it[0].update(img_name="../imgs/xmlab1/source.jpg"),
            "must be a relative path inside",
        ),
    ],
)
def test_bad_items_are_named(raw, tmp_path, change, message):
    def english_first(items):
        items.sort(key=lambda q: q["q_lang"] != "en")
        change(items)

    with pytest.raises(DataError, match=message):
        run("slake", _edit(raw, tmp_path, "test", english_first), tmp_path / "out")


def test_slake1_0_folder_itself_is_accepted_and_output_is_deterministic(raw, tmp_path):
    run("slake", raw, tmp_path / "a")
    run("slake", raw, tmp_path / "b")
    for split in ("train", "validate", "test"):
        assert (tmp_path / "a" / f"{split}.jsonl").read_bytes() == (
            tmp_path / "b" / f"{split}.jsonl"
        ).read_bytes()
    summary = run("slake", raw / "Slake1.0", tmp_path / "c")  # no sidecar next to it: no lesion masks
    assert summary["kept_total"] == run("slake", raw, tmp_path / "d")["kept_total"]
    assert not read_conversation_info(tmp_path / "c").has_lesion_mask
