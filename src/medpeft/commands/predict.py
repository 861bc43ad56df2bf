"""`medpeft predict`: zero-shot label probabilities for image files and folders (PNG, JPEG, DICOM)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medpeft.commands import options as opt


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="zero-shot label probabilities for your images",
        description=(
            "Score image files and folders (searched recursively for PNG, JPEG and DICOM) against the given "
            "labels: one row per image with the probability of each label. With --heatmap, also draw where "
            "the refined global embedding draws from (hypergraph/attention weights on the patch grid)."
        ),
        epilog=(
            'Example: medpeft predict --backbone biomedclip --adapter ACE_LoRA.pt --labels "no finding,pneumonia" '
            "--templates chest-xray --out preds.csv --heatmap maps/ scans/   (add --compile for large folders: "
            "the towers run through torch.compile after a one-off compilation)"
        ),
    )
    opt.add_backbone(p)
    opt.add_adapter(p)
    p.add_argument(
        "--labels", required=True, metavar='"A,B,..."', help="comma-separated labels (at least two)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the table to FILE.csv or FILE.json (default: print it)",
    )
    p.add_argument(
        "--heatmap", type=Path, default=None, metavar="DIR", help="write one overlay PNG per image here"
    )
    p.add_argument(
        "images", nargs="+", metavar="IMAGE_OR_DIR", help="image files (PNG, JPEG, DICOM) or folders"
    )
    opt.add_inference_options(p, batch_size=32, templates_default="biomedclip: 'this is a photo of {}'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medpeft.commands.model_options import build_model, check_adapter
    from medpeft.errors import ConfigError, OutputExistsError
    from medpeft.evaluation.image_loader import collect_images
    from medpeft.evaluation.predict import label_prompts, predict, write_predictions

    label_prompts(args.labels, args.templates)  # bad labels or templates fail before anything is loaded
    images = collect_images(args.images)
    if args.out is not None:
        if args.out.suffix.lower() not in (".csv", ".json"):
            raise ConfigError(f"--out must end in .csv or .json, got {args.out.name!r}")
        if args.out.exists() and not args.overwrite:
            raise OutputExistsError(f"{args.out} exists; use --overwrite to replace it")
    if args.heatmap is not None and not args.overwrite:
        from medpeft.evaluation.heatmap import heatmap_file_names

        existing = [n for n in heatmap_file_names(images) if (args.heatmap / n).exists()]
        if existing:
            raise OutputExistsError(
                f"{args.heatmap} already holds heat maps ({', '.join(existing[:3])}); use --overwrite"
            )
    adapter = check_adapter(args.adapter)

    import pandas as pd

    from medpeft.backbones.clip import load_backbone

    model = build_model(load_backbone(args.backbone), adapter)
    frame = predict(
        model,
        images,
        args.labels,
        templates=args.templates,
        options=opt.inference_options(args),
    )
    skipped = frame.attrs["skipped"]
    if args.out is not None:
        write_predictions(frame, args.out)
        print(f"{len(frame)} predictions written to {args.out}")
    else:
        with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
            print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.heatmap is not None and len(frame):
        from medpeft.evaluation.heatmap import save_heatmaps

        kept = [images[i] for i in frame.attrs["kept"]]
        titles = [f"{row.predicted} ({row[row.predicted]:.2f})" for _, row in frame.iterrows()]
        maps = save_heatmaps(
            model,
            kept,
            args.heatmap,
            titles=titles,
            options=opt.inference_options(args),
            overwrite=args.overwrite,
        )
        print(f"{len(maps['files'])} heat maps written to {args.heatmap}")
    if skipped:
        shown = "; ".join(f"{s['image']}: {s['reason']}" for s in skipped[:3])
        print(
            f"skipped {len(skipped)} of {len(images)} unreadable images ({shown}{'; ...' if len(skipped) > 3 else ''})",
            file=sys.stderr,
        )
    return 0
