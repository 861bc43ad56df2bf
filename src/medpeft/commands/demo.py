"""`medpeft demo [ace-lora|a3tune]`: a method end to end on synthetic data (no downloads, no GPU, minutes)."""

from __future__ import annotations

import argparse

from medpeft.commands import options

_DESCRIPTION = """\
Run a whole method on synthetic data, on the CPU, with nothing to download.

'medpeft demo' or 'medpeft demo ace-lora' (the default, output ./medpeft-demo):

  1. write synthetic MIMIC-CXR, CheXpert 5x200, RSNA Pneumonia and SIIM-ACR in their real raw
     layouts ('medpeft synth') and turn them into manifests ('medpeft prepare');
  2. pre-train a tiny "generalist" CLIP on coarse captions ("an abnormal chest x-ray",
     "a histology tile") that describe findings mostly in lay words ("a dense patch") and
     name them only sometimes, like a general-purpose model before domain adaptation;
  3. adapt it on synthetic MIMIC-CXR image-report pairs with LoRA only, and with full ACE-LoRA
     (the same training code as 'medpeft train');
  4. evaluate the base model, LoRA and ACE-LoRA zero-shot on CheXpert 5x200, RSNA and SIIM,
     which were never used for training (the same code as 'medpeft eval').

Results in DIR: metrics.json (accuracy, AUROC and counts per model and dataset), report.md
(a table and what it means), eval/<model>/<dataset>/roc.png (ROC curves), heatmaps/*.png
(where each model looks, over the drawn lesions), the models and the data. All numbers are
synthetic: they show the pipeline working, not performance on real radiographs.
Same --seed, same metrics.json.

'medpeft demo a3tune' (output ./medpeft-demo-a3tune):

  1. synthetic chest X-ray VQA in the SLAKE raw layout, with each image's lesion mask, prepared into
     conversation manifests; two draws: one for the generalist, one to adapt on and test;
  2. the weak-label scorer: the tiny CLIP of 'medpeft demo', pre-trained with that demo's recipe;
  3. weak labels for the adaptation questions: 'regions' (superpixel) proposals scored by it
     ('medpeft weak-labels'; the report says how often the weak masks hit the true lesions), and,
     beside them, the true lesion masks in the same format;
  4. a llava-tiny "generalist": every weight fine-tuned briefly on the first draw;
  5. from the generalist, on the same data and steps ('medpeft a3tune train'): plain LoRA, A3Tune
     on the weak labels, and A3Tune on the true masks (a reference: what perfect labels give);
  6. all of them on the held-out test questions ('medpeft a3tune eval'): closed accuracy, open
     recall and attention_in_lesion (the selected heads' attention inside the TRUE lesion mask).

Results in DIR: metrics.json (results.<base|lora|a3tune|a3tune-true-masks>), report.md (what this
run measured, and whether A3Tune's attention_in_lesion reached 2x plain LoRA's), eval/overlays/
<model>/*.png, the models, weak labels and data. Same --seed, same metrics.json.
"""

_EPILOG = """\
examples:
  medpeft demo                          # writes ./medpeft-demo (about 5 minutes on 2 CPU cores)
  medpeft demo --out /tmp/demo --seed 1
  medpeft demo --quick --out /tmp/q     # a shortened run that only checks the plumbing
  medpeft demo a3tune --out /tmp/a3     # the A3Tune demo (about 4 minutes on 2 CPU cores)
  medpeft demo a3tune --quick --out /tmp/a3q --seed 2
"""


METHODS = ("ace-lora", "a3tune")
DEFAULT_OUT = {"ace-lora": "medpeft-demo", "a3tune": "medpeft-demo-a3tune"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="ACE-LoRA (default) or A3Tune end to end on synthetic data (CPU, no downloads)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "method",
        nargs="?",
        default="ace-lora",
        choices=METHODS,
        help="which method's demo (default: ace-lora)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder, new or empty (default: medpeft-demo for ace-lora, medpeft-demo-a3tune for a3tune)",
    )
    options.add_seed(p)
    p.add_argument(
        "--quick",
        action="store_true",
        help="a much shorter run (seconds per stage) that checks the plumbing; its numbers mean nothing",
    )
    options.add_overwrite(p, what="an earlier demo's outputs in --out")
    options.add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medpeft.errors import ConfigError

    if args.seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {args.seed}")
    out = args.out if args.out is not None else DEFAULT_OUT[args.method]
    if args.method == "a3tune":
        from medpeft.demo.a3tune import run_a3tune_demo

        result = run_a3tune_demo(
            out, seed=args.seed, quick=args.quick, overwrite=args.overwrite, progress=not args.quiet
        )
        print(_a3_summary(result.metrics))
    else:
        from medpeft.demo import run_demo

        result = run_demo(
            out, seed=args.seed, quick=args.quick, overwrite=args.overwrite, progress=not args.quiet
        )
        print(_summary(result.metrics))
    print(f"report: {result.out / 'report.md'}  ({result.wall_seconds:.0f} s)")
    return 0


def _summary(metrics: dict) -> str:
    """A short zero-shot AUROC table for the terminal."""
    results = metrics["results"]
    datasets = list(next(iter(results.values())))
    width = max(len(d) for d in datasets)
    lines = ["zero-shot AUROC".ljust(width + 2) + "".join(m.rjust(10) for m in results)]
    for d in datasets:
        lines.append(d.ljust(width + 2) + "".join(f"{results[m][d]['auroc']:10.3f}" for m in results))
    return "\n".join(lines)


def _a3_summary(metrics: dict) -> str:
    """The A³Tune demo's table for the terminal."""
    keys = ("closed_accuracy", "open_recall", "attention_in_lesion")
    lines = ["model".ljust(8) + "".join(k.rjust(21) for k in keys)]
    for model, r in metrics["results"].items():
        cells = "".join("n/a".rjust(21) if r[k] is None else f"{r[k]:21.4f}" for k in keys)
        lines.append(model.ljust(8) + cells)
    return "\n".join(lines)
