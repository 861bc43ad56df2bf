"""The conversation manifest: round trip, the authors' JSON, and bad lines named by file, line and field."""

from __future__ import annotations

import json

import pytest

from medpeft.data.conversations import make_sample, read_conversations, write_conversations
from medpeft.errors import DataError


def test_round_trip_and_properties(tmp_path):
    samples = [
        make_sample(
            "a", "images/a.png", "Is there a pneumothorax?", "yes", "closed", organ="chest", split="test"
        ),
        make_sample("b", "images/b.png", "Where is the opacity?", "left lower lobe", "open", split="test"),
    ]
    write_conversations(tmp_path / "test.jsonl", samples)
    back = read_conversations(tmp_path, "test")
    assert [s.id for s in back] == ["a", "b"]
    assert back[0].question == "Is there a pneumothorax?" and back[0].answer == "yes"
    assert back[0].organ == "chest" and back[1].organ is None
    assert back[0].conversations[0]["value"] == "<image>\nIs there a pneumothorax?"


def test_authors_released_json_reads_with_inferred_answer_type(tmp_path):
    items = [
        {"id": 7, "image": "x.jpg", "conversations": [
            {"from": "human", "value": "<image>\nIs this a CT?"}, {"from": "gpt", "value": "Yes"}]},
        {"id": 8, "image": "y.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat organ?"}, {"from": "gpt", "value": "Liver"}],
         "bboxes": [], "masks": []},
    ]  # fmt: skip
    (tmp_path / "training.json").write_text(json.dumps(items))
    back = read_conversations(tmp_path / "training.json")
    assert [(s.id, s.answer_type) for s in back] == [("7", "closed"), ("8", "open")]
    assert back[1].extra == {"bboxes": [], "masks": []}


@pytest.mark.parametrize(
    "line,message",
    [
        ("{not json", "line 2: invalid JSON"),
        (
            '{"id": "x", "image": "i.png", "answer_type": "open"}',
            r"line 2: missing field\(s\) \['conversations'\]",
        ),
        (
            '{"id": "x", "image": "i.png", "answer_type": "open", "conversations": '
            '[{"from": "human", "value": "no placeholder"}, {"from": "gpt", "value": "a"}]}',
            "line 2: the human turn has no <image> placeholder",
        ),
        (
            '{"id": "x", "image": "i.png", "answer_type": "maybe", "conversations": '
            '[{"from": "human", "value": "<image>\\nq"}, {"from": "gpt", "value": "a"}]}',
            "line 2: field 'answer_type' is 'maybe'",
        ),
    ],
)
def test_bad_lines_are_named(tmp_path, line, message):
    good = json.dumps(make_sample("ok", "i.png", "q", "a", "open").to_json())
    (tmp_path / "train.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(DataError, match=message):
        read_conversations(tmp_path, "train")


def test_duplicate_ids_and_missing_file(tmp_path):
    s = make_sample("same", "i.png", "q", "a", "open")
    write_conversations(tmp_path / "train.jsonl", [s, s])
    with pytest.raises(DataError, match="sample id 'same' appears twice"):
        read_conversations(tmp_path, "train")
    with pytest.raises(DataError, match="validate.jsonl: conversation manifest not found"):
        read_conversations(tmp_path, "validate")
