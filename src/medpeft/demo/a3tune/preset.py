"""The demo's starting model: the ``llava-tiny`` architecture with an 8x8 image grid and the demo's words.

Why not ``llava-tiny`` as it is: its word-level vocabulary lacks most of the synthetic VQA's words ("Yes",
"No", "nodule", "pneumothorax", "both"...), which it maps to ``<unk>`` (decoded as nothing), and its 4x4 grid
(56 px) makes a lesion a fraction of one image token. This preset keeps every ``llava-tiny`` size but the
vision input (112 px, patch 14: 8x8 = 64 image tokens) and extends the tokenizer with every word of the
demo's questions and answers (appended after the tiny vocabulary, in sorted order). Random weights from the
seed; written as a Hugging Face folder that ``load_llava`` reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from medpeft.backbones.llava import build_from_config, preset_config, tiny_tokenizer

NAME = "llava-tiny-demo"
IMAGE_SIZE = 112
PATCH = 14


def demo_tokenizer(texts: Iterable[str]) -> tuple[object, int]:
    """The tiny tokenizer plus every word of ``texts`` it lacks; returns (tokenizer, vocabulary size)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tiny = tiny_tokenizer()
    backend = tiny.backend_tokenizer
    vocab = dict(backend.get_vocab(with_added_tokens=False))
    # "<image>" is a special token (matched before pre-tokenisation), not words
    pieces = (backend.pre_tokenizer.pre_tokenize_str(text.replace("<image>", " ")) for text in texts)
    words = {w for piece in pieces for w, _ in piece}
    for word in sorted(words - set(vocab)):
        vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = backend.pre_tokenizer
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    fast.image_token = "<image>"
    return fast, len(vocab)


def write_demo_base(out: Path, texts: Iterable[str], seed: int) -> Path:
    """Build the preset with random weights (``seed``) and save model, tokenizer and processor into ``out``."""
    from transformers import LlavaImageProcessor

    tokenizer, vocab_size = demo_tokenizer(texts)
    config = preset_config("llava-tiny")
    config.vision_config.image_size = IMAGE_SIZE
    config.vision_config.patch_size = PATCH
    config.image_seq_length = (IMAGE_SIZE // PATCH) ** 2
    config.text_config.vocab_size = vocab_size
    model = build_from_config(config, dtype=None, device="cpu", seed=seed, attn="sdpa")
    processor = LlavaImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                    crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_pad=False)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def manifest_texts(folders: Iterable[Path]) -> list[str]:
    """Every question and answer of every split of the prepared ``folders`` (the preset's extra words)."""
    from medpeft.data.conversations import read_conversations

    texts = []
    for folder in folders:
        for path in sorted(folder.glob("*.jsonl")):
            texts += [turn["value"] for s in read_conversations(path) for turn in s.conversations]
    return texts
