"""Per-step cost of A³Tune training against plain LoRA on the same model and batch.

    python benchmarks/a3tune_step.py [--device cpu|cuda] [--preset llava-tiny|llava-tiny-mistral|llava-med-arch]
        [--precision fp32|bf16] [--batch-size 2] [--text-tokens 64] [--gradient-checkpointing] [--steps 5]

Prints one JSON object with, per method, the median step seconds (forward + loss + backward + AdamW step, after
``--warmup`` steps) and the peak memory, the ratios ``a3tune / lora`` (targets: time <= 1.25, memory <= 1.3),
the settings and the machine (``medpeft.runtime.versions``). On a CPU shared with other jobs, compare
``cpu_time_ratio`` (process CPU seconds: the work, not the waiting; use ``--threads 1``).

* ``a3tune``: ``A3TuneConfig()`` (the authors' SLAKE values: A³MoE with 8 Q / 16 K experts r16 on q/k, LoRA r64
  on v/o/gate/up/down, all-layer attention recording, top-128 heads, ratio alignment loss with λ 0.03 against
  8 random weak masks per sample).
* ``lora``: ``A3TuneConfig.plain_lora()`` (LoRA r64 on q/k/v/o/gate/up/down, no recording, LM loss only).

Each method runs in its own process, so the peak memory is its own (CUDA: ``max_memory_allocated``; CPU: the
process's peak resident set, which includes the model). The model is built directly on the device in the
requested dtype (``llava-med-arch`` = 7B parameters never exist in fp32 on the CPU). A batch is one image per
sample (576 tokens for ``llava-med-arch``) followed by ``--text-tokens`` text tokens (half question, half answer).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--preset", choices=["llava-tiny", "llava-tiny-mistral", "llava-med-arch"], default="llava-tiny"
    )
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--text-tokens", type=int, default=64)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--text-hidden", type=int, help="override the preset's text hidden size (intermediate = 4x)"
    )
    p.add_argument("--text-layers", type=int, help="override the preset's number of text layers")
    p.add_argument("--image-size", type=int, help="override the preset's image size (grid = size / patch)")
    p.add_argument("--only", choices=["a3tune", "lora"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_batch(base, batch_size: int, text_tokens: int, device: torch.device, dtype: torch.dtype, seed: int):
    g = torch.Generator().manual_seed(seed)
    cfg = base.model.config
    vocab = cfg.text_config.vocab_size
    n_img = base.image_seq_length
    question = max(text_tokens // 2, 1)
    answer = max(text_tokens - question, 1)
    text = torch.randint(10, min(vocab, 32000), (batch_size, 1 + question + answer), generator=g)
    img = torch.full((batch_size, n_img), base.image_token_id)
    ids = torch.cat([text[:, :1], img, text[:, 1:]], 1)
    labels = torch.full_like(ids, -100)
    labels[:, -answer:] = ids[:, -answer:]
    size = cfg.vision_config.image_size
    pixels = torch.randn(batch_size, 3, size, size, generator=g)
    masks = [(torch.rand(8, base.grid, base.grid, generator=g) > 0.7).float() for _ in range(batch_size)]
    return (
        ids.to(device),
        torch.ones_like(ids).to(device),
        labels.to(device),
        pixels.to(device, dtype),
        [m.to(device) for m in masks],
    )


def run_one(args: argparse.Namespace) -> dict:
    from medpeft.a3tune import A3TuneConfig, A3TuneModel
    from medpeft.backbones.llava import LlavaBase, build_from_config, load_llava, preset_config

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    if args.text_hidden or args.text_layers or args.image_size:
        config = preset_config(args.preset)
        text, vision = config.text_config, config.vision_config
        if args.text_hidden:
            text.hidden_size, text.intermediate_size = args.text_hidden, 4 * args.text_hidden
            text.head_dim = args.text_hidden // text.num_attention_heads
        if args.text_layers:
            text.num_hidden_layers = args.text_layers
        if args.image_size:
            vision.image_size = args.image_size
        grid = vision.image_size // vision.patch_size
        config.image_seq_length = grid * grid
        model = build_from_config(config, dtype=dtype, device=device, seed=args.seed, attn="sdpa")
        base = LlavaBase(model, None, None, f"{args.preset}+overrides", int(config.image_token_id), grid)
    else:
        base = load_llava(args.preset, dtype=dtype, device=device, seed=args.seed)
    cfg = A3TuneConfig() if args.only == "a3tune" else A3TuneConfig.plain_lora()
    model = A3TuneModel(base, cfg)
    model.train()
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    params = list(model.trainable_parameters().values())
    opt = torch.optim.AdamW(params, lr=1e-5)
    ids, mask, labels, pixels, masks = make_batch(
        base, args.batch_size, args.text_tokens, device, dtype, args.seed
    )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, cpu_times, last = [], [], None
    for step in range(args.warmup + args.steps):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels, weak_masks=masks)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        sync()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        last = out
    peak = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "method": args.only,
        "median_step_s": statistics.median(times),
        "step_s": times,
        "median_step_cpu_s": statistics.median(cpu_times),
        "peak_memory_bytes": int(peak),
        "trainable_parameters": sum(p.numel() for p in params),
        "loss": float(last.loss.detach()),
        "align_loss": float(last.align_loss.detach()),
        "sequence_length": int(ids.shape[1]),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.only:
        print(json.dumps(run_one(args)))
        return
    from medpeft.runtime import versions

    if args.threads:
        torch.set_num_threads(args.threads)  # so the reported machine says what the runs used
    results = {}
    base_argv = [a for a in (argv if argv is not None else sys.argv[1:])]
    for method in ("lora", "a3tune"):
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), *base_argv, "--only", method],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"{method} run failed (exit {proc.returncode})")
        results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    a, b = results["a3tune"], results["lora"]
    report = {
        "settings": {k: v for k, v in vars(args).items() if k != "only"},
        "a3tune": a,
        "lora": b,
        "time_ratio": a["median_step_s"] / b["median_step_s"],
        "cpu_time_ratio": a["median_step_cpu_s"] / b["median_step_cpu_s"],
        "memory_ratio": a["peak_memory_bytes"] / b["peak_memory_bytes"],
        "targets": {"time_ratio": 1.25, "memory_ratio": 1.3},
        "memory_kind": "cuda max_memory_allocated"
        if args.device == "cuda"
        else "process peak RSS (includes model)",
        "machine": versions(torch.device(args.device), threads=torch.get_num_threads()),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
