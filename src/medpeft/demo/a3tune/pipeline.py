"""``run_a3tune_demo``: synthetic VQA → scorer CLIP → weak labels → generalist → plain LoRA, A³Tune and A³Tune on
the true masks → evaluation → report.

Every stage is the library's own code path (``synthesize``, ``prepare``, ``pretrain_generalist`` of ``medpeft
demo``, ``generate_weak_labels``, ``train_a3tune``, ``evaluate_generation``); only the starting preset
(``preset.py``), the generalist's short full fine-tune (``generalist.py``) and the true-mask store
(``true_masks.py``) are demo-specific. The output folder
is refused when it already holds something, unless ``overwrite``; then only what an earlier A³Tune demo wrote
there is removed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from medpeft.demo.a3tune.settings import A3DemoSettings
from medpeft.demo.folder import DemoResult, claim_demo_folder
from medpeft.io import write_text

MARKER = "demo-a3tune.json"
METRICS = "metrics.json"
REPORT = "report.md"
DATA_DIR = "data"
MODELS_DIR = "models"
EVAL_DIR = "eval"
WEAK_DIR = "weak-labels"
TRUE_DIR = "true-masks"
OUTPUTS = (MARKER, METRICS, REPORT, DATA_DIR, MODELS_DIR, EVAL_DIR, WEAK_DIR, TRUE_DIR)
STAGES = 8


def _say(progress: bool, text: str) -> None:
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(text)


def adapter_configs(settings: A3DemoSettings) -> dict[str, Any]:
    """Plain LoRA and A³Tune at the tiny model's scale, with the same heads selected for the diagnostic."""
    from medpeft.a3tune.config import A3TuneConfig

    lora = {"lora_rank": settings.lora_rank, "lora_alpha": settings.lora_alpha, "lora_dropout": 0.0,
            "top_heads": settings.top_heads}  # fmt: skip
    return {
        "lora": A3TuneConfig.plain_lora(**lora),
        "a3tune": A3TuneConfig(
            moe_rank=settings.moe_rank,
            moe_alpha=settings.moe_alpha,
            moe_dropout=0.0,
            align_weight=settings.align_weight,
            **lora,
        ),  # fmt: skip
    }


def _count(prepared: Path, split: str) -> tuple[int, int]:
    from medpeft.data.conversations import read_conversations

    samples = read_conversations(prepared / f"{split}.jsonl")
    return len(samples), sum(1 for s in samples if s.lesion_mask)


