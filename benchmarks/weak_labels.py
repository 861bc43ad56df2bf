"""Weak-label throughput and hit rate on synthetic chest X-rays.

Throughput (default): images/s of each proposer on 256² images — ``regions`` and ``hf-sam`` with random
weights (``--sam-arch tiny`` by default, ``vit_b`` for the ViT-B shapes of facebook/sam-vit-base; speed does
not depend on the weight values) with the authors' AMG settings — and crops/s of the scorer, batched
(``CropScorer.embed_crops``) against a crop-at-a-time loop on the same crops (embeddings compared).

Hit rate (``--hit-rate``): on synthetic SIIM images with a pneumothorax (``synthesize("siim")``, known
lesion masks), the share of images whose top-K holds a proposal with IoU >= 0.3 with the true lesion, for
``regions`` + the chosen scorer, against choosing K of the filtered proposals at random (exact expectation,
hypergeometric) and against an oracle (any filtered proposal hits).

    python benchmarks/weak_labels.py [--n 8] [--sam-arch tiny|vit_b] [--device cpu|cuda] [--scorer tiny]
    python benchmarks/weak_labels.py --hit-rate [--n 200] [--top-k 8 4] [--scorer tiny]

Prints one JSON object with the machine (``medpeft.runtime.versions``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def synthetic_siim(folder: Path, n: int, seed: int) -> list[tuple[str, Path, Path | None]]:
    """(id, image path, true mask path or None) for ``n`` synthetic SIIM images."""
    from medpeft.data.synthetic import synthesize

    synthesize("siim", folder, n=n, seed=seed)
    truth = json.loads((folder / "synthetic_truth.json").read_text())["images"]
    return [
        (v["id"], folder / rel, (folder / v["mask"]) if v.get("mask") else None)
        for rel, v in sorted(truth.items())
    ]


def throughput(args: argparse.Namespace, device: torch.device) -> dict:
    from medpeft.a3tune.weak_labels import filter_masks, load_scorer, make_proposer, masked_crops
    from medpeft.a3tune.weak_labels.pipeline import load_rgb

    with tempfile.TemporaryDirectory() as tmp:
        items = synthetic_siim(Path(tmp), args.n, args.seed)
        images = [load_rgb(p, 256) for _, p, _ in items]
    out: dict = {"n_images": len(images), "proposers": {}}
    crops: list[np.ndarray] = []
    for name, ckpt in (("regions", None), ("hf-sam", f"random-{args.sam_arch}")):
        proposer = make_proposer(name, ckpt, device=str(device), seed=args.seed)
        proposer.propose(images[0])  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        counts = []
        for img in images:
            masks = proposer.propose(img)
            counts.append(len(masks))
            if name == "regions":
                crops.extend(masked_crops(img, filter_masks(masks)))
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        out["proposers"][name] = {
            "checkpoint": ckpt,
            "images_per_s": round(len(images) / elapsed, 3),
            "mean_masks": round(float(np.mean(counts)), 2),
        }
    crops = crops[: args.max_crops]
    scorer = load_scorer(args.scorer, device=device, batch_size=args.batch_size, seed=args.seed)
    scorer.embed_crops(crops[:4])  # warm-up

    def timed(fn):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return result, time.perf_counter() - t0

    batched, t_batched = timed(lambda: scorer.embed_crops(crops))
    single, t_single = timed(lambda: torch.cat([scorer.embed_crops([c]) for c in crops]))
    out["scoring"] = {
        "scorer": args.scorer,
        "n_crops": len(crops),
        "batch_size": args.batch_size,
        "batched_crops_per_s": round(len(crops) / t_batched, 2),
        "one_at_a_time_crops_per_s": round(len(crops) / t_single, 2),
        "speedup": round(t_single / t_batched, 2),
        "max_abs_diff": float((batched - single).abs().max()),
    }
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def hit_rate(args: argparse.Namespace, device: torch.device) -> dict:
    from PIL import Image

    from medpeft.a3tune.weak_labels import (
        build_query,
        filter_masks,
        load_scorer,
        make_proposer,
        masked_crops,
        rank_crops,
        score_crops,
    )  # fmt: skip
    from medpeft.a3tune.weak_labels.pipeline import load_rgb
    from medpeft.data.images import load_image

    proposer = make_proposer("regions")
    scorer = load_scorer(args.scorer, device=device, seed=args.seed)
    query = build_query(args.query, "slake", "Is there a pneumothorax?", "chest")
    ks = args.top_k
    hits = {k: 0 for k in ks}
    random_expect = {k: 0.0 for k in ks}
    oracle = n_pos = 0
    n_props = []
    with tempfile.TemporaryDirectory() as tmp:
        for _, image_path, mask_path in synthetic_siim(Path(tmp), args.n, args.seed):
            if mask_path is None:
                continue
            n_pos += 1
            image = load_rgb(image_path, 256)
            truth = np.asarray(load_image(mask_path).resize((256, 256), Image.Resampling.NEAREST)) > 0
            kept = filter_masks(proposer.propose(image))
            n_props.append(len(kept))
            good = np.array([iou(m.seg, truth) >= 0.3 for m in kept], dtype=bool)
            oracle += bool(good.any())
            scores = score_crops(scorer, masked_crops(image, kept), query)
            for k in ks:
                top = rank_crops(scores, k)
                hits[k] += bool(good[top].any()) if len(top) else 0
                n, h, kk = len(kept), int(good.sum()), min(k, len(kept))
                random_expect[k] += 1.0 - (math.comb(n - h, kk) / math.comb(n, kk) if n else 1.0)
    return {
        "dataset": "synthetic siim (positives only)",
        "n_images": args.n,
        "n_positive": n_pos,
        "proposer": "regions",
        "scorer": args.scorer,
        "query": query,
        "iou_threshold": 0.3,
        "mean_filtered_proposals": round(float(np.mean(n_props)), 2) if n_props else 0,
        "oracle_any_proposal_hits": round(oracle / max(n_pos, 1), 4),
        "top_k": {
            str(k): {
                "scorer_hit_rate": round(hits[k] / max(n_pos, 1), 4),
                "random_k_hit_rate": round(random_expect[k] / max(n_pos, 1), 4),
            }
            for k in ks
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hit-rate", action="store_true", help="measure the hit rate instead of throughput")
    ap.add_argument(
        "--n", type=int, default=None, help="synthetic images (default 8 throughput, 200 hit rate)"
    )
    ap.add_argument("--sam-arch", choices=["tiny", "vit_b"], default="tiny")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--scorer", default="tiny", help="CLIP-family backbone spec for the scorer")
    ap.add_argument("--query", choices=["official", "clean"], default="official")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-crops", type=int, default=256)
    ap.add_argument("--top-k", type=int, nargs="+", default=[8, 4])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from medpeft.runtime import resolve_device, seed_everything, versions

    seed_everything(args.seed)
    device = resolve_device(args.device)
    args.n = args.n or (200 if args.hit_rate else 8)
    result = hit_rate(args, device) if args.hit_rate else throughput(args, device)
    import importlib.metadata

    extra = {}
    for dist in ("scikit-image", "segment-anything", "torchvision"):
        try:
            extra[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            extra[dist] = None
    machine = versions(device, cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                       torch_threads=torch.get_num_threads(), **extra)  # fmt: skip
    print(json.dumps({"benchmark": "weak_labels", "mode": "hit_rate" if args.hit_rate else "throughput",
                      "machine": machine, **result}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
