"""Per-step cost of ACE-LoRA training against the floor, and of the fast text path against the exact one.

    python benchmarks/train_step.py [--steps 5] [--warmup 2] [--batch-size 8] [--backbone biomedclip-arch]
        [--device cpu|cuda] [--precision fp32|bf16] [--compile] [--configs paper,paper-compile,...]
        [--authors-python PY --authors-script FILE]

Prints one JSON object:

* ``paper``: the paper configuration (LoRA r4 on q/k/v of all layers of both towers, ACE-HGNN on both,
  label-guided InfoNCE, learnable scale), reports padded to 256 tokens: forward + loss + backward + AdamW.
* ``floor``: the same backbone with no adapters, forward and backward through both frozen towers (the
  patch and token embeddings require grad, so backward traverses every block), plain InfoNCE on the
  CLIP embeddings, in eval mode. No method that adapts both towers can be cheaper; ``ratio = paper / floor``
  (target <= 1.15) is the price of LoRA + ACE-HGNN + the label-guided loss *and* of training mode.
* ``floor-train``: the same floor with the backbone in training mode, as the paper step runs it (BERT's own
  dropout on attention probabilities and hidden states is active, as in the reference training);
  ``ratio_paper_to_floor_train`` is the price of the method alone.
* ``fast``: the paper configuration with ``text_padding="longest"`` + ``mask_padding=True``;
  ``fast_speedup = paper / fast`` (target >= 2) for reports of 60-140 tokens. ``text_only`` repeats the
  comparison for the text tower alone (forward + backward of the text embeddings), where padding lives.

* ``paper-compile`` / ``fast-compile`` (with ``--compile``): the same steps with ``compile_towers()``
  (torch.compile of the towers' blocks and the hypergraphs; the numbers of eager mode within rounding).
  ``compile_speedup = paper / paper-compile``. The first (warm-up) step compiles; its seconds are reported
  as ``compile_warmup_seconds`` and are not in the medians.
* ``authors``: the authors' step, only with ``--authors-python`` and ``--authors-script`` (skipped, with the
  reason in the JSON, otherwise). Their code is not shipped and is not fetched. To set it up: clone their
  repository into a folder, create a virtual environment there with their pins (transformers 4.47,
  open_clip_torch 2.23, timm, torch), and write a script that builds their model and label-guided loss
  and times ``--warmup`` + ``--steps`` training steps (forward, loss, backward, AdamW) on batch
  ``--batch-size`` of random 224-px images and reports of 60-140 tokens padded to 256, then prints one
  JSON line ``{"cpu": median process CPU s, "wall": median wall s}``. It is called as
  ``PY FILE --batch-size N --steps N --warmup N --seed N --device D [--threads N]``;
  ``ratio_to_authors`` then gives every configuration against it (goal: exact + compile <= 0.80).

``--device cuda`` times on the GPU (wall seconds after ``torch.cuda.synchronize``; CPU time means nothing
there) and reports peak GPU memory per configuration; ``--precision bf16`` runs the steps under bf16
autocast (fp32 is the exact default).

Seconds are medians over ``--steps`` steps after ``--warmup`` steps; each configuration runs in its
own process (three resident models skew the allocator). Ratios use the process's CPU time, which on a
machine shared with other jobs counts the work and not the waiting (use ``--threads 1`` there); wall
seconds are reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

import medpeft
from medpeft.ace_lora.losses import contrastive_loss
from medpeft.runtime import autocast, autocast_dtype, cpu_model, versions

CONFIGS = ("floor", "floor-train", "paper", "fast", "paper-compile", "fast-compile")


def reports(tokenizer, n: int, low: int, high: int, seed: int) -> list[str]:
    """``n`` reports whose token counts ([CLS] and [SEP] included) are spread over [low, high]: sentences
    of the FINDINGS/IMPRESSION text of synthetic MIMIC-style reports, joined up to the drawn length."""
    from medpeft.data.sections import findings_impression
    from medpeft.data.synthetic.reports import report_corpus

    rng = np.random.default_rng(seed)
    texts = [findings_impression(r) for r in report_corpus(n=200, seed=seed)]  # what training reads
    corpus = " ".join(" ".join(t for t in texts if t).split())
    sentences = [s.strip() + "." for s in corpus.split(".") if len(s.strip()) > 3]

    def length(text: str) -> int:
        return int((tokenizer([text], padding="longest", context_length=512) != 0).sum())

    out = []
    for target in np.linspace(low, high, n).round().astype(int):
        text = ""
        while length(text) < target:
            text = (text + " " + sentences[rng.integers(len(sentences))]).strip()
        words, popped = text.split(), []
        while length(" ".join(words)) > target:  # trim the last sentence back to the drawn length
            popped.append(words.pop())
        if length(" ".join(words)) < low and popped:  # a word of several tokens overshot
            words.append(popped[-1])
        out.append(" ".join(words))
    return out


def token_counts(tokenizer, texts: list[str], pad_id: int) -> list[int]:
    return (tokenizer(texts, padding="longest") != pad_id).sum(dim=1).tolist()


class PaperStep:
    """forward + label-guided loss + backward + AdamW, on an AceLoraModel."""

    def __init__(
        self, backbone, config: medpeft.AceLoraConfig, pixels, texts, labels, amp, compile: bool = False
    ) -> None:
        self.model = medpeft.AceLoraModel(backbone, config).train()
        self.report = self.model.compile_towers() if compile else None
        self.opt = torch.optim.AdamW(self.model.trainable_parameters().values(), lr=1e-3, weight_decay=1e-2)
        self.pixels, self.labels, self.amp = pixels, labels, amp
        self.ids = backbone.tokenizer(texts, padding=config.text_padding).to(pixels.device)

    def __call__(self) -> None:
        with self.amp():
            loss = self.model(self.pixels, self.ids, self.labels)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def text_only(self) -> None:
        with self.amp():
            out = self.model.encode_text(self.ids).sum()
        out.backward()
        self.opt.zero_grad(set_to_none=True)


class FloorStep:
    """Both frozen towers forward and backward (to their embedding outputs), InfoNCE on CLIP embeddings."""

    def __init__(self, backbone, pixels, texts, amp, train_mode: bool = False) -> None:
        self.clip = backbone.clip.train(train_mode)
        self.clip.requires_grad_(False)
        self.pixels, self.amp = pixels, amp
        self.ids = backbone.tokenizer(texts, padding="max_length").to(pixels.device)
        self.scale = torch.tensor(float(self.clip.logit_scale.exp()), device=pixels.device)

        def needs_grad(_module, _inputs, output):
            return output.requires_grad_(True)

        self.clip.visual.trunk.patch_embed.register_forward_hook(needs_grad)
        self.clip.text.transformer.embeddings.register_forward_hook(needs_grad)

    def __call__(self) -> None:
        with self.amp():
            image = F.normalize(self.clip.encode_image(self.pixels), dim=-1)
            text = F.normalize(self.clip.encode_text(self.ids), dim=-1)
            loss = contrastive_loss(image, text, self.scale)
        loss.backward()

    def text_only(self) -> None:
        with self.amp():
            out = self.clip.encode_text(self.ids).sum()
        out.backward()


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_rounds(
    fns: dict[str, Callable[[], None]], warmup: int, steps: int, device: torch.device | None = None
) -> tuple[dict[str, float], dict[str, float], float]:
    """Median wall seconds and median CPU seconds (this process) per call, in interleaved rounds.

    On a machine shared with other jobs, CPU time with one thread counts only the work done, not the
    time spent waiting for a core, so its ratios are the stable ones.
    """
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    first = 0.0  # wall seconds of the first round (where compilation happens), reported apart
    for r in range(warmup + steps):
        for name, fn in fns.items():
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            if r == 0:
                first += time.perf_counter() - t0
            if r >= warmup:
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    return (
        {k: statistics.median(v) for k, v in wall.items()},
        {k: statistics.median(v) for k, v in cpu.items()},
        first,
    )


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Time one configuration (``args.only``) in this process: CPU and wall medians, full step and text only."""
    device = torch.device(args.device)
    base = medpeft.load_backbone(args.backbone, device=device)
    texts = reports(base.tokenizer, args.batch_size, 60, 140, args.seed)
    g = torch.Generator().manual_seed(args.seed)
    pixels = torch.randn(args.batch_size, 3, base.image_size, base.image_size, generator=g).to(device)
    labels = torch.randint(0, 2, (args.batch_size, 14), generator=g).float().to(device)
    dtype = autocast_dtype(device, args.precision)

    def amp():
        return autocast(device, dtype)

    if args.only in ("floor", "floor-train"):
        step = FloorStep(base, pixels, texts, amp, train_mode=args.only == "floor-train")
    else:
        fast = args.only.startswith("fast")
        config = (
            medpeft.AceLoraConfig(text_padding="longest", mask_padding=True)
            if fast
            else medpeft.AceLoraConfig()
        )
        step = PaperStep(base, config, pixels, texts, labels, amp, compile=args.only.endswith("-compile"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    wall, cpu, first = time_rounds({"step": step}, args.warmup, args.steps, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    text_wall, text_cpu, _ = time_rounds({"text": step.text_only}, 1, max(3, args.steps // 2), device)
    counts = token_counts(base.tokenizer, texts, base.pad_id)
    report = getattr(step, "report", None)
    return {
        "cpu": cpu["step"],
        "wall": wall["step"],
        "first_step_wall": first,
        "text_cpu": text_cpu["text"],
        "text_wall": text_wall["text"],
        "context": int(step.ids.shape[1]),
        "tokens": counts,
        "peak_memory_gib": None if peak is None else round(peak, 3),
        "compiled": None if report is None else report.compiled,
        "compile_message": None if report is None else report.message,
    }


def interleaved(args: argparse.Namespace) -> dict:
    """``paper`` and ``paper-compile`` in one process, alternating step by step (same load for both)."""
    device = torch.device(args.device)
    dtype = autocast_dtype(device, args.precision)

    def amp():
        return autocast(device, dtype)

    steps = {}
    for name in ("paper", "paper-compile"):
        base = medpeft.load_backbone(args.backbone, device=device)
        texts = reports(base.tokenizer, args.batch_size, 60, 140, args.seed)
        g = torch.Generator().manual_seed(args.seed)
        pixels = torch.randn(args.batch_size, 3, base.image_size, base.image_size, generator=g).to(device)
        labels = torch.randint(0, 2, (args.batch_size, 14), generator=g).float().to(device)
        steps[name] = PaperStep(
            base, medpeft.AceLoraConfig(), pixels, texts, labels, amp, compile=name == "paper-compile"
        )
    wall, cpu, _ = time_rounds(steps, args.warmup, args.steps, device)
    clock = wall if device.type == "cuda" else cpu
    return {
        "machine": versions(device),
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "mode": "interleaved: paper and paper-compile alternate step by step in one process",
        "steps": args.steps,
        "warmup": args.warmup,
        "cpu_seconds_per_step": {k: round(v, 3) for k, v in cpu.items()},
        "wall_seconds_per_step": {k: round(v, 3) for k, v in wall.items()},
        "compile_speedup": round(clock["paper"] / clock["paper-compile"], 3),
        "compile": steps["paper-compile"].report.message,
    }


def authors_step(args: argparse.Namespace) -> dict:
    """Run the user's script for the authors' step in their pinned environment, or say why it is skipped."""
    if not args.authors_python or not args.authors_script:
        return {
            "skipped": "the authors' code and pinned environment were not given (--authors-python, "
            "--authors-script); see this script's docstring for the set-up"
        }
    missing = [p for p in (args.authors_python, args.authors_script) if not os.path.exists(p)]
    if missing:
        return {"skipped": f"not found: {missing}"}
    cmd = [
        args.authors_python, args.authors_script, "--batch-size", str(args.batch_size),
        "--steps", str(args.steps), "--warmup", str(args.warmup), "--seed", str(args.seed),
        "--device", args.device,
    ] + (["--threads", str(args.threads)] if args.threads else [])  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"skipped": f"the authors' script failed (exit {done.returncode}): {done.stderr[-500:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5, help="timed steps per configuration (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--backbone", default="biomedclip-arch")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument(
        "--precision", choices=["fp32", "bf16"], default="fp32", help="fp32 (exact) or bf16 autocast"
    )
    p.add_argument("--compile", action="store_true", help="also time paper-compile (exact + torch.compile)")
    p.add_argument(
        "--configs",
        default=None,
        help=f"comma-separated subset of {','.join(CONFIGS)} (default: all but fast-compile; the compiled "
        "ones only with --compile)",
    )
    p.add_argument("--authors-python", default=None, help="python of the authors' pinned environment")
    p.add_argument("--authors-script", default=None, help="their timed step script (see the docstring)")
    p.add_argument(
        "--interleaved",
        action="store_true",
        help="only paper vs paper-compile, alternating in one process (fair on a shared machine)",
    )
    p.add_argument("--only", choices=CONFIGS, help=argparse.SUPPRESS)  # one config, JSON out
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.only:
        json.dump(measure(args), sys.stdout)
        return 0
    if args.interleaved:
        json.dump(interleaved(args), sys.stdout, indent=2)
        print()
        return 0

    # each configuration in its own process: one model in memory, no allocator state carried over
    if args.configs:
        names = [c.strip() for c in args.configs.split(",") if c.strip()]
        unknown = sorted(set(names) - set(CONFIGS))
        if unknown:
            p.error(f"unknown configurations {unknown}; choose from {list(CONFIGS)}")
    else:
        names = ["floor", "floor-train", "paper", "fast"] + (["paper-compile"] if args.compile else [])
    for needed in ("floor", "floor-train", "paper", "fast"):  # the ratios below need these
        if needed not in names:
            names.insert(0, needed)
    runs = {}
    for name in names:
        cmd = [sys.executable, __file__, "--only", name, *(argv if argv is not None else sys.argv[1:])]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"configuration {name} failed (exit {done.returncode})")
        runs[name] = json.loads(done.stdout.strip().splitlines()[-1])
    authors = authors_step(args)
    counts = runs["paper"]["tokens"]
    on_gpu = torch.device(args.device).type == "cuda"
    clock = "wall" if on_gpu else "cpu"  # CPU time means nothing for GPU work
    cpu = {k: r[clock] for k, r in runs.items()}
    text = {k: r["text_" + clock] for k, r in runs.items()}
    result = {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "threads": args.threads or torch.get_num_threads(),
            "torch": torch.__version__,
            "device": args.device,
            "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
            "versions": versions(torch.device(args.device)),
        },
        "precision": args.precision,
        "backbone": args.backbone,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "report_tokens": {
            "min": min(counts),
            "max": max(counts),
            "mean": round(sum(counts) / len(counts), 1),
        },
        "context_exact": runs["paper"]["context"],
        "context_fast": runs["fast"]["context"],
        "clock": (
            "wall seconds after cuda synchronize (ratios)"
            if on_gpu
            else "process CPU seconds (ratios); wall seconds alongside"
        ),
        "cpu_seconds_per_step": {k: round(r["cpu"], 3) for k, r in runs.items()},
        "wall_seconds_per_step": {k: round(r["wall"], 3) for k, r in runs.items()},
        "first_step_wall_seconds": {k: round(r["first_step_wall"], 3) for k, r in runs.items()},
        "peak_memory_gib": {k: r["peak_memory_gib"] for k, r in runs.items()} if on_gpu else None,
        "compile": {k: r["compile_message"] for k, r in runs.items() if r["compiled"] is not None},
        "ratio_paper_to_floor": round(cpu["paper"] / cpu["floor"], 3),
        "ratio_paper_to_floor_train": round(cpu["paper"] / cpu["floor-train"], 3),
        "ratio_target": 1.15,
        "fast_speedup": round(cpu["paper"] / cpu["fast"], 3),
        "fast_speedup_target": 2.0,
        "text_only_cpu_seconds": {k: round(v, 3) for k, v in text.items()},
        "text_only_fast_speedup": round(text["paper"] / text["fast"], 3),
        "ratios_to_paper": {k: round(v / cpu["paper"], 3) for k, v in cpu.items()},
        "ratios_to_floor_train": {k: round(v / cpu["floor-train"], 3) for k, v in cpu.items()},
        "authors": authors,
    }
    if "paper-compile" in cpu:
        result["compile_speedup"] = round(cpu["paper"] / cpu["paper-compile"], 3)
    if "fast-compile" in cpu:
        result["fast_compile_speedup"] = round(cpu["paper"] / cpu["fast-compile"], 3)
    if clock in authors:
        result["ratio_to_authors"] = {k: round(v / authors[clock], 3) for k, v in cpu.items()}
        result["ratio_to_authors_target"] = 0.80
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
