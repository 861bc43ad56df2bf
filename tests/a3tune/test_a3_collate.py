"""The collator and the example reader: labels mask exactly the prompt, the image placeholder becomes grid² image
tokens, padding sides, weak masks matched by id (counted both ways) and checked, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from a3_helpers import tiny
from a3_vqa_data import write_vqa, write_weak
from PIL import Image

from medpeft.a3tune.collate import PLAIN_PROMPT, A3Collator, A3Example, format_prompt
from medpeft.a3tune.examples import ConversationExamples, resolve_weak_labels
from medpeft.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def base():
    return tiny("llava-tiny")


@pytest.fixture(scope="module")
def vqa(tmp_path_factory):
    return write_vqa(tmp_path_factory.mktemp("vqa"), {"train": 6, "test": 3})


def collator(base, side="right", **kw):
    return A3Collator(
        base.tokenizer, base.image_processor, base.image_token_id, base.grid, padding_side=side, **kw
    )


def example(i=0, answer="left", masks=None, question="where is the square ?"):
    img = Image.fromarray(np.full((40, 60), 30 + i, dtype=np.uint8))
    return A3Example(id=f"s{i}", question=question, answer=answer, image=img, weak_masks=masks)


def test_labels_supervise_exactly_the_answer_and_eos(base):
    col = collator(base)
    batch = col([example()])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    tok = base.tokenizer
    prompt = tok(PLAIN_PROMPT.format(question="where is the square ?"))["input_ids"]
    n_prompt = len(prompt) - 1 + base.grid**2  # the one <image> becomes grid² tokens
    assert ids.count(base.image_token_id) == base.grid**2 == 16
    assert labels[:n_prompt] == [-100] * n_prompt
    assert (
        labels[n_prompt:]
        == ids[n_prompt:]
        == [*tok(" left", add_special_tokens=False)["input_ids"], tok.eos_token_id]
    )
    assert batch["prompt_lengths"] == [n_prompt]
    assert batch["pixel_values"].shape == (1, 3, 56, 56)


def test_left_and_right_padding(base):
    short, long = example(0, "left"), example(1, "left", question="where is the bright square in the image ?")
    for side in ("left", "right"):
        batch = collator(base, side)([short, long])
        mask = batch["attention_mask"]
        assert mask[1].all() and not mask[0].all()
        pad_at = 0 if side == "left" else -1
        assert mask[0, pad_at] == 0 and batch["labels"][0, pad_at] == -100
        assert batch["input_ids"][0, pad_at] == base.tokenizer.pad_token_id
    gen = collator(base, "left")([example(0, None), example(1, None, question="is there a square ?")])
    assert gen["labels"] is None
    assert (gen["attention_mask"][:, -1] == 1).all()  # generation prompts all end at the last position
    assert base.tokenizer.decode(gen["input_ids"][0, -1:]) == ":"  # ... after "ASSISTANT:"


def test_chat_template_is_used_when_the_tokenizer_has_one(base):
    tok = base.tokenizer
    template = "{% for m in messages %}user: {{ m['content'] }} assistant:{% endfor %}"
    tok.chat_template = template
    try:
        assert format_prompt(tok, "is there a square ?") == "user: <image>\nis there a square ? assistant:"
        batch = collator(base)([example(answer="yes")])
        assert batch["input_ids"][0].tolist().count(base.image_token_id) == 16
    finally:
        tok.chat_template = None
    assert format_prompt(tok, "q") == PLAIN_PROMPT.format(question="q")


def test_weak_masks_must_be_on_the_grid_and_errors_name_the_sample(base):
    col = collator(base)
    ok = col([example(masks=torch.ones(2, 4, 4)), example(1)])
    assert ok["weak_masks"][0].shape == (2, 4, 4) and ok["weak_masks"][1] is None
    with pytest.raises(DataError, match=r"sample 's0'.*\[2, 5, 5\].*\[K, 4, 4\]"):
        col([example(masks=torch.ones(2, 5, 5))])
    with pytest.raises(DataError, match=r"sample 's0'.*2 <image> tokens"):
        col([example(question="<image> where is the square ?")])
    with pytest.raises(ConfigError, match="padding_side"):
        collator(base, "middle")


def test_examples_match_weak_labels_by_id_and_count_both_ways(base, vqa):
    data, weak = vqa
    ds = ConversationExamples(
        data, "train", weak_labels=weak, grid=base.grid, image_processor=base.image_processor
    )
    m = ds.match.to_dict()
    # samples 2 and 5 have no square (no weak label); the test split's squares are ids not in this split
    assert m["samples"] == 6 and m["with_masks"] == 4 and m["samples_without_weak_labels"] == 2
    assert m["examples_without"] == ["train-2", "train-5"]
    assert m["weak_label_ids_not_in_split"] == 2 and m["examples_not_in_split"] == ["test-0", "test-1"]
    ex = ds[0]
    assert ex.id == "train-0" and ex.answer in ("left", "right") and ex.weak_masks.shape == (1, 4, 4)
    # the square's half of the grid holds all of the mask
    half = ex.weak_masks[0, :, :2] if ex.answer == "left" else ex.weak_masks[0, :, 2:]
    assert half.sum() == pytest.approx(ex.weak_masks.sum()) and ex.weak_masks.sum() > 0
    assert ds[2].weak_masks is None
    assert resolve_weak_labels(weak / "masks.npz") == weak


def test_bad_inputs_are_named(base, vqa, tmp_path):
    data, weak = vqa
    with pytest.raises(DataError, match=r"no 'validate' split .*\['train', 'test'\]"):
        ConversationExamples(data, "validate", grid=4)
    with pytest.raises(DataError, match="not a weak-label folder"):
        ConversationExamples(data, "train", weak_labels=tmp_path, grid=4)
    bad = write_weak(tmp_path / "bad", {"train-0": np.ones((1, 64, 64), dtype=np.uint8)})
    with pytest.raises(
        DataError, match=r"masks of sample 'train-0' have shape \[1, 64, 64\], not \[K, 256, 256\]"
    ):
        ConversationExamples(data, "train", weak_labels=bad, grid=4)


def test_answer_ids_are_tokenised_as_in_running_text_for_sentencepiece_style_tokenizers(base):
    """A tokenizer built like LLaMA's (normaliser: prepend "▁", spaces -> "▁"; pieces start at "▁"): " left" alone
    gives an extra "▁" piece; the answer's ids are those "left" gets after the prompt."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "▁", "▁USER:", "▁ASSISTANT:", "▁where", "▁is", "▁the",
             "▁square", "▁?", "▁left", "\n"]  # fmt: skip
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Split("▁", "merged_with_next")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    alone = fast(" left", add_special_tokens=False)["input_ids"]
    assert fast.convert_ids_to_tokens(alone) == ["▁", "▁left"]  # the naive way
    col = A3Collator(fast, base.image_processor, 4, base.grid)
    ids = col.answer_ids(example(answer="left"))
    assert fast.convert_ids_to_tokens(ids) == ["▁left", "</s>"]
