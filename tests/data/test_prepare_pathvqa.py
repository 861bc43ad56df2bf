"""prepare pathvqa: the parquet release streamed with pyarrow, pickles refused, images decoded once, leaks dropped."""

from __future__ import annotations

import io
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
from a3data_fixtures import assert_no_image_in_two_splits, read_all, run, synth
from PIL import Image

from medpeft.data.synthetic.pathvqa import qa_pairs
from medpeft.errors import DataError

TRAIN = "data/train-00000-of-00001.parquet"
TEST = "data/test-00000-of-00001.parquet"


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return synth(tmp_path_factory.mktemp("pathvqa"), "pathvqa", n=12)


def _copy(raw, tmp_path):
    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    return copy


def test_round_trip_closed_is_yes_no_and_answerable(raw, tmp_path):
    summary = run("pathvqa", raw, tmp_path / "out", image_size=32)
    samples = read_all(tmp_path / "out")
    assert set(samples) == {"train", "validate", "test"}
    rows = [s for split in samples.values() for s in split]
    assert len(rows) == summary["kept_total"] == 4 * 12 and summary["dropped"] == {}
    assert summary["read"]["images"] == 12  # each distinct image decoded and written once
    assert len(list((tmp_path / "out" / "images" / "pathvqa").glob("*.png"))) == 12
    by_image: dict[str, list] = {}
    for s in rows:
        by_image.setdefault(s.image, []).append(s)
        assert (s.answer_type == "closed") == (s.answer in ("yes", "no"))
        assert Image.open(tmp_path / "out" / s.image).size == (32, 32)
    for group in by_image.values():  # the four questions of one tile agree with one LC25000 class
        pairs = {(s.question, s.answer) for s in group}
        assert any(
            pairs == set(qa_pairs(k)) for k in ("lung_aca", "lung_n", "lung_scc", "colon_aca", "colon_n")
        )
    assert_no_image_in_two_splits(samples)


def test_pickles_are_refused(raw, tmp_path):
    pkl = tmp_path / "pkl" / "train_vqa.pkl"
    pkl.parent.mkdir()
    pkl.write_bytes(pickle.dumps({"never": "loaded"}))
    with pytest.raises(DataError, match="pickle files are never read .*parquet release"):
        run("pathvqa", pkl, tmp_path / "out")
    with pytest.raises(DataError, match=r"train_vqa\.pkl: PathVQA's pickle files are never read"):
        run("pathvqa", pkl.parent, tmp_path / "out")


def test_image_in_two_splits_is_dropped_from_train(raw, tmp_path):
    copy = _copy(raw, tmp_path)
    train, test = pd.read_parquet(copy / TRAIN), pd.read_parquet(copy / TEST)
    leak = test.iloc[[0]].copy()
    leak["question"] = "Is this tissue stained?"
    pd.concat([train, leak]).to_parquet(copy / TRAIN, index=False)
    summary = run("pathvqa", copy, tmp_path / "out")
    assert summary["dropped"] == {
        "samples: image also in the test split (dropped from train to avoid leakage)": 1
    }
    assert_no_image_in_two_splits(read_all(tmp_path / "out"))


def test_bad_rows_are_named(raw, tmp_path):
    copy = _copy(raw, tmp_path)
    table = pd.read_parquet(copy / TEST)
    table.loc[1, "question"] = ""
    table.to_parquet(copy / TEST, index=False)
    with pytest.raises(
        DataError, match=r"test-00000-of-00001\.parquet row 1: missing field\(s\) \['question'\]"
    ):
        run("pathvqa", copy, tmp_path / "out")
    table.loc[1, "question"] = "What is shown?"
    table.at[2, "image"] = {"bytes": b"not an image", "path": "x.jpg"}
    table.to_parquet(copy / TEST, index=False)
    with pytest.raises(DataError, match=r"row 2: image bytes are not a readable image"):
        run("pathvqa", copy, tmp_path / "out")
    summary = run("pathvqa", copy, tmp_path / "out", on_bad_image="skip")
    assert summary["dropped"] == {"unreadable image": 1, "questions: image unreadable": 1}
    table.drop(columns=["answer"]).to_parquet(copy / TEST, index=False)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['answer'\]"):
        run("pathvqa", copy, tmp_path / "out2")


def test_written_png_is_the_decoded_jpeg(raw, tmp_path):
    run("pathvqa", raw, tmp_path / "out")
    first = pd.read_parquet(raw / TRAIN).iloc[0]
    rows = read_all(tmp_path / "out")["train"]
    s = next(
        r
        for r in rows
        if r.question == first["question"] and r.extra["source_path"] == first["image"]["path"]
    )
    decoded = Image.open(io.BytesIO(first["image"]["bytes"])).convert("RGB")
    assert np.array_equal(np.array(Image.open(tmp_path / "out" / s.image)), np.array(decoded))
