#!/usr/bin/env sh
# Every GPU benchmark of BENCHMARKS.md in one go: `sh benchmarks/run_gpu.sh OUT_DIR [DEVICE]`.
# Each benchmark writes OUT_DIR/<name>.json (its JSON) and OUT_DIR/<name>.log; one that fails or runs
# past its time limit is recorded and the next one still runs. No datasets and no weights are needed:
# random-weight architectures (biomedclip-arch, llava-med-arch, SAM ViT-B) and synthetic inputs.
# Each run has its own time limit in seconds (scaled by MEDPEFT_BENCH_SCALE, default 1).
set -u
out=${1:?usage: sh benchmarks/run_gpu.sh OUT_DIR [DEVICE]}
device=${2:-cuda}
scale=${MEDPEFT_BENCH_SCALE:-1}
py=${PYTHON:-python3}
mkdir -p "$out"

run() {
    name=$1
    limit=$(($2 * scale))
    shift 2
    echo "== $name (limit $limit s): $*" >&2
    start=$(date +%s)
    timeout "$limit" "$py" "$@" >"$out/$name.json" 2>"$out/$name.log"
    rc=$?
    echo "== $name: exit $rc after $(($(date +%s) - start)) s" >&2
    [ "$rc" -eq 0 ] || tail -n 5 "$out/$name.log" >&2
}

# ACE-LoRA: one training step, exact fp32 and bf16, with and without torch.compile, against the floor
run ace_train_fp32 130 benchmarks/train_step.py --device "$device" --precision fp32 --compile
run ace_train_bf16 110 benchmarks/train_step.py --device "$device" --precision bf16 --compile
# ACE-LoRA: batched zero-shot evaluation against one image at a time, end to end (decoding included)
run ace_eval 70 benchmarks/eval_throughput.py --device "$device" --compile --dataset lc25000 --n 256 --batch-size 64 --workers 8
# A3Tune: one step against plain LoRA, LLaVA-Med-1.5 shapes, bf16, batch 4, 576 image + ~200 text tokens
run a3tune_step 100 benchmarks/a3tune_step.py --device "$device" --preset llava-med-arch --precision bf16 \
    --batch-size 4 --text-tokens 200 --gradient-checkpointing --steps 5 --warmup 2
# A3Tune: generation, batched (16) against one at a time
run a3tune_generation 80 benchmarks/a3tune_generation.py --device "$device" --preset llava-med-arch --precision bf16 \
    --batch-size 16 --samples 32 --max-new-tokens 32
# weak labels: hf-sam at ViT-B shapes and BiomedCLIP-architecture scoring, batched against one crop at a time
run weak_labels 50 benchmarks/weak_labels.py --device "$device" --sam-arch vit_b --scorer biomedclip-arch --n 2 --max-crops 256
echo "done: $out" >&2
