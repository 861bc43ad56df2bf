"""`medpeft train`: train an ACE-LoRA adapter from a YAML run configuration plus command-line overrides."""

from __future__ import annotations

import argparse
from pathlib import Path

from medpeft.commands import options

# flag dest -> config key; each is applied over the YAML only when given on the command line
_OVERRIDES = {
    "backbone": "backbone",
    "seed": "train.seed",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "max_steps": "train.max_steps",
    "precision": "train.precision",
    "grad_accum": "train.grad_accum",
    "workers": "train.workers",
    "checkpoint_every": "train.checkpoint_every",
    "val_every": "train.val_every",
    "keep_best_by": "train.keep_best_by",
    "on_nonfinite": "train.on_nonfinite",
    "on_bad_image": "train.on_bad_image",
    "text_padding": "model.text_padding",
}
_SWITCHES = {
    "gather": "train.gather",
    "gradient_checkpointing": "train.gradient_checkpointing",
    "compile": "train.compile",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an ACE-LoRA adapter (accelerate: CPU, GPU, multi-GPU, multi-node)",
        description=(
            "Train ACE-LoRA on an image-text manifest: a 'medpeft prepare' folder (its train.csv) or a CSV\n"
            "with image, text and label columns. Settings come from --config (a YAML file or a preset:\n"
            "paper, fast, tiny; default: the paper's values), overridden by the flags below and by --set.\n"
            "Writes OUT/final (the adapter), OUT/best (best by validation, with --val-data),\n"
            "OUT/checkpoints, metrics.jsonl/.csv, resolved_config.yaml and versions.json.\n"
            "Several GPUs or machines: start the same command with 'accelerate launch' or 'torchrun'\n"
            "(--batch-size stays the global batch; add --gather for global negatives)."
        ),
        epilog=(
            "examples:\n"
            "  medpeft train --config paper --data prepared/mimic --val-data prepared/nih --out runs/paper\n"
            "  torchrun --nproc_per_node 8 -m medpeft.cli train --config paper --gather \\\n"
            "      --data prepared/mimic --out runs/paper8\n"
            "  medpeft train --config runs/paper/resolved_config.yaml --out runs/again   # repeat a run\n"
            "  medpeft train ... --out runs/paper --resume   # continue after a crash or preemption\n"
            "  medpeft train --config paper --data prepared/mimic --out runs/c --compile   # torch.compile the towers"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", metavar="YAML", default=None, help="run configuration: a YAML file or paper, fast, tiny"
    )
    options.add_backbone(p, required=False)  # the --config names one; this flag overrides it
    p.add_argument(
        "--data", type=Path, metavar="DIR", default=None, help="prepared folder (train.csv) or a manifest CSV"
    )
    options.add_out(p, help="new or empty output folder (or the run to --resume)")
    p.add_argument(
        "--val-data",
        type=Path,
        metavar="DIR",
        default=None,
        help="prepared folder scored zero-shot during training (keeps OUT/best)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its newest checkpoint"
    )
    g = p.add_argument_group("overrides of the configuration")
    options.add_seed(g, default=None)
    g.add_argument("--epochs", type=int, default=None, help="passes over the training manifest")
    options.add_batch_size(g, default=None, what="global batch per optimizer step (all processes)")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate")
    g.add_argument(
        "--max-steps", type=int, default=None, help="stop after N optimizer steps (the schedule ends there)"
    )
    options.add_precision(g, default=None)
    options.add_compile(g, default=None)
    g.add_argument("--grad-accum", type=int, default=None, help="micro-batches per optimizer step")
    g.add_argument(
        "--gather",
        action="store_true",
        default=None,
        help="gather embeddings across processes (global negatives)",
    )
    g.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        default=None,
        help="recompute activations to save memory",
    )
    g.add_argument(
        "--text-padding",
        choices=["max_length", "longest"],
        default=None,
        help="longest = the fast text path (also sets mask_padding unless --set mask_padding=... says otherwise)",
    )
    options.add_workers(g, default=None)
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="STEPS",
        help="also always at the end; 0 = only then",
    )
    g.add_argument("--val-every", type=int, default=None, metavar="STEPS", help="default: every epoch")
    g.add_argument("--keep-best-by", choices=["auroc", "accuracy", "f1", "balanced_accuracy"], default=None)
    g.add_argument(
        "--on-nonfinite",
        choices=["error", "skip"],
        default=None,
        help="a NaN/inf loss: stop, or skip the step and count",
    )
    options.add_on_bad_image(g, default=None)
    g.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other setting, e.g. --set train.weight_decay=0 --set model.rank=8 --set hgnn=[image] (repeatable)",
    )
    options.add_quiet(g)
    p.set_defaults(func=run)


def build_overrides(args: argparse.Namespace) -> dict:
    """The flags given on the command line as config overrides (``--set`` first, dedicated flags win)."""
    from medpeft.training.run_config import parse_assignments

    overrides = parse_assignments(args.assignments)
    for dest, key in _OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[key] = value
    for dest, key in _SWITCHES.items():
        if getattr(args, dest, None):
            overrides[key] = True
    if args.text_padding == "longest" and not any(
        k in overrides for k in ("mask_padding", "model.mask_padding")
    ):
        overrides["model.mask_padding"] = True
    if args.val_data is not None:
        overrides["train.val_data"] = str(args.val_data)
    if args.data is not None:
        overrides["data"] = str(args.data)
    if args.quiet:
        overrides["train.progress"] = False
    return overrides


def run(args: argparse.Namespace) -> int:
    import logging

    from medpeft.errors import ConfigError
    from medpeft.training.loop import train
    from medpeft.training.run_config import load_run_config

    config = load_run_config(args.config, build_overrides(args))
    if config.data is None:
        raise ConfigError("no training data: pass --data DIR (a prepared folder or a manifest CSV)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    final = train(config.backbone, config.data, args.out, config.train, config.model, resume=args.resume)
    print(final)
    return 0
