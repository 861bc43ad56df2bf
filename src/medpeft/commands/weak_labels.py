"""`medpeft weak-labels`: A³Tune's prompt-aware weak labels (SAM proposals ranked by a CLIP-family model)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medpeft.a3tune.weak_labels.proposers import PROPOSERS
from medpeft.a3tune.weak_labels.queries import DATASETS as QUERY_DATASETS
from medpeft.a3tune.weak_labels.queries import QUERY_MODES
from medpeft.commands import options

# Literal copies (the library imports torch; --help must stay instant); a test keeps them equal.


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "weak-labels",
        help="A³Tune prompt-aware weak labels: top-K masks per sample",
        description=(
            "For every sample (image + question): propose masks on the image squashed to 256x256, keep those "
            "passing the A³Tune filters (area < 40000, box off the top/left edge, sides > 12, not past 253), "
            "score each masked crop against the query text as 100*cos with a CLIP-family model, and store the "
            "top K in OUT/masks.npz (uint8 [K,256,256] per id) with OUT/index.json (scores, boxes, settings). "
            "Resumable: rerun the same command to continue; results are flushed every --flush-every samples."
        ),
        epilog=(
            "Example: medpeft weak-labels --data slake_train.csv --out wl/ --proposer sam "
            "--checkpoint sam_vit_h_4b8939.pth --scorer biomedclip --dataset slake --preview 8"
        ),
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="D",
        help="a CSV with columns id,image,question (optional dataset, location/organ, modality; image paths "
        "relative to the CSV), or a prepared A³Tune manifest folder holding manifest.csv",
    )
    options.add_out(p, help="output folder (masks.npz, index.json)")
    p.add_argument(
        "--proposer",
        required=True,
        choices=PROPOSERS,
        help="sam: segment-anything package + a .pth checkpoint (pip install 'medpeft[sam]'); hf-sam: "
        "transformers SamModel with medpeft's automatic-mask loop (same settings); regions: weight-free "
        "scikit-image felzenszwalb segments (synthetic data, demos)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="sam: a SAM .pth (vit_h/vit_l/vit_b detected, loaded with weights_only=True); hf-sam: a hub id "
        "(HF cache first), a local folder, or random-tiny/random-vit_b (random weights, testing only); "
        "default for hf-sam: facebook/sam-vit-huge",
    )
    p.add_argument(
        "--scorer",
        required=True,
        metavar="BACKBONE",
        help="the CLIP-family scorer: biomedclip (HF hub/cache), a local BiomedCLIP folder, hf-hub:org/repo, "
        "biomedclip-arch or tiny",
    )
    options.add_adapter(p)
    p.add_argument(
        "--top-k",
        type=int,
        default=None,
        metavar="K",
        help="masks kept per sample (default: per dataset, 8 for slake/vqa-rad/pathvqa, 4 for reports, omnimedvqa, ol3i)",
    )
    p.add_argument(
        "--query",
        choices=QUERY_MODES,
        default="official",
        help="official: the authors' exact texts, typos included ('imgaing', missing space); clean: the same "
        "without the typos (default official)",
    )
    p.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help=f"query template when the CSV has no dataset column: {', '.join(QUERY_DATASETS)}",
    )
    p.add_argument(
        "--bgr",
        action="store_true",
        help="feed the image to the proposer and its crops to the scorer in BGR order, as the authors did "
        "(OpenCV arrays); default RGB (grey images are unaffected)",
    )
    p.add_argument(
        "--resize",
        choices=["pil", "cv2"],
        default="pil",
        help="how images are squashed to 256x256: pil (antialiased bilinear, default) or cv2 (the authors' "
        "cv2.resize INTER_LINEAR; needs opencv)",
    )
    p.add_argument(
        "--preview", type=int, default=0, metavar="N", help="draw the first N samples into OUT/preview.png"
    )
    options.add_on_bad_image(p)
    options.add_device(p)
    options.add_batch_size(p, default=64, what="crops per scorer batch")
    p.add_argument(
        "--points-per-batch",
        type=int,
        default=128,
        metavar="N",
        help="SAM point prompts per batch (default 128, the authors'; lower it to save GPU memory)",
    )
    options.add_workers(p)
    p.add_argument(
        "--flush-every", type=int, default=16, metavar="N", help="write results every N samples (default 16)"
    )
    options.add_seed(p)
    options.add_overwrite(p, what="results in --out made with different settings")
    options.add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medpeft.a3tune.weak_labels import generate_weak_labels, load_scorer, make_proposer, read_samples
    from medpeft.a3tune.weak_labels.proposers import AmgSettings
    from medpeft.commands.model_options import adapter_spec, check_adapter
    from medpeft.errors import ConfigError
    from medpeft.runtime import resolve_device

    for flag in ("top_k", "batch_size", "points_per_batch", "flush_every"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.workers < 0 or args.preview < 0:
        raise ConfigError("--workers and --preview must be >= 0")
    samples = read_samples(args.data)
    adapter = adapter_spec(args.adapter)
    check_adapter(adapter)  # a missing folder or Hub repo fails here, before SAM or the scorer is loaded
    device = resolve_device(args.device)
    proposer = make_proposer(
        args.proposer,
        args.checkpoint,
        device=str(device),
        settings=AmgSettings(points_per_batch=args.points_per_batch),
        seed=args.seed,
    )
    scorer = load_scorer(args.scorer, adapter, device=device, batch_size=args.batch_size, seed=args.seed)
    summary = generate_weak_labels(
        samples,
        args.out,
        proposer=proposer,
        scorer=scorer,
        top_k=args.top_k,
        query=args.query,
        dataset=args.dataset,
        bgr=args.bgr,
        resize=args.resize,
        flush_every=args.flush_every,
        on_bad_image=args.on_bad_image,
        overwrite=args.overwrite,
        progress=not args.quiet,
        seed=args.seed,
        workers=args.workers,
        preview=args.preview,
    )
    print(
        f"weak labels for {summary['labelled']} samples in {summary['out']} "
        f"({summary['new']} new, {summary['resumed']} resumed)"
    )
    if summary["n_skipped"]:
        shown = "; ".join(s["reason"] for s in summary["skipped"][:3])
        print(
            f"skipped {summary['n_skipped']} samples ({shown}{'; ...' if summary['n_skipped'] > 3 else ''})",
            file=sys.stderr,
        )
    if "preview" in summary:
        print(f"preview: {summary['preview']}")
    return 0
