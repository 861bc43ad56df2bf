"""Generation throughput of an A³Tune model: batched (left padding) against one sample at a time.

    python benchmarks/a3tune_generation.py [--device cpu|cuda] [--preset llava-tiny|llava-tiny-mistral|llava-med-arch]
        [--precision fp32|bf16] [--batch-size 16] [--max-new-tokens 32] [--samples 32] [--method a3tune|lora]

Prints one JSON object: for each mode the seconds, generated tokens per second and samples per second (after one
warm-up batch), the speed-up ``batched / one_at_a_time``, whether both modes produced the same tokens, the
settings and the machine (``medpeft.runtime.versions``). Prompts are random text tokens around one image (576
image tokens for ``llava-med-arch``) with lengths varying by sample, so the batch really is padded; every sample
generates exactly ``--max-new-tokens`` tokens (``min_new_tokens`` = max), so both modes do the same work. The
model is built directly on the device in the requested dtype (``llava-med-arch`` = 7B parameters never exist in
fp32 on the CPU); its weights are random (no download), which is fine for timing.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--preset", choices=["llava-tiny", "llava-tiny-mistral", "llava-med-arch"], default="llava-tiny"
    )
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--samples", type=int, default=32, help="prompts generated in each mode")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--num-beams", type=int, default=1)
    p.add_argument("--method", choices=["a3tune", "lora"], default="a3tune")
    p.add_argument(
        "--text-tokens", type=int, default=24, help="longest prompt text (shorter ones vary down to half)"
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def prompts(base, n: int, text_tokens: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    vocab = min(base.model.config.text_config.vocab_size, 32000)
    out = []
    for i in range(n):
        length = text_tokens - (i * 7) % max(text_tokens // 2, 1)
        text = torch.randint(10, vocab, (length,), generator=g)
        image = torch.full((base.image_seq_length,), base.image_token_id)
        out.append(torch.cat([text[:2], image, text[2:]]))
    return out


def left_pad(rows: list[torch.Tensor], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :], mask[i, width - len(r) :] = r, 1
    return ids, mask


def main(argv: list[str] | None = None) -> dict:
    from medpeft.a3tune import A3TuneConfig, A3TuneModel
    from medpeft.backbones.llava import load_llava
    from medpeft.runtime import versions

    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    base = load_llava(args.preset, dtype=dtype, device=device, seed=args.seed)
    cfg = A3TuneConfig(seed=args.seed) if args.method == "a3tune" else A3TuneConfig.plain_lora(seed=args.seed)
    model = A3TuneModel(base, cfg).eval()
    if dtype != torch.float32:
        model.to(dtype)
    with torch.no_grad():  # non-zero adapters, as after training
        g = torch.Generator().manual_seed(args.seed + 1)
        for p in model.trainable_parameters().values():
            p.add_((0.01 * torch.randn(p.shape, generator=g)).to(p.device, p.dtype))
    pad = int(base.model.config.text_config.pad_token_id or 0)
    size = base.model.config.vision_config.image_size
    rows = prompts(base, args.samples, args.text_tokens, args.seed)
    pixels = torch.randn(args.samples, 3, size, size, generator=torch.Generator().manual_seed(args.seed))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def generate(idx: list[int]) -> list[list[int]]:
        ids, mask = left_pad([rows[i] for i in idx], pad)
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            pixel_values=pixels[idx].to(device, dtype),
            max_new_tokens=args.max_new_tokens,
            min_new_tokens=args.max_new_tokens,
            num_beams=args.num_beams,
            do_sample=False,
            pad_token_id=pad,
        )
        return out[:, ids.shape[1] :].tolist()

    def timed(batch: int) -> tuple[float, list[list[int]]]:
        generate(list(range(min(batch, args.samples))))  # warm-up
        sync()
        t0 = time.perf_counter()
        tokens: list[list[int]] = []
        for start in range(0, args.samples, batch):
            tokens += generate(list(range(start, min(start + batch, args.samples))))
        sync()
        return time.perf_counter() - t0, tokens

    t_batched, tok_batched = timed(args.batch_size)
    t_single, tok_single = timed(1)
    n_tokens = args.samples * args.max_new_tokens
    result = {
        "benchmark": "a3tune_generation",
        "batched": {
            "seconds": round(t_batched, 4),
            "tokens_per_s": round(n_tokens / t_batched, 2),
            "samples_per_s": round(args.samples / t_batched, 3),
        },  # fmt: skip
        "one_at_a_time": {
            "seconds": round(t_single, 4),
            "tokens_per_s": round(n_tokens / t_single, 2),
            "samples_per_s": round(args.samples / t_single, 3),
        },  # fmt: skip
        "speedup": round(t_single / t_batched, 3),
        "same_tokens": tok_batched == tok_single,
        "settings": {k: v for k, v in vars(args).items()} | {"image_tokens": base.image_seq_length},
        "machine": versions(device, threads=torch.get_num_threads()),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
