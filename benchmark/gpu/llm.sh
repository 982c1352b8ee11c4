#!/usr/bin/env bash
# Runs on the GPU machine after ../shared/gpu/pack's chunks were installed (see
# benchmark/README.md). Usage: bash benchmark/gpu/llm.sh STEP  (OUT = results dir)
#   tests    node tests on CUDA against the real checkpoints (needs MLX_TEST_SHARED)
#   models   random-weight qwen2.5-0.5b, llama-3.2-1b, llama-3.1-8b (+ its MLX 4-bit)
#   run M..  benchmark the named models: smollm2-135m-4bit (real weights; mlx-lm
#            only: transformers cannot read MLX 4-bit), qwen2.5-0.5b, llama-3.2-1b,
#            llama-3.1-8b (mlx-lm and transformers), llama-3.1-8b-4bit (mlx-lm)
#   small    = run smollm2-135m-4bit qwen2.5-0.5b llama-3.2-1b
#   large    = run llama-3.1-8b llama-3.1-8b-4bit
#   compile  ours alone on qwen2.5-0.5b, with and without MLX_DISABLE_COMPILE=1
#   sampler  examples/sampler_compile_bench (built here, carried in .device/bin)
# transformers (PyTorch CUDA, eager, one Python step per token) is 4-7x slower at
# batch 1, so its rounds are capped (PEER_ROUNDS) to keep each step under 10 min.
set -euo pipefail
source /root/gpu-env.sh
export PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/out}"
MODELS="${MODELS:-/tmp/models}"
SHARED="${MLX_TEST_SHARED:-/root/gpu-extra/shared}"
mkdir -p "$OUT" "$MODELS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
both=(--peer mlx-lm,transformers --peer-rounds "transformers=${PEER_ROUNDS:-2}")
bench() {  # name dir rounds peer-args...
  local name=$1 dir=$2 rounds=$3; shift 3
  node benchmark/llm.mjs --model "$dir" --name "$name" --rounds "$rounds" "$@" \
    --json "$OUT/llm-$name.json" 2>&1 | tee "$OUT/llm-$name.md"
}
case "${1:?step}" in
  tests)
    MLX_TEST_SHARED="$SHARED" node --test __test__/ 2>&1 | tee "$OUT/node-tests.txt" | grep -E "^# (pass|fail)|^not ok"
    ;;
  models)
    python3 benchmark/models/make_random_llm.py --out "$MODELS" qwen2.5-0.5b llama-3.2-1b
    python3 benchmark/models/make_random_llm.py --out "$MODELS" --quantize 4 llama-3.1-8b
    ;;
  run)
    shift
    for m in "$@"; do
      case "$m" in
        smollm2-135m-4bit) bench "$m" "$SHARED/models/smollm2-135m-instruct-4bit" "${ROUNDS:-7}" --peer mlx-lm ;;
        *-4bit) bench "$m" "$MODELS/$m" "${ROUNDS:-3}" --peer mlx-lm ;;
        llama-3.1-8b) bench "$m" "$MODELS/$m" "${ROUNDS:-3}" "${both[@]}" ;;
        *) bench "$m" "$MODELS/$m" "${ROUNDS:-7}" "${both[@]}" ;;
      esac
    done
    ;;
  small)
    bash "$0" run smollm2-135m-4bit qwen2.5-0.5b llama-3.2-1b
    ;;
  large)
    bash "$0" run llama-3.1-8b llama-3.1-8b-4bit
    ;;
  compile)
    ab=(node benchmark/llm.mjs --model "$MODELS/qwen2.5-0.5b" --no-peer --rounds 5 --long 10 --long-rounds 1)
    for i in 1 2; do  # alternate, twice
      "${ab[@]}" 2>&1 | tee "$OUT/compile-fused-$i.md" | grep -E "decode tok/s"
      MLX_DISABLE_COMPILE=1 "${ab[@]}" 2>&1 | tee "$OUT/compile-unfused-$i.md" | grep -E "decode tok/s"
    done
    ;;
  sampler)
    # examples/sampler_compile_bench, built here with
    # `cargo build --release -p mlx-napi-core --example sampler_compile_bench` and carried.
    for v in 49152 128256 151936; do ./.device/bin/sampler_compile_bench "$v" 300; done | tee "$OUT/sampler.txt"
    ;;
  *)
    echo "unknown step $1 (tests | models | run | small | large | compile | sampler)" >&2
    exit 2
    ;;
esac
