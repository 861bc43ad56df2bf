"""Tiny LLaVA models and synthetic batches for the A³Tune tests (CPU, seconds)."""

from __future__ import annotations

import torch

from medpeft.backbones.llava import load_llava

NAMES = ("llava-tiny", "llava-tiny-mistral")


def tiny(name: str, attn: str = "sdpa", seed: int = 0):
    return load_llava(name, seed=seed, attn_implementation=attn)


def prompt(base, prefix: int, question: int, answer: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input ids (prefix text, image tokens, question, answer) and labels (answer only)."""
    g = torch.Generator().manual_seed(seed)
    vocab = base.model.config.text_config.vocab_size
    low = 10  # avoid special tokens
    text = lambda n: torch.randint(low, vocab, (n,), generator=g)  # noqa: E731
    ids = torch.cat(
        [
            text(prefix),
            torch.full((base.image_seq_length,), base.image_token_id),
            text(question),
            text(answer),
        ]
    )
    labels = torch.full_like(ids, -100)
    labels[-answer:] = ids[-answer:]
    return ids, labels


def batch(base, specs, side: str = "right", seed: int = 0):
    """Pad prompts of ``specs`` [(prefix, question, answer)] to a batch; ``side`` = where the padding goes."""
    rows = [prompt(base, *s, seed=seed + i) for i, s in enumerate(specs)]
    width = max(len(r[0]) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, (r, lab) in enumerate(rows):
        sl = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
        ids[i, sl], labels[i, sl], mask[i, sl] = r, lab, 1
    g = torch.Generator().manual_seed(seed + 100)
    pixels = torch.randn(len(rows), 3, 56, 56, generator=g)
    return ids, mask, labels, pixels


def random_masks(n: int, k: int, grid: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        m = (torch.rand(k, grid, grid, generator=g) > 0.6).float()
        m[:, 0, 0] = 1.0  # never empty
        out.append(m)
    return out
