"""`medpeft eval`: zero-shot classification of prepared datasets, for one or several adapters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medpeft.commands import options as opt


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="zero-shot classification metrics on prepared datasets",
        description=(
            "Score a prepared dataset (medpeft prepare) zero-shot: accuracy, macro AUROC, macro F1, balanced "
            "accuracy, confusion matrix, bootstrap 95% confidence intervals. Writes metrics.json, "
            "predictions.csv, roc.png, confusion.png and results.md to --out. Several --adapter and/or "
            "--dataset NAME=DIR options give one combined table (OUT/<adapter>/<dataset>/ per run)."
        ),
        epilog=(
            "Examples: medpeft eval --backbone biomedclip --adapter ACE_LoRA.pt --dataset rsna --data prepared/rsna "
            "--out runs/rsna;  medpeft eval --backbone biomedclip --adapter none --adapter ACE_LoRA.pt "
            "--dataset rsna=prepared/rsna --dataset siim=prepared/siim --out runs/zero-shot;  add --compile for "
            "torch.compile (same numbers, faster after the first batch)"
        ),
    )
    opt.add_backbone(p)
    opt.add_adapter(p, several=True)
    p.add_argument(
        "--dataset",
        action="append",
        required=True,
        metavar="DATASET[=DIR]",
        help="chexpert-5x200, rsna, siim, nih-cxr14, lc25000 or mhist; NAME=DIR to give its folder (repeatable)",
    )
    p.add_argument(
        "--data", type=Path, default=None, metavar="DIR", help="the prepared folder of a single --dataset"
    )
    p.add_argument("--split", default="test", help="which manifest to score (default test)")
    opt.add_out(p, required=False, help="write the result files here (default: print the table only)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for CIs (default 1000; 0 = none)",
    )
    opt.add_seed(p)
    opt.add_inference_options(p, batch_size=64, templates_default="the dataset's own (prompts.py)")
    p.set_defaults(func=run)


def parse_datasets(specs: list[str], data: Path | None) -> dict[str, Path]:
    """``--dataset NAME --data DIR`` or ``--dataset NAME=DIR ...`` -> {name: folder}."""
    from medpeft.errors import ConfigError
    from medpeft.evaluation.prompts import dataset_prompts

    datasets: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep:
            if data is None:
                raise ConfigError(
                    f"--dataset {spec}: give its folder with --data DIR or as --dataset {spec}=DIR"
                )
            if len(specs) > 1:
                raise ConfigError("with several --dataset options, give each folder as NAME=DIR (not --data)")
            folder_path = data
        else:
            if data is not None:
                raise ConfigError(
                    "--data applies to a single --dataset NAME; use NAME=DIR for each dataset instead"
                )
            if not folder:
                raise ConfigError(f"--dataset {spec}: empty folder after '='")
            folder_path = Path(folder)
        name = name.strip()
        # unknown names -> ConfigError with the choices; 'generic' = your own data (prepare generic)
        canonical = name if name == "generic" else dataset_prompts(name).dataset
        if canonical in datasets:
            raise ConfigError(f"--dataset {canonical} given twice")
        datasets[canonical] = folder_path
    return datasets


def run(args: argparse.Namespace) -> int:
    from medpeft.commands.model_options import adapter_labels, adapter_spec, check_adapter, model_factories
    from medpeft.evaluation.zero_shot import check_results_dir, evaluate, evaluate_many, load_eval_set

    datasets = parse_datasets(args.dataset, args.data)
    typed = [adapter_spec(a) for a in (args.adapter or ["none"])]
    adapters = [check_adapter(a) for a in typed]
    for name, folder in datasets.items():  # bad data or prompts fail before the model is loaded
        load_eval_set(folder, dataset=name, split=args.split, templates=args.templates, check_files=False)
    options = {
        "split": args.split,
        "templates": args.templates,
        "options": opt.inference_options(args),
        "n_bootstrap": args.bootstrap,
        "seed": args.seed,
    }
    labels = adapter_labels(typed)
    factories = model_factories(args.backbone, adapters)
    if len(adapters) == 1 and len(datasets) == 1:
        if args.out is not None:
            check_results_dir(args.out, args.overwrite)
        ((name, folder),) = datasets.items()
        result = evaluate(
            factories[0](),
            folder,
            dataset=name,
            out_dir=args.out,
            overwrite=args.overwrite,
            name=labels[0],
            **options,
        )
        from medpeft.evaluation.zero_shot import results_table

        runs, table = [result], results_table([result])
    else:
        summary = evaluate_many(
            dict(zip(labels, factories, strict=True)),
            datasets,
            out_dir=args.out,
            overwrite=args.overwrite,
            **options,
        )
        runs, table = summary["runs"], summary["table"]
    print(table, end="")
    for r in runs:
        if r["n_skipped"]:
            shown = ", ".join(s["image"] for s in r["skipped"][:3])
            print(
                f"{r['dataset']}/{r['model']['name']}: skipped {r['n_skipped']} of {r['n_images']} unreadable "
                f"images ({shown}{', ...' if r['n_skipped'] > 3 else ''})",
                file=sys.stderr,
            )
    if args.out is not None:
        print(f"results written to {args.out}")
    return 0
