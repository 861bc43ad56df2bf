"""Conversation examples → one batch for :class:`~medpeft.a3tune.model.A3TuneModel` (training or generation).

Prompt: the tokenizer's chat template when it has one (user turn ``"<image>\\n{question}"``, generation prompt
added), else the LLaVA-1.5 style :data:`PLAIN_PROMPT` ``"USER: <image>\\n{question} ASSISTANT:"``. The answer is
``" " + answer`` followed by EOS (its ids are those the joint text gives after the prompt's ids, so SentencePiece
word-start marks come out as in running text); the labels mask exactly the prompt (-100) and supervise the answer
and its EOS. The prompt's one ``<image>`` token is expanded to
the base's grid² image tokens (what ``LlavaProcessor`` does with the string). Generation batches stop after
``ASSISTANT:`` (no answer) and are padded on the left, so every sample's next token is at the last position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from medpeft.a3tune.context import IGNORE_INDEX
from medpeft.errors import ConfigError, DataError

IMAGE_PLACEHOLDER = "<image>"
PLAIN_PROMPT = "USER: <image>\n{question} ASSISTANT:"
PADDING_SIDES = ("left", "right")


@dataclass
class A3Example:
    """One sample ready for collation: ``image`` a PIL image; ``answer`` None for generation; ``weak_masks``
    float ``[K, g, g]`` on the base's image-token grid, or None."""

    id: str
    question: str
    answer: str | None
    image: Any
    weak_masks: torch.Tensor | None = None
    answer_type: str = "open"


def format_prompt(tokenizer: Any, question: str) -> str:
    """The prompt text up to (and including) the assistant's turn marker."""
    if getattr(tokenizer, "chat_template", None):
        turn = [{"role": "user", "content": f"{IMAGE_PLACEHOLDER}\n{question}"}]
        return tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
    return PLAIN_PROMPT.format(question=question)


class A3Collator:
    """Callable ``examples -> batch`` (module docstring). The batch: ``input_ids``, ``attention_mask``,
    ``labels`` (None for generation), ``pixel_values``, ``weak_masks`` (list, None per sample without), ``ids``,
    ``prompt_lengths`` (tokens before the answer, padding excluded)."""

    def __init__(
        self,
        tokenizer: Any,
        image_processor: Any,
        image_token_id: int,
        grid: int,
        *,
        padding_side: str = "right",
        max_length: int | None = None,
    ) -> None:
        if tokenizer is None or image_processor is None:
            raise ConfigError(
                "the base model has no tokenizer or image processor; load it from a folder that has"
            )
        if padding_side not in PADDING_SIDES:
            raise ConfigError(f"padding_side must be one of {PADDING_SIDES}, got {padding_side!r}")
        placeholder = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
        if placeholder != image_token_id:
            raise ConfigError(
                f"the tokenizer's {IMAGE_PLACEHOLDER} id is {placeholder}, the model's image_token_id is "
                f"{image_token_id}: tokenizer and model do not belong together"
            )
        self.tokenizer, self.image_processor = tokenizer, image_processor
        self.image_token_id, self.grid = int(image_token_id), int(grid)
        self.padding_side, self.max_length = padding_side, max_length
        self.chat = bool(getattr(tokenizer, "chat_template", None))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None or tokenizer.eos_token_id is None:
            raise ConfigError(
                "the tokenizer needs an EOS token (and a pad token, or EOS is used for padding)"
            )
        self.pad_id, self.eos_id = int(pad), int(tokenizer.eos_token_id)

    def prompt_ids(self, example: A3Example) -> list[int]:
        """The prompt's token ids with the image placeholder expanded to grid² image tokens."""
        text = format_prompt(self.tokenizer, example.question)
        ids = self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"]
        where = [i for i, t in enumerate(ids) if t == self.image_token_id]
        if len(where) != 1:
            raise DataError(
                f"sample {example.id!r}: the prompt holds {len(where)} {IMAGE_PLACEHOLDER} tokens, expected 1 "
                "(remove '<image>' from the question text)"
            )
        i = where[0]
        return [*ids[:i], *([self.image_token_id] * (self.grid * self.grid)), *ids[i + 1 :]]

    def answer_ids(self, example: A3Example) -> list[int]:
        """The answer's ids as they are tokenised after the prompt (the tail of the tokenised ``prompt + " " +
        answer``, so a SentencePiece "▁" lands where it would in running text), then EOS. Should the joint
        tokenisation merge across the boundary, the answer is tokenised alone."""
        text = format_prompt(self.tokenizer, example.question)
        special = not self.chat
        prompt = self.tokenizer(text, add_special_tokens=special)["input_ids"]
        joint = self.tokenizer(f"{text} {example.answer}", add_special_tokens=special)["input_ids"]
        if joint[: len(prompt)] == prompt and len(joint) > len(prompt):
            answer = joint[len(prompt) :]
        else:
            answer = self.tokenizer(" " + example.answer, add_special_tokens=False)["input_ids"]
        if answer and answer[-1] == self.eos_id:  # a tokenizer that appends EOS itself
            answer = answer[:-1]
        return [*answer, self.eos_id]

    def encode(self, example: A3Example, generation: bool) -> tuple[list[int], list[int]]:
        prompt = self.prompt_ids(example)
        answer = [] if generation else self.answer_ids(example)
        if self.max_length is not None and len(prompt) + len(answer) > self.max_length:
            if len(prompt) + min(len(answer), 1) > self.max_length:
                raise DataError(
                    f"sample {example.id!r}: the prompt alone has {len(prompt)} tokens, more than max_length "
                    f"{self.max_length}"
                )
            answer = answer[: self.max_length - len(prompt)]
        return prompt + answer, [IGNORE_INDEX] * len(prompt) + answer

    def check_masks(self, example: A3Example) -> torch.Tensor | None:
        m = example.weak_masks
        if m is None:
            return None
        if not isinstance(m, torch.Tensor) or m.ndim != 3 or tuple(m.shape[1:]) != (self.grid, self.grid):
            shape = list(m.shape) if hasattr(m, "shape") else type(m).__name__
            raise DataError(
                f"sample {example.id!r}: weak masks have shape {shape}, not [K, {self.grid}, {self.grid}] "
                f"(the base model's image-token grid)"
            )
        return m.float() if m.shape[0] else None

    def __call__(self, examples: Sequence[A3Example]) -> dict[str, Any]:
        if not examples:
            raise DataError("empty batch")
        generation = any(e.answer is None for e in examples)
        if generation and not all(e.answer is None for e in examples):
            raise DataError("a batch mixes samples with and without answers")
        encoded = [self.encode(e, generation) for e in examples]
        width = max(len(ids) for ids, _ in encoded)
        n = len(examples)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for b, (ids, lab) in enumerate(encoded):
            cut = slice(0, len(ids)) if self.padding_side == "right" else slice(width - len(ids), width)
            input_ids[b, cut] = torch.tensor(ids)
            labels[b, cut] = torch.tensor(lab)
            attention[b, cut] = 1
        images = [e.image.convert("RGB") for e in examples]
        pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": None if generation else labels,
            "pixel_values": pixels,
            "weak_masks": [self.check_masks(e) for e in examples],
            "ids": [e.id for e in examples],
            "prompt_lengths": [sum(1 for t in lab if t == IGNORE_INDEX) for _, lab in encoded],
        }