def run_a3tune_demo(
    out: str | Path = "medpeft-demo-a3tune",
    *,
    seed: int = 0,
    quick: bool = False,
    overwrite: bool = False,
    settings: A3DemoSettings | None = None,
    progress: bool = True,
) -> DemoResult:
    """Run the whole A³Tune demo into ``out`` and return its metrics (``report.md`` there tells the story).

    ``quick`` uses ``A3DemoSettings.quick()`` (for tests); ``settings`` overrides both.
    """
    from medpeft.demo.a3tune.data import make_vqa
    from medpeft.demo.a3tune.generalist import train_generalist
    from medpeft.demo.a3tune.outputs import REFERENCE, build_metrics, model_result, write_outputs
    from medpeft.demo.a3tune.preset import NAME as BASE_NAME
    from medpeft.demo.a3tune.preset import manifest_texts, write_demo_base
    from medpeft.demo.a3tune.scorer import train_scorer
    from medpeft.demo.a3tune.true_masks import write_true_mask_labels
    from medpeft.demo.a3tune.weak import PROPOSER, hit_rate, make_weak_labels
    from medpeft.demo.generalist import NAME as SCORER
    from medpeft.evaluation.generation import GenerationSettings
    from medpeft.evaluation.generation_eval import OVERLAY_DIR, evaluate_generation
    from medpeft.training.a3tune_config import A3TrainConfig
    from medpeft.training.a3tune_loop import train_a3tune

    start = time.perf_counter()
    out = Path(out)
    s = settings or (A3DemoSettings.quick() if quick else A3DemoSettings())
    claim_demo_folder(out, overwrite, marker=MARKER, outputs=OUTPUTS, command="medpeft demo a3tune")
    out.mkdir(parents=True, exist_ok=True)
    marker = {"format": "medpeft-demo-a3tune/1", "seed": seed, "quick": quick, "settings": s.to_dict()}
    write_text(out / MARKER, json.dumps(marker, indent=2) + "\n")

    _say(
        progress, f"[1/{STAGES}] synthetic chest X-ray VQA with lesion masks (medpeft synth + prepare slake)"
    )
    gen_data = make_vqa(out / DATA_DIR, "generalist", s.n_generalist_images, s.image_size, seed + 1, progress)
    task = make_vqa(out / DATA_DIR, "task", s.n_task_images, s.image_size, seed, progress)
    base_dir = write_demo_base(out / MODELS_DIR / BASE_NAME, manifest_texts([gen_data, task]), seed)

    _say(
        progress,
        f"[2/{STAGES}] the weak-label scorer: medpeft demo's tiny CLIP ({s.clip_images} captioned images)",
    )
    scorer = train_scorer(out / MODELS_DIR / SCORER, n_images=s.clip_images, epochs=s.clip_epochs, seed=seed,
                          progress=progress)  # fmt: skip

    _say(
        progress, f"[3/{STAGES}] weak labels: {PROPOSER} proposals scored by that CLIP (medpeft weak-labels)"
    )
    make_weak_labels(task, out / WEAK_DIR, scorer, s.weak_top_k, seed, progress)
    write_true_mask_labels(task, out / TRUE_DIR)

    _say(
        progress,
        f"[4/{STAGES}] a {BASE_NAME} generalist (8x8 image grid): full fine-tune on a separate synthetic draw",
    )
    generalist, generalist_losses = train_generalist(
        base_dir, gen_data, out / MODELS_DIR / "generalist", steps=s.generalist_steps, lr=s.generalist_lr,
        batch_size=s.batch_size, seed=seed, progress=progress,
    )  # fmt: skip

    adapters: dict[str, Path] = {}
    train = A3TrainConfig(epochs=10_000, max_steps=s.adapt_steps, batch_size=s.batch_size, lr=s.adapt_lr,
                          seed=seed, warmup_ratio=0.05, log_every=10, progress=progress)  # fmt: skip
    configs = adapter_configs(s)
    runs = [("lora", configs["lora"], WEAK_DIR), ("a3tune", configs["a3tune"], WEAK_DIR),
            (REFERENCE, configs["a3tune"], TRUE_DIR)]  # fmt: skip
    for i, (name, config, labels) in enumerate(runs):
        what = "the true lesion masks" if labels == TRUE_DIR else "the weak labels"
        _say(progress, f"[{5 + i}/{STAGES}] {name} from the generalist, {s.adapt_steps} steps on {what}")
        adapters[name] = train_a3tune(str(generalist), task, out / MODELS_DIR / name, config, train,
                                      weak_labels=out / labels)  # fmt: skip

    _say(
        progress, f"[{STAGES}/{STAGES}] held-out questions: answers, attention in the true lesions, overlays"
    )
    evaluation = evaluate_generation(
        str(generalist),
        ["none", *(str(adapters[name]) for name, _, _ in runs)],
        task,
        out / EVAL_DIR,
        split="test",
        batch_size=s.eval_batch_size,
        settings=GenerationSettings(max_new_tokens=s.max_new_tokens),
        device="cpu",
        overlays=s.n_overlays,
        n_boot=s.n_bootstrap,
        seed=seed,
        progress=progress,
    )
    results = {name: model_result(summary) for name, summary in evaluation["adapters"].items()}
    n_train, _ = _count(task, "train")
    n_test, n_test_lesion = _count(task, "test")
    weak = {"proposer": PROPOSER, "scorer": SCORER, **hit_rate(task, out / WEAK_DIR)}
    metrics = build_metrics(
        seed=seed,
        quick=quick,
        settings=s.to_dict(),
        results=results,
        data={
            "n_train": n_train,
            "n_test": n_test,
            "n_test_with_lesion": n_test_lesion,
            "generalist_loss_first": generalist_losses[0],
            "generalist_loss_last": generalist_losses[-1],
        },  # fmt: skip
        weak_labels=weak,
    )
    figures = sorted(str(p.relative_to(out)) for p in (out / EVAL_DIR / OVERLAY_DIR).rglob("*.png"))
    wall = time.perf_counter() - start
    write_outputs(metrics, out, wall_seconds=wall, figures=figures, metrics_name=METRICS, report_name=REPORT)
    _say(progress, f"done in {wall:.0f} s: {out / REPORT}")
    return DemoResult(out=out, metrics=metrics, wall_seconds=wall)
