"""Batched answer generation with an A³Tune model (or the base model through a zero-initialised adapter).

Prompts are padded on the **left** (:class:`~medpeft.a3tune.collate.A3Collator` with ``padding_side="left"``), so
every sample's next token sits at the last position and a batch generates exactly what each sample generates
alone (greedy: token for token; the tests check it). Decoding: greedy (``num_beams=1``) or beam search
(``num_beams>1``, as the authors' ``--baseline beam`` with 5 beams), no sampling, up to ``max_new_tokens``; the
answer is the decoded new tokens without special tokens, stripped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from medpeft.errors import ConfigError


@dataclass(frozen=True)
class GenerationSettings:
    """``num_beams`` 1 = greedy; ``max_new_tokens`` per answer; ``precision`` fp32|bf16|fp16 (autocast)."""

    num_beams: int = 1
    max_new_tokens: int = 64
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.num_beams < 1 or self.max_new_tokens < 1:
            raise ConfigError(
                f"num_beams ({self.num_beams}) and max_new_tokens ({self.max_new_tokens}) must be >= 1"
            )


def generate_batch(model: Any, batch: dict[str, Any], settings: GenerationSettings, tokenizer: Any,
                   device: torch.device) -> tuple[list[str], list[list[int]]]:  # fmt: skip
    """(decoded answers, new token ids) of one left-padded generation batch."""
    from medpeft.runtime import autocast, autocast_dtype

    input_ids = batch["input_ids"].to(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad(), autocast(device, autocast_dtype(device, settings.precision)):
        out = model.generate(
            input_ids=input_ids,
            attention_mask=batch["attention_mask"].to(device),
            pixel_values=batch["pixel_values"].to(device),
            max_new_tokens=settings.max_new_tokens,
            num_beams=settings.num_beams,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
    new = out[:, input_ids.shape[1] :].cpu()
    ids = []
    for row in new.tolist():
        # everything after the first EOS is padding of the finished sequence
        ids.append(row[: row.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in row else row)
    texts = [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return texts, ids


def batches(dataset: Any, collator: Any, batch_size: int) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """(indices, collated batch) over ``dataset`` in order."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(dataset), batch_size):
        idx = list(range(start, min(start + batch_size, len(dataset))))
        yield idx, collator([dataset[i] for i in idx])
