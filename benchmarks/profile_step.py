"""Where the exact ACE-LoRA training step spends its time: torch.profiler over one step, grouped by op.

    python benchmarks/profile_step.py [--backbone biomedclip-arch] [--batch-size 8] [--device cpu] [--compile]

Prints one JSON object: the machine, the step's total self time, the top ops by self time (CPU, or CUDA
with ``--device cuda``) and the share of the step spent in each part of the method, measured with
``record_function`` ranges around the towers, the hypergraphs and the loss. This is what decides what is
worth optimising: on the paper configuration nearly all the time is the backbone's own matrix multiplies
and attention, which only a faster backbone (compile, bf16, a GPU) can shrink.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch.profiler import ProfilerActivity, profile, record_function

import medpeft
from medpeft.ace_lora.losses import contrastive_loss
from medpeft.runtime import versions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="biomedclip-arch")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="profile the compiled step (after a warm-up)")
    p.add_argument("--top", type=int, default=15, help="ops listed (default 15)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    bb = medpeft.load_backbone(args.backbone, device=device)
    model = medpeft.AceLoraModel(bb, compile=args.compile).train()
    opt = torch.optim.AdamW(model.trainable_parameters().values(), lr=1e-3)
    g = torch.Generator().manual_seed(args.seed)
    pixels = torch.randn(args.batch_size, 3, bb.image_size, bb.image_size, generator=g).to(device)
    ids = torch.randint(5, 1000, (args.batch_size, bb.context_length), generator=g)
    ids[:, 0], ids[:, 100:] = 2, 0  # [CLS], a 100-token report, padding to the full context
    ids = ids.to(device)
    labels = torch.randint(0, 2, (args.batch_size, 14), generator=g).float().to(device)

    def step() -> None:
        with record_function("image_tower"):
            img = model.image_features(pixels)
        with record_function("image_hgnn"):
            image = model.image_hgnn.embed(img.tokens, img.affinity)
        with record_function("text_tower"):
            txt = model.text_features(ids)
        with record_function("text_hgnn"):
            text = model.text_hgnn.embed(txt.tokens, txt.affinity)
        with record_function("loss"):
            loss = contrastive_loss(image, text, model.logit_scale, labels)
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)

    step()  # warm-up (compilation, allocator)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = prof.key_averages()
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, key) for e in events)
    parts = {
        e.key: round(e.cpu_time_total / 1e6, 3)
        for e in events
        if e.key in ("image_tower", "image_hgnn", "text_tower", "text_hgnn", "loss", "backward", "optimizer")
    }
    top = sorted(events, key=lambda e: getattr(e, key), reverse=True)[: args.top]
    out = {
        "machine": versions(device),
        "backbone": args.backbone,
        "batch_size": args.batch_size,
        "compiled": args.compile,
        "self_time_total_s": round(total / 1e6, 3),
        "parts_s (forward ranges; backward and optimizer whole)": parts,
        "top_ops": [
            {
                "op": e.key,
                "self_s": round(getattr(e, key) / 1e6, 3),
                "share": round(getattr(e, key) / total, 3),
                "calls": e.count,
            }
            for e in top
        ],
    }
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
