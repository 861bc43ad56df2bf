"""Per-step cost of ACE-LoRA training against the floor, and of the fast text path against the exact one.

    python benchmarks/train_step.py [--steps 5] [--warmup 2] [--batch-size 8] [--backbone biomedclip-arch]

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
from medpeft.runtime import cpu_model


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

    def __init__(self, backbone, config: medpeft.AceLoraConfig, pixels, texts, labels) -> None:
        self.model = medpeft.AceLoraModel(backbone, config).train()
        self.opt = torch.optim.AdamW(self.model.trainable_parameters().values(), lr=1e-3, weight_decay=1e-2)
        self.pixels, self.labels = pixels, labels
        self.ids = backbone.tokenizer(texts, padding=config.text_padding)

    def __call__(self) -> None:
        loss = self.model(self.pixels, self.ids, self.labels)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def text_only(self) -> None:
        self.model.encode_text(self.ids).sum().backward()
        self.opt.zero_grad(set_to_none=True)


class FloorStep:
    """Both frozen towers forward and backward (to their embedding outputs), InfoNCE on CLIP embeddings."""

    def __init__(self, backbone, pixels, texts, train_mode: bool = False) -> None:
        self.clip = backbone.clip.train(train_mode)
        self.clip.requires_grad_(False)
        self.pixels = pixels
        self.ids = backbone.tokenizer(texts, padding="max_length")
        self.scale = torch.tensor(float(self.clip.logit_scale.exp()))

        def needs_grad(_module, _inputs, output):
            return output.requires_grad_(True)

        self.clip.visual.trunk.patch_embed.register_forward_hook(needs_grad)
        self.clip.text.transformer.embeddings.register_forward_hook(needs_grad)

    def __call__(self) -> None:
        image = F.normalize(self.clip.encode_image(self.pixels), dim=-1)
        text = F.normalize(self.clip.encode_text(self.ids), dim=-1)
        contrastive_loss(image, text, self.scale).backward()

    def text_only(self) -> None:
        self.clip.encode_text(self.ids).sum().backward()


def time_rounds(
    fns: dict[str, Callable[[], None]], warmup: int, steps: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall seconds and median CPU seconds (this process) per call, in interleaved rounds.

    On a machine shared with other jobs, CPU time with one thread counts only the work done, not the
    time spent waiting for a core, so its ratios are the stable ones.
    """
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(warmup + steps):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            if r >= warmup:
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    return (
        {k: statistics.median(v) for k, v in wall.items()},
        {k: statistics.median(v) for k, v in cpu.items()},
    )


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Time one configuration (``args.only``) in this process: CPU and wall medians, full step and text only."""
    base = medpeft.load_backbone(args.backbone)
    texts = reports(base.tokenizer, args.batch_size, 60, 140, args.seed)
    g = torch.Generator().manual_seed(args.seed)
    pixels = torch.randn(args.batch_size, 3, base.image_size, base.image_size, generator=g)
    labels = torch.randint(0, 2, (args.batch_size, 14), generator=g).float()
    if args.only in ("floor", "floor-train"):
        step = FloorStep(base, pixels, texts, train_mode=args.only == "floor-train")
    else:
        fast = args.only == "fast"
        config = (
            medpeft.AceLoraConfig(text_padding="longest", mask_padding=True)
            if fast
            else medpeft.AceLoraConfig()
        )
        step = PaperStep(base, config, pixels, texts, labels)
    wall, cpu = time_rounds({"step": step}, args.warmup, args.steps)
    text_wall, text_cpu = time_rounds({"text": step.text_only}, 1, max(3, args.steps // 2))
    counts = token_counts(base.tokenizer, texts, base.pad_id)
    return {
        "cpu": cpu["step"],
        "wall": wall["step"],
        "text_cpu": text_cpu["text"],
        "text_wall": text_wall["text"],
        "context": int(step.ids.shape[1]),
        "tokens": counts,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5, help="timed steps per configuration (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--backbone", default="biomedclip-arch")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--only", choices=["floor", "floor-train", "paper", "fast"], help=argparse.SUPPRESS
    )  # one config, JSON out
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.only:
        json.dump(measure(args), sys.stdout)
        return 0

    # each configuration in its own process: one model in memory, no allocator state carried over
    runs = {}
    for name in ("floor", "floor-train", "paper", "fast"):
        cmd = [sys.executable, __file__, "--only", name, *(argv if argv is not None else sys.argv[1:])]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs[name] = json.loads(done.stdout.strip().splitlines()[-1])
    counts = runs["paper"]["tokens"]
    cpu = {k: r["cpu"] for k, r in runs.items()}
    text = {k: r["text_cpu"] for k, r in runs.items()}
    result = {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "threads": args.threads or torch.get_num_threads(),
            "torch": torch.__version__,
            "device": "cpu",
            "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        },
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
        "clock": "process CPU seconds (ratios); wall seconds alongside",
        "cpu_seconds_per_step": {k: round(v, 3) for k, v in cpu.items()},
        "wall_seconds_per_step": {k: round(r["wall"], 3) for k, r in runs.items()},
        "ratio_paper_to_floor": round(cpu["paper"] / cpu["floor"], 3),
        "ratio_paper_to_floor_train": round(cpu["paper"] / cpu["floor-train"], 3),
        "ratio_target": 1.15,
        "fast_speedup": round(cpu["paper"] / cpu["fast"], 3),
        "fast_speedup_target": 2.0,
        "text_only_cpu_seconds": {k: round(v, 3) for k, v in text.items()},
        "text_only_fast_speedup": round(text["paper"] / text["fast"], 3),
    }
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
