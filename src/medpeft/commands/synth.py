"""`medpeft synth`: synthetic data in a dataset's exact raw layout (no downloads, no credentials)."""

from __future__ import annotations

import argparse

from medpeft.commands import options

_DESCRIPTION = """\
Write synthetic data in the exact raw layout of DATASET (file names, folders, CSV columns and
value conventions of the real download), so that 'medpeft prepare', training and evaluation can
be tried without credentialed data. Chest X-rays show each finding as a local pattern
(consolidation = patchy opacity, effusion = blunted base, pneumothorax = lucent rim, ...);
reports state, negate or hedge the labels; histology tiles carry class-specific architecture.
A ground-truth sidecar, synthetic_truth.json, records labels, boxes and mask files per image
(the real readers ignore it). Same seed, same bytes.

what N counts:
  mimic-cxr       images (subjects with several studies, some lateral views, reports)
  chexpert        clean frontal rows per 5x200 class (+ N mixed rows, some lateral views)
  rsna            patients (DICOM; about a third with 1-4 opacity boxes)
  siim            images (DICOM; about a third with pneumothorax, RLE rows per component)
  nih-cxr14       images (PNG; patient-disjoint train_val_list/test_list)
  lc25000         tiles per class (5 classes)
  mhist           tiles (HP/SSA)
  slake           images (Slake1.0 json + imgs/; English and Chinese questions)
  vqa-rad         images (VQA_RAD Dataset Public.json + image folder; one test image leaks into train)
  pathvqa         tiles (parquet release: data/{train,validation,test}-*.parquet)
  iu-xray         reports (indiana_reports.csv, indiana_projections.csv, images_normalized/)

The VQA chest X-rays are normal or show ONE finding (pneumothorax, pleural effusion, nodule, mass,
consolidation) at a known site; their questions ("Is there a pneumothorax in this image?" yes/no,
balanced; "Where is the nodule?" -> "left lung"; "What abnormality is seen?") are answerable from the
truth, and the sidecar keeps each lesion's mask, which 'prepare' attaches as lesion_mask.
"""

_EPILOG = """\
examples:
  medpeft synth rsna --out data/rsna-synth
  medpeft synth mimic-cxr --out data/mimic-synth --n 200 --seed 1
  medpeft synth chexpert --out data/chexpert-synth --n 40 --image-size 320
  medpeft synth slake --out data/slake-synth && medpeft prepare slake --raw data/slake-synth --out prepared/slake
"""


def register(sub: argparse._SubParsersAction) -> None:
    from medpeft.data.datasets import DATASETS

    p = sub.add_parser(
        "synth",
        help="write synthetic data in a dataset's raw layout",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "dataset",
        metavar="DATASET",
        help=f"one of: {', '.join(DATASETS)} ('chexpert' is accepted for chexpert-5x200)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must be empty or new)")
    p.add_argument(
        "--n", type=int, default=None, metavar="N", help="how many images (see above); default per dataset"
    )
    options.add_seed(p)
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="PX",
        help="image size in pixels (default 256, mhist 224; the real data is larger)",
    )
    options.add_overwrite(p, what="an earlier synth output in --out")
    options.add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medpeft.data.synthetic import synthesize

    summary = synthesize(
        args.dataset,
        args.out,
        n=args.n,
        seed=args.seed,
        image_size=args.image_size,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items() if not isinstance(v, dict))
    print(f"wrote synthetic {summary['dataset']} to {summary['out']} ({counts})")
    for key, rel in summary["paths"].items():
        print(f"  {key}: {rel}")
    print(f"  ground truth: {summary['truth']}")
    return 0
