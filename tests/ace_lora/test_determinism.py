"""Same inputs, same bytes: the tiny tokenizer's vocabulary across processes, adapter files across saves."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch

import medpeft
from medpeft.backbones.tokenizer import build_wordpiece_tokenizer, wordpiece_vocab
from medpeft.errors import ConfigError

_VOCAB = (
    "from medpeft.backbones.clip import _tiny_tokenizer; "
    "t = _tiny_tokenizer(64, 1024); "
    "print(sorted(t.hf.get_vocab().items()))"
)


def test_tiny_vocab_is_the_same_in_every_process():
    runs = [
        subprocess.run([sys.executable, "-c", _VOCAB], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and "'[PAD]', 0" in runs[0]


def test_wordpiece_vocab_order_and_ids():
    vocab = wordpiece_vocab(["No effusion.", "no Effusion, no edema", "edema"], vocab_size=64)
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # characters first (alone, then as ##c), then whole words by frequency, ties alphabetical
    assert vocab[5:7] == [",", "."] and "##e" in vocab
    assert vocab[-3:] == ["no", "edema", "effusion"]
    tok = build_wordpiece_tokenizer(["No effusion.", "edema"], vocab_size=64, context_length=8)
    ids = tok(["no edema"])[0].tolist()
    assert ids[0] == 2 and ids[3] == 3 and ids[4:] == [0] * 4
    with pytest.raises(ConfigError, match="vocab_size 6 is smaller"):
        wordpiece_vocab(["abc"], vocab_size=6)


def test_adapter_file_is_byte_identical_across_saves(tiny_backbone, tmp_path):
    torch.manual_seed(0)
    model = medpeft.AceLoraModel(copy.deepcopy(tiny_backbone), medpeft.AceLoraConfig(width=16))
    first = model.save_pretrained(tmp_path / "a") / "adapter_model.safetensors"
    second = model.save_pretrained(tmp_path / "b") / "adapter_model.safetensors"
    assert first.read_bytes() == second.read_bytes()


def test_packaged_vocab_is_the_report_corpus_vocab():
    """The shipped vocabulary is what ``wordpiece_vocab`` builds from the synthetic report corpus (the core
    reads the file instead of running the generator)."""
    from medpeft.backbones.tokenizer import packaged_vocab
    from medpeft.data.synthetic.reports import report_corpus

    assert packaged_vocab(4096) == wordpiece_vocab(report_corpus(n=1500, seed=0), vocab_size=4096)
    assert packaged_vocab(2048) == packaged_vocab(4096)[:2048]
