"""Cost of writing and preparing the A³Tune datasets' synthetic raw layouts.

    python benchmarks/a3tune_data.py [--n 64] [--image-size 256] [--prepare-size 224] [--seed 0]

Prints one JSON object: per dataset (slake, vqa-rad, pathvqa, iu-xray, and mimic-cxr prepared with
``reports_for="generation"``), the seconds ``synthesize`` took, the seconds ``prepare`` took (with a resized
image cache of ``--prepare-size``), the samples kept per split and dropped per reason, and the machine
(``medpeft.runtime.versions``). Wall-clock on a shared CPU: compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from medpeft.data.prepare import prepare
from medpeft.data.synthetic import synthesize
from medpeft.runtime import versions

DATASETS = {
    "slake": {},
    "vqa-rad": {},
    "pathvqa": {},
    "iu-xray": {},
    "mimic-cxr": {"reports_for": "generation"},
}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--prepare-size", type=int, default=224)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in DATASETS.items():
            raw, out = Path(tmp) / f"{name}-raw", Path(tmp) / f"{name}-out"
            t0 = time.perf_counter()
            synthesize(name, raw, n=args.n, seed=args.seed, image_size=args.image_size)
            t1 = time.perf_counter()
            summary = prepare(
                name, raw, out, image_size=args.prepare_size, seed=args.seed, progress=False,
                on_missing="skip", **options,
            )  # fmt: skip
            t2 = time.perf_counter()
            results[name] = {
                "synth_s": round(t1 - t0, 3),
                "prepare_s": round(t2 - t1, 3),
                "kept": summary["kept"],
                "dropped": summary["dropped"],
            }
    report = {"settings": vars(args), "datasets": results, "machine": versions()}
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
