"""The demo's "generalist": the demo preset taught briefly to answer chest X-ray questions from images.

What it means here: the demo preset (``preset.py``: llava-tiny sizes, 8x8 grid, the demo's words) with random
weights, fully fine-tuned (every weight: vision tower, projector, language model, embeddings) for a few
hundred steps on a separate synthetic draw with the same LM loss A³Tune trains with, and saved as a Hugging
Face folder that ``load_llava`` reads. It plays the role of LLaVA-Med: a model that already answers, which
the two adaptations start from. Full fine-tuning because plain LoRA cannot move a random model's frozen
embeddings and output layer (measured: its loss stayed near 3.7 after 100 steps).
"""

from __future__ import annotations

from pathlib import Path

import torch

from medpeft.backbones.llava import load_llava


def train_generalist(base_dir: Path, data: Path, out: Path, *, steps: int, lr: float, batch_size: int,
                     seed: int, progress: bool) -> tuple[Path, list[float]]:  # fmt: skip
    """Fine-tune ``base_dir`` (a ``load_llava`` folder) on ``data``'s train split and save it into ``out``.

    Batches are drawn without replacement from a seeded permutation per epoch (same seed, same weights).
    Returns ``out`` and the loss of every step.
    """
    from tqdm.auto import tqdm

    from medpeft.a3tune.collate import A3Collator
    from medpeft.a3tune.examples import ConversationExamples
    from medpeft.a3tune.model import causal_lm_loss
    from medpeft.runtime import seed_everything

    seed_everything(seed)
    base = load_llava(str(base_dir))
    examples = ConversationExamples(data, "train", grid=base.grid, image_processor=base.image_processor)
    collator = A3Collator(base.tokenizer, base.image_processor, base.image_token_id, base.grid,
                          padding_side="right")  # fmt: skip
    model = base.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / steps)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    losses = []
    for _ in tqdm(range(steps), desc="generalist", unit="step", disable=not progress):
        if len(order) < batch_size:
            order += torch.randperm(len(examples), generator=generator).tolist()
        idx, order = order[:batch_size], order[batch_size:]
        batch = collator([examples[i] for i in idx])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       pixel_values=batch["pixel_values"]).logits  # fmt: skip
        loss, _ = causal_lm_loss(logits, batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    base.tokenizer.save_pretrained(out)
    base.image_processor.save_pretrained(out)
    return out, losses
