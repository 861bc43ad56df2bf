"""`medpeft a3tune train|eval`: A³Tune training on conversation manifests and generation evaluation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medpeft.commands import options as opt

BASE_HELP = (
    "LLaVA base model: llava-tiny / llava-tiny-mistral (tiny random, offline), llava-med-arch (LLaVA-Med-1.5 "
    "architecture, random weights), a local folder (HF Llava or original LLaVA-Med-1.5 layout), or a hub id "
    "from the HF cache"
)
DATA_HELP = (
    "prepared conversation-manifest folder (<split>.jsonl + images; medpeft prepare slake|vqa-rad|...)"
)
WEAK_HELP = (
    "weak labels of the samples: the folder `medpeft weak-labels` wrote, or its masks.npz (index.json beside it). "
    "Matched by sample id; samples without weak labels and weak-label ids not in the split are counted and reported"
)
PRESETS = ("paper-vqa", "paper-report")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "a3tune",
        help="A³Tune: attention-aligned tuning of LLaVA models (train, eval)",
        description="A³Tune (ACL 2025) on Hugging Face LLaVA models: `train` an adapter on a conversation "
        "manifest with weak labels, `eval` generated answers of one or several adapters.",
    )
    subs = p.add_subparsers(dest="a3tune_command", metavar="SUBCOMMAND")
    _register_train(subs)
    _register_eval(subs)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _register_train(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser(
        "train",
        help="train an A³Tune (or plain-LoRA) adapter",
        description=(
            "Train on the train split of a conversation manifest. --method a3tune: A³MoE on q/k, peft LoRA on "
            "v/o/gate/up/down, loss = LM + λ·alignment(selected heads' image attention → weak masks) + "
            "β·balance. --method lora: plain peft LoRA on q/k/v/o/gate/up/down, LM loss only (the baseline). "
            "Writes OUT/final (the adapter), OUT/checkpoints, OUT/metrics.jsonl (loss, lm_loss, align_loss, "
            "balance_loss, attention_in_mask, lr per step), resolved_config.yaml, train_summary.json. "
            "Multi-GPU, DeepSpeed and FSDP: run through `accelerate launch [--config_file CFG] -m medpeft.cli "
            "a3tune train ...` (batch sizes are global)."
        ),
        epilog=(
            "Examples: medpeft a3tune train --base llava-tiny --data synth/ --weak-labels wl/ --out runs/a3 "
            "--epochs 3 --batch-size 8;  medpeft a3tune train --base ./llava-med-v1.5-mistral-7b --data "
            "prepared/slake --weak-labels wl/slake/masks.npz --out runs/slake --preset paper-vqa --epochs 6 "
            "--batch-size 32 --grad-accum 8 --precision bf16 --gradient-checkpointing;  add --resume to continue "
            "a killed run (bit-identical on CPU)"
        ),
    )
    p.add_argument("--base", required=True, metavar="B", help=BASE_HELP)
    p.add_argument("--data", required=True, type=Path, metavar="DIR", help=DATA_HELP)
    p.add_argument("--weak-labels", type=Path, default=None, metavar="PATH", help=WEAK_HELP + " (default: none; "
                   "the alignment loss is then 0)")  # fmt: skip
    opt.add_out(p, help="run folder (must be new or empty, unless --resume)")
    p.add_argument("--method", choices=("a3tune", "lora"), default="a3tune",
                   help="a3tune (default) or lora: the plain-LoRA baseline on the same modules")  # fmt: skip
    p.add_argument("--preset", choices=PRESETS, default="paper-vqa",
                   help="the authors' hyper-parameters: paper-vqa (SLAKE script; default) or paper-report "
                        "(IU-Xray report script)")  # fmt: skip
    p.add_argument("--no-moe", action="store_true", help="ablation: plain LoRA on q/k instead of A³MoE")
    p.add_argument("--no-align", action="store_true", help="ablation: no attention-alignment loss")
    p.add_argument("--top-heads", type=int, default=None, metavar="R",
                   help="heads selected per sample for the alignment (default: the preset's 32)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=1, metavar="N", help="epochs (default 1)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop after N optimizer steps (default: all epochs)")  # fmt: skip
    opt.add_batch_size(p, default=32, what="samples per optimizer step, over all processes")
    p.add_argument("--grad-accum", type=int, default=1, metavar="N",
                   help="micro-batches per optimizer step (default 1)")  # fmt: skip
    p.add_argument("--lr", type=float, default=2e-4, metavar="X", help="AdamW learning rate (default 2e-4)")
    opt.add_precision(p)
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in the backward pass (less memory; same numbers)")  # fmt: skip
    opt.add_seed(p)
    opt.add_workers(p)
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its newest checkpoint"
    )
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                   help="checkpoint every N steps (default 0: only at the end)")  # fmt: skip
    p.add_argument("--mask-grid", choices=("aligned", "official"), default="aligned",
                   help="weak masks → token grid: aligned to the base's image processor (default) or the "
                        "authors' official chain")  # fmt: skip
    p.add_argument("--max-length", type=int, default=None, metavar="N",
                   help="cut answers so a sample has at most N tokens (default: no limit)")  # fmt: skip
    opt.add_quiet(p)
    p.set_defaults(func=run_train)


def _register_eval(subs: argparse._SubParsersAction) -> None:
    p = subs.add_parser(
        "eval",
        help="generation metrics of one or several adapters",
        description=(
            "Generate answers for a split (batched, left padding; greedy or beam search) and score them: the "
            "authors' closed accuracy and open token recall, exact match, token F1, for reports BLEU-1..4 "
            "(sacrebleu) and ROUGE-L (rouge-score), 95% bootstrap CIs; plus each sample's attention-in-mask "
            "ratio of the selected heads (true lesion masks where the manifest has them, else weak masks). "
            "Writes OUT/predictions.csv, OUT/metrics.json, OUT/results.md (one row per adapter) and "
            "OUT/overlays/<adapter>/<id>.png for the first --overlays samples."
        ),
        epilog=(
            "Examples: medpeft a3tune eval --base llava-tiny --adapter runs/a3/final --data synth/ --out ev/;  "
            "medpeft a3tune eval --base ./llava-med-v1.5-mistral-7b --adapter none --adapter runs/lora/final "
            "--adapter runs/a3/final --data prepared/slake --weak-labels wl/slake --num-beams 5 --precision bf16 "
            "--out ev/slake --overlays 16"
        ),
    )
    p.add_argument("--base", required=True, metavar="B", help=BASE_HELP)
    p.add_argument("--adapter", action="append", default=None, metavar="A",
                   help="A³Tune adapter folder (RUN/final) or Hub adapter (ORG/NAME, hf-hub:ORG/NAME@REV); 'none' = the base model (default none); repeat to "
                        "compare several adapters in one table")  # fmt: skip
    p.add_argument("--data", required=True, type=Path, metavar="DIR", help=DATA_HELP)
    p.add_argument("--split", default="test", help="which split to score (default test)")
    opt.add_out(p, help="results folder")
    p.add_argument("--weak-labels", type=Path, default=None, metavar="PATH",
                   help=WEAK_HELP + " (for the attention diagnostic)")  # fmt: skip
    opt.add_batch_size(p, default=8, what="samples generated together")
    p.add_argument("--num-beams", type=int, default=1, metavar="N",
                   help="1 = greedy (default); the authors' beam setting is 5")  # fmt: skip
    p.add_argument("--max-new-tokens", type=int, default=64, metavar="N",
                   help="longest answer in tokens (default 64; reports need ~256)")  # fmt: skip
    p.add_argument("--overlays", type=int, default=0, metavar="N",
                   help="overlay PNGs of the selected heads' attention for the first N samples (default 0)")  # fmt: skip
    opt.add_device(p)
    opt.add_precision(p)
    opt.add_seed(p)
    opt.add_overwrite(p)
    opt.add_quiet(p)
    p.set_defaults(func=run_eval)


def _logging(quiet: bool) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip


def run_train(args: argparse.Namespace) -> int:
    from medpeft.a3tune.config import A3TuneConfig
    from medpeft.training.a3tune_config import A3TrainConfig
    from medpeft.training.a3tune_loop import train_a3tune

    _logging(args.quiet)
    overrides = {} if args.top_heads is None else {"top_heads": args.top_heads}
    if args.method == "lora":
        if args.no_moe or args.no_align:
            print(
                "medpeft a3tune train: --no-moe/--no-align are ablations of --method a3tune", file=sys.stderr
            )
            return 2
        model_cfg = A3TuneConfig.plain_lora(**overrides)
    else:
        model_cfg = A3TuneConfig.preset(args.preset, **overrides)
        if args.no_moe:
            model_cfg = model_cfg.replace(moe=False, balance_weight=0.0)
        if args.no_align:
            model_cfg = model_cfg.replace(align=False, align_weight=0.0)
    train_cfg = A3TrainConfig(
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        precision=args.precision,
        gradient_checkpointing=args.gradient_checkpointing,
        seed=args.seed,
        workers=args.workers,
        checkpoint_every=args.checkpoint_every,
        max_length=args.max_length,
        grid_mode=args.mask_grid,
        progress=not args.quiet,
    )
    final = train_a3tune(args.base, args.data, args.out, model_cfg, train_cfg, weak_labels=args.weak_labels,
                         resume=args.resume)  # fmt: skip
    print(final)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from medpeft.evaluation.generation import GenerationSettings
    from medpeft.evaluation.generation_eval import evaluate_generation

    _logging(args.quiet)
    settings = GenerationSettings(num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
                                  precision=args.precision)  # fmt: skip
    evaluate_generation(args.base, args.adapter or ["none"], args.data, args.out, split=args.split,
                        weak_labels=args.weak_labels, batch_size=args.batch_size, settings=settings,
                        device=args.device, overlays=args.overlays, seed=args.seed, overwrite=args.overwrite,
                        progress=not args.quiet)  # fmt: skip
    print((Path(args.out) / "results.md").read_text())
    return 0
