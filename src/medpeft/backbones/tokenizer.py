"""Text tokenisation: BERT WordPiece ids at a fixed context length, as BiomedCLIP was trained.

open_clip's ``HFTokenizer`` always pads to the full context (256 for BiomedCLIP); the exact
ACE-LoRA semantics need that, but a faster training path pads each batch to its longest
report instead, so this wrapper offers both.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from medpeft.errors import ConfigError

VOCAB_ASSET = Path(__file__).resolve().parent.parent / "assets" / "wordpiece_vocab.txt"

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4, as in BiomedBERT's vocab


class TextTokenizer:
    """Callable: list of strings -> LongTensor [B, L] of ids, [CLS] first, [SEP] last, padded with ``pad_id``."""

    def __init__(self, hf_tokenizer, context_length: int) -> None:
        self.hf = hf_tokenizer
        self.context_length = int(context_length)
        pad = hf_tokenizer.pad_token_id
        self.pad_id = 0 if pad is None else int(pad)

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def __call__(
        self,
        texts: str | Sequence[str],
        padding: str = "max_length",
        context_length: int | None = None,
    ) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        if padding not in ("max_length", "longest"):
            raise ConfigError(f"padding must be 'max_length' or 'longest', got {padding!r}")
        length = int(context_length or self.context_length)
        out = self.hf(
            [" ".join(str(t).split()) for t in texts],
            return_tensors="pt",
            max_length=length,
            padding=padding,
            truncation=True,
        )
        return out["input_ids"].long()

    def save(self, folder: str | Path) -> None:
        self.hf.save_pretrained(str(folder))


def load_hf_tokenizer(
    name_or_path: str | Path, context_length: int, local_files_only: bool | None = None
) -> TextTokenizer:
    """Load a tokenizer from a folder or a hub repo id (the hub honours HF_HUB_OFFLINE and the HF cache)."""
    from transformers import AutoTokenizer

    if local_files_only is None:
        local_files_only = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    hf = AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=local_files_only)
    return TextTokenizer(hf, context_length)


def wordpiece_vocab(corpus: Iterable[str], vocab_size: int) -> list[str]:
    """A deterministic WordPiece vocabulary: special tokens, every character (alone and as ``##c``),
    then whole words by frequency (ties alphabetical) up to ``vocab_size``.

    The ``tokenizers`` WordPiece trainer breaks frequency ties in hash order, so its vocabulary differs
    from process to process; a model saved with one vocabulary and re-tokenised with another is wrong.
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in corpus:
        counts.update(word for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in counts for c in word})
    vocab = list(SPECIAL_TOKENS) + chars + [f"##{c}" for c in chars]
    if len(vocab) > vocab_size:
        raise ConfigError(
            f"vocab_size {vocab_size} is smaller than the {len(vocab)} characters and special tokens"
        )
    seen = set(vocab)
    for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if len(vocab) >= vocab_size:
            break
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    return vocab


def build_wordpiece_tokenizer(corpus: Iterable[str], vocab_size: int, context_length: int) -> TextTokenizer:
    """An uncased BERT WordPiece tokenizer built offline from a corpus (``wordpiece_vocab``)."""
    return wordpiece_tokenizer(wordpiece_vocab(corpus, vocab_size), context_length)


def packaged_vocab(vocab_size: int) -> list[str]:
    """The first ``vocab_size`` tokens of the WordPiece vocabulary shipped with medpeft
    (``assets/wordpiece_vocab.txt``: ``wordpiece_vocab`` of the synthetic report corpus, n=1500, seed 0, at
    most 4096 tokens; the corpus has fewer words, so it holds all of them), so building the tiny presets
    never runs the synthetic data generator."""
    return VOCAB_ASSET.read_text(encoding="utf-8").splitlines()[:vocab_size]


def wordpiece_tokenizer(vocab_list: list[str], context_length: int) -> TextTokenizer:
    """An uncased BERT WordPiece tokenizer over ``vocab_list`` (for the tiny preset and stand-in vocabularies).

    Special tokens get BiomedBERT's ids ([PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4) so that
    id-level conventions (pad id 0, [CLS] first) hold for every backbone medpeft builds.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(vocab_list)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=context_length,
    )
    return TextTokenizer(hf, context_length)
