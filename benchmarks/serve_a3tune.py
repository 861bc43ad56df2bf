"""Latency of one request of the A³Tune tab of ``medpeft serve``: load once, then answer + overlay per question.

    python benchmarks/serve_a3tune.py [--base llava-tiny] [--device cpu|cuda] [--image-size 512]
        [--max-new-tokens 64] [--precision fp32|bf16|fp16] [--repeats 5] [--threads 0]

Prints one JSON object: the model load time (``load_a3tune_models``, the base through the 'none' adapter), and
per request the median/min seconds of ``serve.a3tune_inference.answer`` (greedy generation, the attention
diagnostic's prefill, the overlay PNG) after one warm-up, with the number of generated tokens, the settings and
the machine (``medpeft.runtime.versions``). The image is seeded noise; presets have random weights (no download).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from PIL import Image


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="llava-tiny", help="a load_llava name (preset, folder or hub id)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--image-size", type=int, default=512)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument(
        "--precision", choices=["fp32", "bf16", "fp16"], default="fp32", help="autocast while generating"
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from medpeft.runtime import versions
    from medpeft.serve.a3tune_inference import GenerationSettings, answer, load_a3tune_models

    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    image = Image.fromarray(rng.integers(0, 255, (args.image_size, args.image_size, 3), dtype=np.uint8))
    started = time.perf_counter()
    served = load_a3tune_models(args.base, ["none"], args.device)["base"]
    load_s = time.perf_counter() - started
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, precision=args.precision)
    question = "Is there a lesion in the left lung?"
    reply = answer(served, image, question, settings)  # warm-up
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        reply = answer(served, image, question, settings)
        times.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "benchmark": "serve_a3tune_request",
                "base": args.base,
                "load_s": round(load_s, 3),
                "request_median_s": round(statistics.median(times), 4),
                "request_min_s": round(min(times), 4),
                "generated_tokens": len(reply.token_ids),
                "overlay_size": list(reply.overlay.size),
                "settings": {**vars(args), "threads_used": torch.get_num_threads()},
                "machine": versions(torch.device(args.device)),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
