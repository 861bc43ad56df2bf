"""The demo's "generalist": ``llava-tiny`` taught briefly to answer chest X-ray questions from images.

What it means here: the demo preset (``preset.py``: llava-tiny sizes, 8x8 grid, the demo's words) with random
weights, given plain LoRA (``train_a3tune --method lora``) for a
few steps on a separate synthetic draw, with the LoRA then merged into the weights (peft's
``merge_and_unload``) and the whole model saved as a Hugging Face folder that ``load_llava`` reads. It plays
the role of LLaVA-Med: a model that already answers, and that the two adaptations start from.
"""

from __future__ import annotations

from pathlib import Path

from medpeft.backbones.llava import load_llava

RUN_DIR = "generalist-run"


def train_generalist(base_dir: Path, data: Path, out: Path, *, steps: int, lr: float, batch_size: int, lora_rank: int,
                     lora_alpha: float, seed: int, progress: bool) -> Path:  # fmt: skip
    """Train plain LoRA on ``base_dir`` (a ``load_llava`` folder), merge it and save the generalist into ``out``;
    returns ``out`` (a ``load_llava`` folder)."""
    from medpeft.a3tune.config import A3TuneConfig
    from medpeft.a3tune.model import A3TuneModel
    from medpeft.training.a3tune_config import A3TrainConfig
    from medpeft.training.a3tune_loop import train_a3tune

    config = A3TuneConfig.plain_lora(lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0)
    train = A3TrainConfig(epochs=10_000, max_steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                          warmup_ratio=0.05, log_every=10, progress=progress)  # fmt: skip
    run = out.parent / RUN_DIR
    adapter = train_a3tune(str(base_dir), data, run, config, train)
    base = load_llava(str(base_dir))
    model = A3TuneModel.from_pretrained(base, adapter)
    merged = model.peft.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    base.tokenizer.save_pretrained(out)
    base.image_processor.save_pretrained(out)
    return out
