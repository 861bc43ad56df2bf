"""`medpeft finetune segmentation|detection`: transfer a frozen (adapted) image encoder to dense tasks."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from medpeft.commands import options

SEGMENTATION_HELP = """\
Pneumothorax segmentation (SIIM-ACR, MGCA protocol). The encoder is frozen (LoRA merged); its
blocks 3/6/9/12 (four evenly spaced blocks) feed a light progressive-upsampling decoder trained with
10*focal - log(soft Dice). Reports MGCA's Dice (an empty mask predicted empty scores 1) and the plain
foreground Dice; keeps the decoder with the best validation Dice (--select-by) and scores it on test.

--data is a folder written by 'medpeft prepare siim' (train.csv, validate.csv, test.csv with an 'image'
and a 'mask' column; train_fraction_F.csv for --fraction).

Writes to --out: config.json, history.json, best.pt, checkpoints/last.pt, test_metrics.json,
per_image.csv and overlays/*.png.
"""

DETECTION_HELP = """\
Pneumonia detection (RSNA, MGCA protocol). The encoder is frozen (LoRA merged); a ViTDet simple
pyramid on its last 14x14 tokens (strides 8/16/32 at 224 px) feeds a one-class torchvision RetinaNet
(or FCOS). mAP over IoU 0.40:0.05:0.75 is computed on EVERY test image: predictions on negative images
count as false positives and positive images without predictions as misses. MGCA's code skips both
kinds of image; --mgca-compat scores that way, for comparison with published numbers (higher).

--data is a folder written by 'medpeft prepare rsna' (train.csv, validate.csv, test.csv with an 'image'
and a 'boxes' column: JSON [[x, y, w, h], ...] in image pixels; train_fraction_F.csv for --fraction).

Writes to --out: config.json, history.json, best.pt, checkpoints/last.pt, test_metrics.json,
predictions.csv and overlays/*.png.
"""

EPILOG = """\
encoders (--backbone / --adapter):
  --backbone biomedclip                       base BiomedCLIP (HF hub or cache)
  --backbone biomedclip --adapter DIR_OR_PT   LoRA-only or ACE-LoRA adapter, LoRA merged into the ViT
  --backbone /path/to/folder                  a local open_clip folder
  --backbone timm:vit_base_patch16_224        any timm ViT, randomly initialised (offline baseline)
  --backbone tiny                             the small test model (64 px)

examples:
  medpeft finetune segmentation --backbone biomedclip --adapter runs/ace --data siim --out ft/siim-ace --fraction 0.01
  medpeft finetune detection --backbone biomedclip --data rsna --out ft/rsna-base --precision bf16
  medpeft finetune segmentation --backbone biomedclip --data siim --out ft/siim --compile   torch.compile the encoder
  medpeft finetune detection --backbone biomedclip --adapter runs/ace --data rsna --out ft/rsna-zs --zero-shot-map
  medpeft finetune segmentation ... --out ft/siim-ace --resume      continue an interrupted run
  accelerate launch -m medpeft.cli finetune segmentation ...         several GPUs
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _blocks(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated block numbers like 3,6,9,12, got {text!r}"
        ) from err
    if not values:
        raise argparse.ArgumentTypeError("expected at least one block number")
    return values


def _common(task: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    enc = p.add_argument_group("encoder")
    options.add_backbone(enc)
    options.add_adapter(enc)
    enc.add_argument(
        "--image-size",
        type=_positive_int,
        metavar="PX",
        help="input size (default: the backbone's own, 224 for BiomedCLIP)",
    )
    if task == "segmentation":
        enc.add_argument(
            "--blocks",
            type=_blocks,
            metavar="N,N,...",
            help="1-based ViT blocks the decoder reads (default: 4 evenly spaced, 3,6,9,12 for ViT-B)",
        )
    data = p.add_argument_group("data and output")
    data.add_argument("--data", required=True, type=Path, help="folder written by 'medpeft prepare'")
    options.add_out(data, help="new output folder (never overwritten; see --resume)")
    data.add_argument(
        "--fraction",
        type=float,
        metavar="F",
        help="train on train_fraction_F.csv (e.g. 0.01, 0.1; default: all of train.csv)",
    )
    data.add_argument(
        "--augment",
        action="store_true",
        help="seeded horizontal flip and brightness/contrast jitter (default: off)",
    )
    data.add_argument(
        "--overlays",
        type=int,
        default=8,
        metavar="N",
        help="overlay PNGs of N test images (default: %(default)s)",
    )
    options.add_workers(data)
    opt = p.add_argument_group("training")
    opt.add_argument("--epochs", type=_positive_int, default=20, help="(default: %(default)s)")
    options.add_batch_size(opt, default=16, what="training images per device and step")
    opt.add_argument("--eval-batch-size", type=_positive_int, default=32, help="(default: %(default)s)")
    opt.add_argument(
        "--lr",
        type=float,
        default=5e-4,
        help="AdamW peak learning rate, cosine schedule (default: %(default)s)",
    )
    opt.add_argument("--weight-decay", type=float, default=1e-4, help="(default: %(default)s)")
    opt.add_argument(
        "--warmup-steps", type=int, metavar="N", help="linear warm-up steps (default: 5%% of the steps)"
    )
    opt.add_argument(
        "--grad-accum",
        type=_positive_int,
        default=1,
        metavar="N",
        help="gradient accumulation steps (default: %(default)s)",
    )
    opt.add_argument(
        "--max-grad-norm", type=float, metavar="X", help="clip gradients to this norm (default: no clipping)"
    )
    opt.add_argument(
        "--max-steps",
        type=_positive_int,
        metavar="N",
        help="stop after N optimizer steps (the schedule ends there)",
    )
    options.add_seed(opt)
    options.add_precision(opt)
    options.add_compile(opt)
    opt.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=100,
        metavar="N",
        help="checkpoint every N optimizer steps, and at each epoch end (default: %(default)s)",
    )
    opt.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (same settings required)",
    )
    options.add_device(opt)
    options.add_quiet(opt)
    zs = p.add_argument_group("training-free baseline")
    zs.add_argument(
        "--zero-shot-map",
        action="store_true",
        help="no training: threshold text-to-patch similarity maps and score them the same way",
    )
    zs.add_argument(
        "--zero-shot-class",
        metavar="TEXT",
        help="class name in the prompts (default: 'pneumothorax' / 'pneumonia')",
    )
    zs.add_argument(
        "--zero-shot-threshold",
        type=float,
        metavar="X",
        help="similarity threshold (default: best on the validation split)",
    )
    return p


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="segmentation/detection transfer of a frozen (adapted) image encoder",
        description="Fine-tune a light head on a frozen image encoder (base BiomedCLIP, LoRA-only, ACE-LoRA "
        "or any timm ViT) for pneumothorax segmentation or pneumonia detection, or score a training-free "
        "similarity-map baseline. Run 'medpeft finetune TASK --help' for the options.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    seg = tasks.add_parser(
        "segmentation", parents=[_common("segmentation")], help="pneumothorax segmentation (SIIM-ACR)",
        description=SEGMENTATION_HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    g = seg.add_argument_group("segmentation")
    g.add_argument(
        "--decoder-width",
        type=_positive_int,
        default=256,
        metavar="C",
        help="decoder channels at the token stride, halved per upsampling (default: %(default)s)",
    )
    g.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="probability threshold of the predicted mask (default: %(default)s)",
    )
    g.add_argument(
        "--select-by",
        choices=("dice_mgca", "dice_foreground"),
        default="dice_mgca",
        help="validation Dice that picks the best decoder (default: %(default)s)",
    )
    det = tasks.add_parser(
        "detection", parents=[_common("detection")], help="pneumonia detection (RSNA)",
        description=DETECTION_HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    g = det.add_argument_group("detection")
    g.add_argument(
        "--head",
        choices=("retinanet", "fcos"),
        default="retinanet",
        help="torchvision detection head (default: %(default)s)",
    )
    g.add_argument(
        "--fpn-channels",
        type=_positive_int,
        default=256,
        metavar="C",
        help="channels of the simple pyramid (default: %(default)s)",
    )
    g.add_argument(
        "--mgca-compat",
        action="store_true",
        help="score as MGCA's code: skip images without ground truth or without predictions",
    )
    p.set_defaults(func=run, _parser=p)


def _setup_logging() -> None:
    logger = logging.getLogger("medpeft")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "task", None):
        args._parser.print_help()
        return 2
    from medpeft.errors import ConfigError

    _setup_logging()
    if args.zero_shot_map and args.resume:
        raise ConfigError("--resume applies to training runs; --zero-shot-map trains nothing")
    if args.fraction is not None and not 0 < args.fraction <= 1:
        raise ConfigError(f"--fraction must be in (0, 1], got {args.fraction}")

    from medpeft.commands.model_options import adapter_spec, check_adapter
    from medpeft.transfer.encoders import build_encoder

    adapter = adapter_spec(args.adapter)
    check_adapter(adapter)  # a missing folder or Hub repo fails here, before the encoder is built
    encoder = build_encoder(
        args.backbone,
        adapter=adapter,
        image_size=args.image_size,
        blocks=getattr(args, "blocks", None),
        num_levels=1 if args.task == "detection" else 4,  # the detection pyramid reads the last block only
        seed=args.seed,
    )
    run_config = {
        "task": args.task,
        "backbone": args.backbone,
        "adapter": str(args.adapter) if args.adapter else None,
        "encoder": encoder.describe(),
        "data": str(args.data.resolve()),
        "fraction": args.fraction,
        "augment": args.augment,
        "seed": args.seed,
    }
    if args.zero_shot_map:
        return _zero_shot(args, encoder, run_config)

    from medpeft.transfer.finetune_loop import LoopConfig, run_finetune

    if args.task == "segmentation":
        from medpeft.transfer.segmentation import SegmentationTask

        task = SegmentationTask(
            encoder, args.data, fraction=args.fraction, decoder_width=args.decoder_width,
            threshold=args.threshold, selection_metric=args.select_by, augment=args.augment,
            seed=args.seed, overlays=args.overlays,
        )  # fmt: skip
    else:
        from medpeft.transfer.detection import DetectionTask

        task = DetectionTask(
            encoder, args.data, fraction=args.fraction, head=args.head, fpn_channels=args.fpn_channels,
            mgca_compat=args.mgca_compat, augment=args.augment, seed=args.seed, overlays=args.overlays,
        )  # fmt: skip
    run_config["head"] = task.describe()
    cfg = LoopConfig(
        out_dir=args.out, epochs=args.epochs, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
        lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, grad_accum=args.grad_accum,
        max_steps=args.max_steps, max_grad_norm=args.max_grad_norm, checkpoint_every=args.checkpoint_every,
        precision=args.precision, workers=args.workers, seed=args.seed, resume=args.resume,
        device=args.device, compile=args.compile,
    )  # fmt: skip
    result = run_finetune(task, cfg, run_config)
    _report(args.task, result, args.out)
    return 0


def _zero_shot(args: argparse.Namespace, encoder, run_config: dict) -> int:
    from medpeft.transfer.zero_shot_map import run_zero_shot_map

    result = run_zero_shot_map(
        encoder, args.task, args.data, args.out, class_name=args.zero_shot_class,
        threshold=args.zero_shot_threshold, mgca_compat=getattr(args, "mgca_compat", False),
        selection_metric=getattr(args, "select_by", None), batch_size=args.eval_batch_size,
        overlays=args.overlays, run_config=run_config,
    )  # fmt: skip
    _report(args.task, result, args.out)
    return 0


def _report(task: str, result: dict, out: Path) -> None:
    import os

    if int(os.environ.get("RANK", "0")) != 0:  # one summary per run, not one per process
        return
    m = result["metrics"]
    if task == "segmentation":
        line = f"test Dice (MGCA) {m['dice_mgca']:.4f}, foreground Dice {m['dice_foreground']:.4f} on {m['n_images']} images"
    else:
        value = "n/a" if m["map"] is None else f"{m['map']:.4f}"
        how = (
            "MGCA-compatible (images without boxes or predictions skipped)"
            if m["mgca_compat"]
            else "all images"
        )
        line = f"test mAP@[0.40:0.75] {value} on {m['n_images_scored']}/{m['n_images']} images ({how})"
    print(f"{line}\nresults: {Path(out) / 'test_metrics.json'}")
