"""`medpeft prepare`: a raw dataset layout -> validated manifests (+ resized image cache, masks, boxes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medpeft.commands import options

# (flag, build() keyword, argparse kwargs, datasets it applies to)
_DATASET_OPTIONS: list[tuple[str, str, dict, str]] = [
    (
        "--uncertain",
        "uncertain",
        {"choices": ["zero", "one", "keep"], "help": "CheXpert -1 labels -> 0 (paper), 1, or keep -1"},
        "mimic-cxr, generic",
    ),
    (
        "--blank",
        "blank",
        {"choices": ["zero", "keep"], "help": "blank labels -> 0 (paper) or keep blank"},
        "mimic-cxr, generic",
    ),
    (
        "--reports-dir",
        "reports_dir",
        {"type": Path, "metavar": "DIR", "help": "root holding files/p*/p*/s*.txt reports (default: --raw)"},
        "mimic-cxr",
    ),
    (
        "--n-per-class",
        "n_per_class",
        {"type": int, "metavar": "N", "help": "images per class (default 200)"},
        "chexpert-5x200",
    ),
    (
        "--from-csv",
        "from_csv",
        {"type": Path, "metavar": "CSV", "help": "use an existing 5x200 CSV (Path + five one-hot columns)"},
        "chexpert-5x200",
    ),
    (
        "--allow-fewer",
        "allow_fewer",
        {
            "action": "store_const",
            "const": True,
            "help": "take all qualifying rows when a class has fewer than N",
        },
        "chexpert-5x200",
    ),
    (
        "--mask-size",
        "mask_size",
        {
            "type": int,
            "metavar": "PX",
            "help": "square grid the RLE was encoded on (competition: 1024); default: each DICOM's size",
        },
        "siim",
    ),
    (
        "--val-size",
        "val_size",
        {
            "type": float,
            "metavar": "X",
            "help": "validation subset of train_val: fraction (<1) or number of images (default 0.1)",
        },
        "nih-cxr14",
    ),
    (
        "--csv",
        "csv",
        {
            "type": Path,
            "metavar": "CSV",
            "help": "the image-text CSV (default: --raw if a file, else RAW/manifest.csv)",
        },
        "generic",
    ),
    (
        "--image-column",
        "image_column",
        {"metavar": "NAME", "help": "image path column (default image)"},
        "generic",
    ),
    ("--text-column", "text_column", {"metavar": "NAME", "help": "text column (default text)"}, "generic"),
    (
        "--label-columns",
        "label_columns",
        {"metavar": "NAME", "nargs": "+", "help": "label columns (default: all other columns)"},
        "generic",
    ),
    (
        "--split-column",
        "split_column",
        {"metavar": "NAME", "help": "train/validate/test column if present (default split)"},
        "generic",
    ),
    (
        "--subject-column",
        "subject_column",
        {"metavar": "NAME", "help": "patient column for a grouped split (default subject_id)"},
        "generic",
    ),
    (
        "--val-fraction",
        "val_fraction",
        {"type": float, "help": "validation share when there is no split column (default 0.1)"},
        "generic",
    ),
    (
        "--test-fraction",
        "test_fraction",
        {"type": float, "help": "test share when there is no split column (default 0)"},
        "generic",
    ),
    (
        "--reports-for",
        "reports_for",
        {
            "choices": ["training", "generation"],
            "help": "training: image-label manifest CSVs (ACE-LoRA); generation: conversation manifest "
            "(A3Tune report generation, one sample per study)",
        },
        "mimic-cxr",
    ),
    (
        "--image-overlap",
        "image_overlap",
        {
            "choices": ["drop", "keep"],
            "help": "an image in two splits: keep it only in its evaluation split (drop, default) or keep the "
            "published split as is (keep; the authors' behaviour)",
        },
        "slake, vqa-rad, pathvqa, llava-json",
    ),
    (
        "--split-fractions",
        "split_fractions",
        {
            "type": float,
            "nargs": 3,
            "metavar": ("TRAIN", "VAL", "TEST"),
            "help": "seeded split of reports by uid (default 0.7 0.1 0.2)",
        },
        "iu-xray",
    ),
    (
        "--images-dir",
        "images_dir",
        {
            "type": Path,
            "metavar": "DIR",
            "help": "folder the JSON's image paths are relative to (default: --raw)",
        },
        "llava-json",
    ),
    (
        "--dataset-name",
        "name",
        {
            "metavar": "NAME",
            "help": "dataset name written into the manifest (e.g. slake; default llava-json)",
        },
        "llava-json",
    ),
    (
        "--kind",
        "kind",
        {
            "choices": ["vqa", "report"],
            "help": "vqa: closed = yes/no answers, else open; report: report generation",
        },
        "llava-json",
    ),
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="raw dataset -> manifest (+ resized image cache, masks, boxes)",
        description=(
            "Read a dataset in its official raw layout and write one validated manifest CSV per split "
            "(train.csv/validate.csv/test.csv), dataset.json (task and classes, for eval) and "
            "prepare_summary.json (what was kept and dropped, and why). With --image-size, resized copies "
            "are written under OUT/images and the manifests point there. The A3Tune datasets (slake, vqa-rad, "
            "pathvqa, iu-xray, mimic-cxr --reports-for generation, llava-json) are written as the conversation "
            "manifest instead: train.jsonl/validate.jsonl/test.jsonl (one LLaVA-style sample per line) and a "
            "dataset.json that says which splits and answer types it holds."
        ),
        epilog=(
            "Splits: mimic-cxr official patient-level split; rsna/siim seeded 70/15/15 (patients/images) "
            "with both classes in each; nih-cxr14 official test list plus a seeded patient-level validation "
            "subset; mhist its own partition; chexpert-5x200 and lc25000 test only; slake and pathvqa their "
            "own train/validate/test; vqa-rad phrase_type test_* = test, no validation; iu-xray seeded 7:1:2 by "
            "report uid. "
            "Examples: medpeft prepare mimic-cxr --raw /data/mimic-cxr-jpg --out prepared/mimic --image-size 256; "
            "medpeft prepare slake --raw /data/Slake1.0 --out prepared/slake; "
            "medpeft prepare pathvqa --raw /data/path-vqa --out prepared/pathvqa --image-size 336; "
            "medpeft prepare mimic-cxr --raw /data/mimic-cxr-jpg --out prepared/mimic-gen --reports-for generation; "
            "medpeft prepare llava-json --raw A3Tune/data/Slake --dataset-name slake --images-dir /data/Slake1.0/imgs "
            "--out prepared/slake-authors"
        ),
    )
    from medpeft.data.datasets import DATASETS

    p.add_argument(
        "dataset", metavar="DATASET", help=f"one of: {', '.join((*DATASETS, 'generic', 'llava-json'))}"
    )
    p.add_argument(
        "--raw", type=Path, required=True, metavar="DIR", help="the dataset's raw folder (official layout)"
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder (must be empty unless --overwrite)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        metavar="PX",
        default=None,
        help="write a resized cache, shorter side PX (e.g. 256)",
    )
    options.add_seed(p)
    p.add_argument(
        "--fraction",
        type=float,
        nargs="+",
        default=[],
        metavar="F",
        help="also write nested seeded subsets of the training split (e.g. 0.01 0.1 1.0) as train_fraction_F.csv",
    )
    p.add_argument(
        "--on-missing",
        choices=["error", "skip"],
        default="error",
        help="a row whose image/report/labels are missing: fail, or skip and count",
    )
    options.add_on_bad_image(p)
    p.add_argument(
        "--no-verify-images",
        action="store_true",
        help="without --image-size, do not decode each image once to check it",
    )
    options.add_workers(p, default=None)  # None: min(8, CPUs) image decoding threads
    options.add_overwrite(p, what="an earlier prepared folder in --out")
    options.add_quiet(p)
    group = p.add_argument_group("dataset-specific options")
    for flag, dest, kwargs, applies in _DATASET_OPTIONS:
        kwargs = dict(kwargs)
        kwargs["help"] = f"[{applies}] {kwargs['help']}"
        group.add_argument(flag, dest=dest, default=None, **kwargs)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medpeft.data.prepare import format_summary, options_of, prepare, resolve_name
    from medpeft.errors import ConfigError

    dataset = resolve_name(args.dataset)
    accepted = options_of(dataset)
    options = {}
    for flag, dest, _, _ in _DATASET_OPTIONS:
        value = getattr(args, dest)
        if value is None:
            continue
        if dest not in accepted:
            raise ConfigError(f"{flag} does not apply to {dataset}")
        options[dest] = tuple(value) if isinstance(value, list) else value
    summary = prepare(
        dataset,
        args.raw,
        args.out,
        image_size=args.image_size,
        seed=args.seed,
        overwrite=args.overwrite,
        fractions=args.fraction,
        on_missing=args.on_missing,
        on_bad_image=args.on_bad_image,
        verify_images=not args.no_verify_images,
        workers=args.workers,
        progress=not args.quiet,
        **options,
    )
    print(format_summary(summary))
    print(f"manifests, dataset.json and prepare_summary.json written to {args.out}")
    return 0
