"""``run_demo``: synthetic data → generalist → LoRA and ACE-LoRA adaptation → zero-shot evaluation → report.

Every stage is the library's own code path (``synthesize``, ``prepare``, ``load_backbone`` on a folder,
``medpeft.train``, ``medpeft.evaluation.zero_shot.evaluate``); only the generalist's pre-training is
demo-specific. The output folder is refused when it already holds something, unless ``overwrite``; then
only what an earlier demo wrote there is removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medpeft.demo.folder import DemoResult, claim_demo_folder
from medpeft.demo.settings import EVAL_DATASETS, TRAIN_DATASET, DemoSettings

MARKER = "demo.json"
METRICS = "metrics.json"
REPORT = "report.md"
DATA_DIR = "data"
MODELS_DIR = "models"
EVAL_DIR = "eval"
GENERALIST = "generalist"
#: Everything ``run_demo`` writes at the top of its folder (what ``overwrite`` may remove).
OUTPUTS = (MARKER, METRICS, REPORT, DATA_DIR, MODELS_DIR, EVAL_DIR, "heatmaps")
MODEL_NAMES = ("base", "lora", "ace-lora")
STAGES = 6


def adapter_configs(settings: DemoSettings) -> dict[str, Any]:
    """The two adapted models: LoRA only (no hypergraph) and full ACE-LoRA, at the tiny model's scale.

    Reports are padded per batch and padding is kept out of the text hypergraph (the fast path).
    """
    from medpeft.ace_lora.config import AceLoraConfig

    common = {
        "rank": settings.lora_rank,
        "alpha": settings.lora_alpha,
        "text_padding": "longest",
        "mask_padding": True,
    }
    return {
        # the same label-guided loss, so that the comparison isolates the hypergraph (with plain InfoNCE
        # the tiny model, whose reports share label vectors within a batch, does not learn in the budget)
        "lora": AceLoraConfig(hgnn=(), label_guided=True, **common),
        "ace-lora": AceLoraConfig(width=settings.hgnn_width, top_k=settings.top_k, **common),
    }


def base_config():
    """The frozen generalist as an ``AceLoraModel`` (no LoRA, no hypergraph, its own logit scale)."""
    from medpeft.ace_lora.config import AceLoraConfig

    return AceLoraConfig.base()


def train_config(settings: DemoSettings, seed: int, progress: bool):
    from medpeft.training.config import TrainConfig

    return TrainConfig(
        seed=seed,
        epochs=settings.adapt_epochs,
        batch_size=settings.adapt_batch_size,
        lr=settings.adapt_lr,
        warmup_epochs=0.5,
        checkpoint_every=0,  # a checkpoint is still written at the end
        keep_checkpoints=1,
        log_every=10,
        progress=progress,
        tensorboard=False,
    )


def _say(progress: bool, text: str) -> None:
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(text)


def run_demo(
    out: str | Path = "medpeft-demo",
    *,
    seed: int = 0,
    quick: bool = False,
    overwrite: bool = False,
    settings: DemoSettings | None = None,
    progress: bool = True,
) -> DemoResult:
    """Run the whole demo into ``out`` and return its metrics (see ``report.md`` there for the story).

    ``quick`` uses ``DemoSettings.quick()`` (for tests); ``settings`` overrides both.
    """
    import torch

    from medpeft.ace_lora.model import AceLoraModel
    from medpeft.backbones.clip import load_backbone
    from medpeft.demo.data import make_dataset
    from medpeft.demo.figures import OVERLAY_DIR, lesion_examples, save_overlays
    from medpeft.demo.generalist import pretrain_from_settings
    from medpeft.demo.outputs import (
        MODEL_DESCRIPTIONS,
        build_metrics,
        summarize_result,
        write_metrics,
        write_report,
    )
    from medpeft.evaluation.zero_shot import evaluate
    from medpeft.training.loop import train

    start = time.perf_counter()
    out = Path(out)
    settings = settings or (DemoSettings.quick() if quick else DemoSettings())
    claim_demo_folder(out, overwrite, marker=MARKER, outputs=OUTPUTS, command="medpeft demo")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(
        json.dumps(
            {"format": "medpeft-demo/1", "seed": seed, "quick": quick, "settings": settings.to_dict()},
            indent=2,
        )
        + "\n"
    )

    _say(
        progress,
        f"[1/{STAGES}] synthetic data in the real raw layouts, and manifests (medpeft synth + prepare)",
    )
    prepared = {
        d: make_dataset(d, out / DATA_DIR, settings, seed, progress) for d in (TRAIN_DATASET, *EVAL_DATASETS)
    }

    _say(progress, f"[2/{STAGES}] pre-training a tiny generalist CLIP on coarse captions")
    generalist = pretrain_from_settings(out / MODELS_DIR / GENERALIST, settings, seed=seed, progress=progress)

    adapters: dict[str, Path] = {}
    configs = adapter_configs(settings)
    for i, (name, config) in enumerate(configs.items()):
        _say(
            progress,
            f"[{3 + i}/{STAGES}] adapting it on synthetic MIMIC-CXR: {name} (medpeft.train)",
        )
        adapters[name] = train(
            load_backbone(generalist),  # a fresh backbone: train() injects LoRA in place
            prepared[TRAIN_DATASET],
            out / MODELS_DIR / name,
            train_config(settings, seed, progress),
            config,
        )

    def builder(name: str) -> Callable[[], AceLoraModel]:
        def build() -> AceLoraModel:
            backbone = load_backbone(generalist)
            if name == "base":
                return AceLoraModel(backbone, base_config())
            return AceLoraModel.from_pretrained(backbone, adapters[name])

        return build

    _say(
        progress,
        f"[{STAGES}/{STAGES}] zero-shot evaluation on held-out sets (medpeft.evaluate), heat maps, report",
    )
    results: dict[str, dict[str, Any]] = {}
    models_info: dict[str, Any] = {}
    for name in MODEL_NAMES:
        model = builder(name)().eval()
        models_info[name] = {
            "description": MODEL_DESCRIPTIONS[name],
            "config": model.config.to_dict(),
            "num_trainable": model.num_trainable() if name != "base" else 0,
        }
        results[name] = {}
        for dataset in EVAL_DATASETS:
            with torch.random.fork_rng(devices=[]):
                result = evaluate(
                    model,
                    prepared[dataset],
                    dataset=dataset,
                    out_dir=out / EVAL_DIR / name / dataset,
                    batch_size=settings.eval_batch_size,
                    n_bootstrap=settings.n_bootstrap,
                    seed=seed,
                    name=name,
                    progress=progress,
                )
            results[name][dataset] = summarize_result(result)
        del model

    examples = lesion_examples({d: prepared[d] for d in ("siim", "rsna")}, settings.n_overlays)
    overlays = save_overlays({n: builder(n) for n in MODEL_NAMES}, examples, out / OVERLAY_DIR)

    training = {
        "generalist": {"n_images": settings.n_generalist, "epochs": settings.generalist_epochs},
        TRAIN_DATASET: {
            "n_train": _rows(prepared[TRAIN_DATASET] / "train.csv"),
            "epochs": settings.adapt_epochs,
        },
    }
    metrics = build_metrics(
        seed=seed,
        quick=quick,
        settings=settings.to_dict(),
        results=results,
        models=models_info,
        training=training,
    )
    write_metrics(metrics, out / METRICS)
    wall = time.perf_counter() - start
    write_report(
        metrics,
        out / REPORT,
        datasets=EVAL_DATASETS,
        wall_seconds=wall,
        figures=[str(p.relative_to(out)) for p in overlays],
    )
    _say(progress, f"done in {wall:.0f} s: {out / REPORT}")
    return DemoResult(out=out, metrics=metrics, wall_seconds=wall)


def _rows(manifest: Path) -> int:
    import pandas as pd

    return int(len(pd.read_csv(manifest, usecols=["image"])))
