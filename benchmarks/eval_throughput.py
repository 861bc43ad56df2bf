"""Images per second of ``medpeft eval``'s batched path against a one-image-at-a-time loop, same run.

The loop is what the released evaluation scripts do: class prompt embeddings once, then per image
decode, preprocess and call the model on a batch of one. The batched path makes the calls
``evaluate`` makes (DataLoader with workers, batches, LoRA merged while scoring), each timed. Both read
the same prepared synthetic RSNA set (``synthesize`` + ``prepare``, resized PNG cache) with ACE-LoRA on the
BiomedCLIP architecture (``biomedclip-arch``, random weights: speed does not depend on the values),
and their probabilities are compared.

``speedup`` is the ratio of image throughputs (what grows with the test set); the class embeddings are
computed once by both paths and reported apart, with the end-to-end times at this ``--n``.
``batched_unmerged`` isolates what batching alone gives.

    python benchmarks/eval_throughput.py [--n 24] [--batch-size 8] [--workers 1] [--device cpu|cuda|all]
        [--precision fp32|bf16] [--compile]

``--compile`` adds ``batched_compiled``: the same batched scoring with ``InferenceOptions(compile=True)``
(torch.compile of the towers); the first batch, which compiles, is run before the timer and its seconds
reported as ``compile_warmup_s``. ``data_only_img_per_s`` is the DataLoader alone (decode + preprocess +
collate, same workers, no model): once the model is faster, this is the ceiling of end-to-end images/s.

Prints one JSON object: the machine (CPU model, cores, torch threads, torch version, load) and, per
device, images/s of each path and the speed-ups. Targets: >= 2x on 2 CPU cores, >= 10x on a GPU.
Beside them, the model's FLOPs per image and the device's measured float32 matrix-multiply rate: the
image tower is compute-bound, so ``batched_gflops`` close to ``matmul_fp32_gflops`` means batching has
taken what the hardware offers (on 2 CPU cores, a 2x speed-up would need more than the matmul rate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from medpeft.runtime import versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def flops_per_image(model, image_size: int, device: torch.device) -> float:
    """Floating-point operations of one image's ``encode_image`` with LoRA merged (torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    from medpeft.evaluation.inference import merged_lora

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), merged_lora(model), counter:
        model.encode_image(torch.zeros(1, 3, image_size, image_size, device=device))
    return float(counter.get_total_flops())


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """The device's measured float32 matrix-multiply rate: the ceiling for a compute-bound ViT forward."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    seconds = _sync(device, start) / repeats
    return 2 * size**3 / seconds / 1e9


def make_data(root: Path, n: int, image_size: int, dataset: str = "rsna") -> Path:
    """A prepared synthetic ``dataset`` with ``n`` test images (RSNA: DICOM raw -> resized PNG cache, needs
    pydicom; lc25000: JPEG folders, for machines without pydicom)."""
    from medpeft.data.prepare import prepare
    from medpeft.data.synthetic import synthesize

    synthesize(dataset, root / "raw", n=max(n * 4, 16), seed=0, image_size=max(image_size, 256))
    prepare(dataset, root / "raw", root / "prepared", image_size=image_size, progress=False)
    data = root / "prepared"
    # benchmark on exactly n images: the test split, topped up from train, written as the test manifest
    import pandas as pd

    frames = [
        pd.read_csv(data / f"{s}.csv", dtype=str, keep_default_na=False)
        for s in ("test", "train", "validate", "val")
        if (data / f"{s}.csv").is_file()
    ]
    both = pd.concat(frames, ignore_index=True)
    if dataset != "rsna":  # class folders are listed one class after another: mix them
        both = both.sample(frac=1.0, random_state=0)
    both = both.head(n)
    if dataset == "rsna" and both["Pneumonia"].nunique() < 2:
        raise SystemExit("synthetic set has one class only; use a larger --n")
    both.to_csv(data / "bench.csv", index=False)
    info = json.loads((data / "dataset.json").read_text())
    info["splits"]["bench"] = "bench.csv"
    (data / "dataset.json").write_text(json.dumps(info, indent=2))
    return data


def one_at_a_time(model, data: Path, device: torch.device) -> dict:
    """The reference loop: class embeddings once; then per image decode, preprocess, forward a batch of one."""
    from medpeft.data.images import load_image
    from medpeft.evaluation.zero_shot import load_eval_set

    es = load_eval_set(data, split="bench")
    bb = model.backbone
    with torch.no_grad():
        start = time.perf_counter()
        classes = torch.cat(
            [model.encode_prompts(bb.tokenizer(p).to(device)[None]) for p in es.prompts.positive]
        )
        prompts_s = _sync(device, start)
        start = time.perf_counter()
        rows = []
        for path in es.images:
            pixels = bb.preprocess(load_image(path))[None].to(device)
            image = model.encode_image(pixels)
            rows.append((model.logit_scale * image @ classes.t()).softmax(dim=-1)[0].cpu())
        images_s = _sync(device, start)
    return {"probs": torch.stack(rows).double().numpy(), "prompts_s": prompts_s, "images_s": images_s}


def _sync(device: torch.device, start: float) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def batched(model, data: Path, device: torch.device, batch_size: int, workers: int) -> dict:
    """The calls ``evaluate`` makes, in its order, each timed (output files are not written)."""
    from medpeft.evaluation.inference import encode_class_prompts, merged_lora, score_images
    from medpeft.evaluation.metrics import classification_metrics
    from medpeft.evaluation.options import InferenceOptions
    from medpeft.evaluation.zero_shot import load_eval_set

    start = time.perf_counter()
    es = load_eval_set(data, split="bench")
    with merged_lora(model):
        t = time.perf_counter()
        options = InferenceOptions(batch_size=batch_size, workers=workers, device=str(device))
        head = encode_class_prompts(model, model.backbone.tokenizer, es.prompts, options)
        prompts_s = _sync(device, t)
        score = partial(
            score_images,
            model,
            head,
            es.images,
            model.backbone.preprocess,
        )
        t = time.perf_counter()
        scores = score(options)
        images_s = _sync(device, t)
    classification_metrics(es.y_true, scores.probs, es.task, es.class_keys, n_bootstrap=0)
    total_s = time.perf_counter() - start
    # batching alone: the same head and scorer with LoRA left unmerged
    t = time.perf_counter()
    plain = score(InferenceOptions.make(options, merge_lora=False))
    unmerged_s = _sync(device, t)
    return {
        "probs": scores.probs,
        "plain_probs": plain.probs,
        "prompts_s": prompts_s,
        "images_s": images_s,
        "total_s": total_s,
        "unmerged_images_s": unmerged_s,
    }


def data_only(model, data: Path, device: torch.device, batch_size: int, workers: int) -> float:
    """Seconds for the scoring DataLoader alone (decode, preprocess, collate, copy to ``device``)."""
    from medpeft.evaluation.image_loader import as_items, make_loader
    from medpeft.evaluation.zero_shot import load_eval_set

    es = load_eval_set(data, split="bench")
    loader = make_loader(
        as_items(es.images),
        model.backbone.preprocess,
        batch_size=batch_size,
        workers=workers,
        pin_memory=device.type == "cuda",
    )
    start = time.perf_counter()
    for batch in loader:
        batch.pixel_values.to(device, non_blocking=True)
    return _sync(device, start)


def compiled_path(
    model, data: Path, device: torch.device, batch_size: int, workers: int, precision: str
) -> dict:
    """Batched scoring with ``compile=True``; the compile warm-up (one batch per shape) runs untimed first."""
    from medpeft.evaluation.inference import encode_class_prompts, merged_lora, score_images
    from medpeft.evaluation.options import InferenceOptions
    from medpeft.evaluation.zero_shot import load_eval_set

    es = load_eval_set(data, split="bench")
    options = InferenceOptions(
        batch_size=batch_size, workers=workers, device=str(device), precision=precision, compile=True
    )
    with merged_lora(model):
        t = time.perf_counter()
        head = encode_class_prompts(model, model.backbone.tokenizer, es.prompts, options)
        score_images(model, head, es.images[:batch_size], model.backbone.preprocess, options)  # warm-up
        tail = len(es.images) % batch_size
        if tail:  # the last, smaller batch is a second shape: compile it before the timer too
            score_images(model, head, es.images[:tail], model.backbone.preprocess, options)
        warmup_s = _sync(device, t)
        t = time.perf_counter()
        head = encode_class_prompts(model, model.backbone.tokenizer, es.prompts, options)
        prompts_s = _sync(device, t)
        t = time.perf_counter()
        scores = score_images(model, head, es.images, model.backbone.preprocess, options)
        images_s = _sync(device, t)
    return {
        "probs": scores.probs,
        "warmup_s": warmup_s,
        "prompts_s": prompts_s,
        "images_s": images_s,
        "report": model.compile_report.message if model.compile_report else None,
    }


def bench_device(
    device: torch.device,
    data: Path,
    n: int,
    batch_size: int,
    workers: int,
    precision: str = "fp32",
    compile: bool = False,
    backbone: str = "biomedclip-arch",
) -> dict:
    import medpeft

    bb = medpeft.load_backbone(backbone, device=device)
    model = medpeft.AceLoraModel(bb, medpeft.AceLoraConfig())
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen).to(p) * 0.02)
    model.eval()
    with torch.inference_mode():  # warm-up: kernel selection, allocator
        x = torch.zeros(2, 3, bb.image_size, bb.image_size, device=device)
        model.encode_image(x[:1])
        model.encode_image(x)
    loop = one_at_a_time(model, data, device)
    fast = batched(model, data, device, batch_size, workers)
    loop_total = loop["prompts_s"] + loop["images_s"]
    data_s = data_only(model, data, device, batch_size, workers)
    comp = compiled_path(model, data, device, batch_size, workers, precision) if compile else None
    gflop = flops_per_image(model, bb.image_size, device) / 1e9
    peak = matmul_gflops(device)
    out = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "images": n,
        "batch_size": batch_size,
        "workers": workers,
        "one_at_a_time_img_per_s": round(n / loop["images_s"], 3),
        "batched_img_per_s": round(n / fast["images_s"], 3),
        "batched_unmerged_img_per_s": round(n / fast["unmerged_images_s"], 3),
        "speedup": round(loop["images_s"] / fast["images_s"], 2),
        "speedup_batching_only": round(loop["images_s"] / fast["unmerged_images_s"], 2),
        "class_embeddings_s": {
            "one_at_a_time": round(loop["prompts_s"], 2),
            "batched": round(fast["prompts_s"], 2),
        },
        "end_to_end_s": {"one_at_a_time": round(loop_total, 2), "batched": round(fast["total_s"], 2)},
        "speedup_end_to_end": round(loop_total / fast["total_s"], 2),
        # compute-bound check: model GFLOP/s of each path against the device's measured fp32 matmul rate
        "gflop_per_image": round(gflop, 2),
        "matmul_fp32_gflops": round(peak, 1),
        "one_at_a_time_gflops": round(gflop * n / loop["images_s"], 1),
        "batched_gflops": round(gflop * n / fast["images_s"], 1),
        "max_abs_prob_diff_vs_loop": float(np.abs(fast["probs"] - loop["probs"]).max()),
        "max_abs_prob_diff_unmerged_vs_loop": float(np.abs(fast["plain_probs"] - loop["probs"]).max()),
        "data_only_img_per_s": round(n / data_s, 3),
    }
    if comp is not None:
        out.update(
            {
                "precision_compiled": precision,
                "batched_compiled_img_per_s": round(n / comp["images_s"], 3),
                "compile_speedup_vs_batched": round(fast["images_s"] / comp["images_s"], 3),
                "speedup_compiled_vs_loop": round(loop["images_s"] / comp["images_s"], 2),
                "compile_warmup_s": round(comp["warmup_s"], 2),
                "class_embeddings_compiled_s": round(comp["prompts_s"], 2),
                "compiled_gflops": round(gflop * n / comp["images_s"], 1),
                "max_abs_prob_diff_compiled_vs_loop": float(np.abs(comp["probs"] - loop["probs"]).max()),
                "compile": comp["report"],
            }
        )
    del model, bb
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="images per path (default 24)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--workers", type=int, default=1, help="DataLoader workers of the batched path (default 1)"
    )
    parser.add_argument(
        "--image-size", type=int, default=256, help="shorter side of the prepared image cache"
    )
    parser.add_argument(
        "--device", choices=["cpu", "cuda", "all"], default="all", help="all = CPU, and CUDA when available"
    )
    parser.add_argument(
        "--precision", choices=["fp32", "bf16"], default="fp32", help="of the compiled path (default fp32)"
    )
    parser.add_argument("--backbone", default="biomedclip-arch", help="tiny for a quick check")
    parser.add_argument(
        "--dataset",
        choices=["rsna", "lc25000"],
        default="rsna",
        help="synthetic set scored (rsna: DICOM raw, needs pydicom; lc25000: JPEG, no pydicom)",
    )
    parser.add_argument("--compile", action="store_true", help="also time batched scoring with compile=True")
    args = parser.parse_args(argv)
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device == "cuda" or (args.device == "all" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))
    report = {
        "benchmark": "eval_throughput",
        "model": "ACE-LoRA on biomedclip-arch (ViT-B/16 224 + BiomedBERT, 256-token prompts)",
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "versions": versions(),
        },
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="medpeft-bench-") as tmp:
        data = make_data(Path(tmp), args.n, args.image_size, args.dataset)
        for device in devices:
            report["results"].append(
                bench_device(
                    device,
                    data,
                    args.n,
                    args.batch_size,
                    args.workers,
                    args.precision,
                    args.compile,
                    args.backbone,
                )
            )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
