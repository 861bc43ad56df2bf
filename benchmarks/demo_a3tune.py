"""``medpeft demo a3tune`` for several seeds: wall time and the three models' numbers per seed.

    python benchmarks/demo_a3tune.py [--seeds 0 1 2] [--quick] [--keep DIR]

Prints one JSON object with the machine (``medpeft.runtime.versions``): per seed the wall time, closed accuracy,
open recall and attention_in_lesion of base / lora / a3tune, and whether A³Tune reached 2x plain LoRA's
attention in the lesion. The demo's numbers depend only on the seed and the machine; the wall time also on the
load of the machine (2 shared cores here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="the quick settings (plumbing only)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="write the runs under this folder and keep them"
    )
    args = parser.parse_args()

    from medpeft.demo.a3tune import run_a3tune_demo
    from medpeft.runtime import versions

    keys = ("closed_accuracy", "open_recall", "attention_in_lesion")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for seed in args.seeds:
            result = run_a3tune_demo(root / f"seed-{seed}", seed=seed, quick=args.quick, progress=False)
            m = result.metrics
            runs[seed] = {
                "wall_seconds": round(result.wall_seconds, 1),
                "results": {name: {k: r[k] for k in keys} for name, r in m["results"].items()},
                "goal": m["goal"],
                "weak_labels": m["weak_labels"],
            }
    machine = versions(None, cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                       torch_threads=__import__("torch").get_num_threads())  # fmt: skip
    print(
        json.dumps(
            {"benchmark": "demo_a3tune", "quick": args.quick, "runs": runs, "machine": machine}, indent=2
        )
    )


if __name__ == "__main__":
    main()
