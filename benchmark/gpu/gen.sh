#!/usr/bin/env bash
# Generation benchmarks of issue #14 on the GPU machine (after ../shared/gpu/pack's
# chunks were installed; see benchmark/README.md). Each step is one device call
# (≤ 10 min; BUDGET_S, default 540, stops starting runs in time).
# Usage: bash benchmark/gpu/gen.sh STEP [MODEL...]   (OUT = results dir)
#   models        random-weight qwen2.5-0.5b and llama-3.1-8b into $MODELS (as llm.sh)
#   bandwidth     device copy bandwidth through MLX -> $OUT/bandwidth.json (the roofline)
#   decode M..    decode tok/s greedy / all filters + sampling cost + roofline, vs mlx-lm
#   streams M..   aggregate tok/s at 1/4/16/64 concurrent streams, vs mlx-lm's BatchGenerator
#   first-token M process start -> first token with cold and warm kernel caches, vs mlx-lm
#   small         = bandwidth + decode qwen2.5-0.5b + streams qwen2.5-0.5b (fits one call)
# Models: qwen2.5-0.5b, llama-3.1-8b (from `models`), smollm2-135m-4bit (real weights).
# RUNS (default 7) sets runs per side; every table lists the runs each cell got.
# What comes back: $OUT/*.md (the tables), $OUT/device.txt and $OUT/gen-STEP.tgz (the
# tables, raw JSON with every run, stderr logs, bandwidth.json): few files, as the
# device tool returns at most 8.
set -euo pipefail
source /root/gpu-env.sh
export PYTHONUNBUFFERED=1 MLX_CUDA_GRAPH_CACHE_SIZE="${MLX_CUDA_GRAPH_CACHE_SIZE:-1000}"
OUT="${OUT:-/tmp/out}"
RES="/tmp/gen-results"          # survives between calls while the machine stays warm
MODELS="${MODELS:-/tmp/models}"
SHARED="${MLX_TEST_SHARED:-/root/gpu-extra/shared}"
BUDGET_S="${BUDGET_S:-540}"
RUNS="${RUNS:-7}"
mkdir -p "$OUT" "$RES" "$MODELS"
start=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - start) )); }
dir_of() {
  case "$1" in
    smollm2-135m-4bit) echo "$SHARED/models/smollm2-135m-instruct-4bit" ;;
    *) echo "$MODELS/$1" ;;
  esac
}
bandwidth() {  # GB/s, measured once per machine
  [ -f "$RES/bandwidth.json" ] || python3 benchmark/peers/mlx_bandwidth.py > "$RES/bandwidth.json"
  python3 -c "import json; print(json.load(open('$RES/bandwidth.json'))['best_bytes_per_s'] / 1e9)"
}
gen() {  # mode model extra-args...
  local mode=$1 m=$2; shift 2
  node benchmark/gen.mjs --mode "$mode" --model "$(dir_of "$m")" --name "$m" --runs "$RUNS" \
    --budget-s "$(left)" --json "$RES/gen-$mode-$m.json" "$@" 2>"$RES/gen-$mode-$m.log" \
    | tee "$RES/gen-$mode-$m.md" "$OUT/gen-$mode-$m.md"
}
pack() { tar czf "$OUT/gen-$step.tgz" -C "$RES" .; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt" "$RES/device.txt"
step="${1:?step}"; shift || true
trap pack EXIT
case "$step" in
  models) bash benchmark/gpu/llm.sh models ;;
  bandwidth) bandwidth | tee "$OUT/bandwidth.txt" ;;
  decode) bw=$(bandwidth); for m in "$@"; do gen decode "$m" --bandwidth "$bw"; done ;;
  streams) for m in "$@"; do gen streams "$m"; done ;;
  first-token) for m in "$@"; do gen first-token "$m" --cold-runs "${COLD_RUNS:-2}"; done ;;
  small)
    bw=$(bandwidth)
    gen decode qwen2.5-0.5b --bandwidth "$bw"
    gen streams qwen2.5-0.5b
    ;;
  *) echo "unknown step $step (models | bandwidth | decode | streams | first-token | small)" >&2; exit 2 ;;
esac
