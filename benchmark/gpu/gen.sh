#!/usr/bin/env bash
# Generation benchmarks of issue #14 on the GPU machine (after ../shared/gpu/pack's
# chunks were installed; see benchmark/README.md). Each step is one device call
# (≤ 10 min; BUDGET_S, default 540, stops starting runs in time).
# Usage: bash benchmark/gpu/gen.sh STEP [MODEL...]   (OUT = results dir)
#   models        random-weight qwen2.5-0.5b and llama-3.1-8b into $MODELS (as llm.sh)
#   models16      issue #16's random-weight gemma3-4b (bf16, 7.8 GB), qwen3-30b-a3b-4bit
#                 (48 layers, MLX 4-bit, 17.2 GB) and qwen3-30b-a3b-bf16-24l (24 of its 48
#                 layers, bf16, 31.2 GB: the whole bf16 model would not fit the 64 GiB disk)
#                 into $MODELS, built in MLX (models/make_random_mlx.py); if the disk has too
#                 little room, the bf16 model gets fewer layers and its name says how many
#   bandwidth     device copy bandwidth through MLX -> $OUT/bandwidth.json (the roofline)
#   decode M..    decode tok/s greedy / all filters + sampling cost + roofline, vs mlx-lm;
#                 the models share what is left of BUDGET_S evenly
#   streams M..   aggregate tok/s at 1/4/16/64 concurrent streams, vs mlx-lm's BatchGenerator
#   first-token M process start -> first token with cold and warm kernel caches, vs mlx-lm
#   small         = bandwidth + decode qwen2.5-0.5b + streams qwen2.5-0.5b (fits one call)
#   sampler-constrained  issues #14 and #15 in one call, ours only: the compiled sampler
#                 against the eager one (decode qwen2.5-0.5b, --peer mlx-napi-eager), then
#                 constrained vs free decoding (benchmark/constrained.mjs) on the 0.5B shape —
#                 with SmolLM2's byte-level tokenizer, which llguidance can read (the random
#                 model's word-level one it cannot) — and on SmolLM2 itself; makes
#                 qwen2.5-0.5b first if absent; with what is left of BUDGET_S, 1 vs 16
#                 concurrent streams (ours alone)
#   padded-attention  the CUDA padded-attention kernel of batch steps: its check against
#                 MLX's masked attention and per-layer cost (.device/bin/padded_attention_check),
#                 batched == solo at temperature 0 on SmolLM2 with the kernel and without
#                 (benchmark/batch_equals_solo.mjs), then 1 vs 16 concurrent streams on
#                 qwen2.5-0.5b, kernel against masked (--peer mlx-napi-masked), with what is
#                 left of BUDGET_S; makes qwen2.5-0.5b first if absent
#   mask-kernel   issue #15's CUDA allowed-token kernel: its check against the mask from MLX
#                 ops and per-step cost (.device/bin/allowed_mask_check), the padded-attention
#                 check again (the kernels share `cuda_kernel.rs`), constrained outputs on
#                 SmolLM2 with MLX_NAPI_MASK_KERNEL=1 (uploaded words), mapped and 0 (MLX ops)
#                 (benchmark/constrained_texts.mjs: must validate and be the same; CHECKS=0
#                 skips these), the decode loop's anatomy on the 0.5B shape
#                 (.device/bin/constrained_step_anatomy, ANATOMY_ROUNDS rounds, default 7, 0
#                 skips), then constrained vs free decoding on the 0.5B shape in PASSES
#                 processes per setting (default 3), the MLX_NAPI_MASK_KERNEL settings of FLAGS
#                 (default "mapped 1") alternating, with KINDS (default free,json,regex);
#                 makes qwen2.5-0.5b first if absent
# Models: qwen2.5-0.5b, llama-3.1-8b (from `models`), smollm2-135m-4bit (real weights),
# gemma3-4b, qwen3-30b-a3b-4bit, qwen3-30b-a3b-bf16-24l (from `models16`;
# qwen3-30b-a3b-bf16 names whichever qwen3-30b-a3b-bf16-<N>l it made).
# RUNS (default 7) sets runs per side; every table lists the runs each cell got.
# What comes back: $OUT/*.md (the tables), $OUT/device.txt and $OUT/gen-STEP.tgz (the
# tables, raw JSON with every run, stderr logs, bandwidth.json): few files, as the
# device tool returns at most 8.
set -euo pipefail
source "${GPU_ENV:-/root/gpu-env.sh}"   # GPU_ENV=/dev/null: a CPU dry run (README, issue #16)
export PYTHONUNBUFFERED=1 MLX_CUDA_GRAPH_CACHE_SIZE="${MLX_CUDA_GRAPH_CACHE_SIZE:-1000}"
OUT="${OUT:-/tmp/out}"
RES="${RES:-/tmp/gen-results}"  # survives between calls while the machine stays warm
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
    qwen3-30b-a3b-bf16)  # the deepest qwen3-30b-a3b-bf16-<N>l that models16 made
      local d n best=0
      for d in "$MODELS"/qwen3-30b-a3b-bf16-*l; do
        n=${d##*-}; n=${n%l}
        if [[ "$n" =~ ^[0-9]+$ && -f "$d/config.json" ]] && (( n > best )); then best=$n; fi
      done
      echo "$MODELS/qwen3-30b-a3b-bf16-${best}l" ;;
    *) echo "$MODELS/$1" ;;
  esac
}
bandwidth() {  # GB/s, measured once per machine
  [ -f "$RES/bandwidth.json" ] || python3 benchmark/peers/mlx_bandwidth.py > "$RES/bandwidth.json"
  python3 -c "import json; print(json.load(open('$RES/bandwidth.json'))['best_bytes_per_s'] / 1e9)"
}
gen() {  # mode model extra-args...   (budget: seconds for this model, default all that is left)
  local mode=$1 dir m; dir=$(dir_of "$2"); shift 2
  m=${dir##*/}
  if [ ! -f "$dir/config.json" ]; then
    echo "gen.sh: no model at $dir (run the models / models16 step first)" | tee "$OUT/gen-$mode-$m.md" >&2
    return 1
  fi
  node benchmark/gen.mjs --mode "$mode" --model "$dir" --name "$m" --runs "$RUNS" \
    --budget-s "${budget:-$(left)}" --json "$RES/gen-$mode-$m.json" "$@" 2>"$RES/gen-$mode-$m.log" \
    | tee "$RES/gen-$mode-$m.md" "$OUT/gen-$mode-$m.md"
}
bytetok_model() {  # qwen2.5-0.5b (made if absent) and $MODELS/qwen2.5-0.5b-bytetok
  [ -f "$MODELS/qwen2.5-0.5b/config.json" ] ||
    python3 benchmark/models/make_random_llm.py --out "$MODELS" qwen2.5-0.5b 2>&1 | tail -2
  # The 0.5B shape with SmolLM2's tokenizer: its 49,152 ids are a byte-level BPE that
  # llguidance reads; the model's ids past them become special tokens no grammar admits.
  local bt="$MODELS/qwen2.5-0.5b-bytetok"; mkdir -p "$bt"
  ln -sf "$MODELS"/qwen2.5-0.5b/*.safetensors* "$MODELS/qwen2.5-0.5b/config.json" "$bt/"
  # TOKENIZER_FROM: a folder with SmolLM2's tokenizer*.json (default: the shared model's)
  cp "${TOKENIZER_FROM:-$SHARED/models/smollm2-135m-instruct-4bit}"/tokenizer*.json "$bt/"
}
pack() { tar czf "$OUT/gen-$step.tgz" -C "$RES" .; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null ||
  echo "no nvidia-smi: $(python3 -c 'import mlx.core as mx; print(mx.default_device())')"; } | tee "$OUT/device.txt" "$RES/device.txt"
step="${1:?step}"; shift || true
trap pack EXIT
case "$step" in
  models) bash benchmark/gpu/llm.sh models ;;
  models16)
    df -h "$MODELS" | tee "$OUT/models16.txt"
    status=0
    # shellcheck disable=SC2086  # MAKE_ARGS: e.g. "--tiny --dtype float32" for a CPU dry run
    python3 benchmark/models/make_random_mlx.py --out "$MODELS" --fit ${MAKE_ARGS:-} \
      gemma3-4b qwen3-30b-a3b-4bit qwen3-30b-a3b-bf16-24l 2>&1 | tee -a "$OUT/models16.txt" || status=$?
    { du -sh "$MODELS"/*; df -h "$MODELS"; echo "models16: $(( $(date +%s) - start )) s, exit $status"; } | tee -a "$OUT/models16.txt"
    exit "$status"
    ;;
  bandwidth) bandwidth | tee "$OUT/bandwidth.txt" ;;
  decode)
    bw=$(bandwidth); n=$#
    for m in "$@"; do  # each model gets an even share of what is left
      budget=$(( $(left) / n )); n=$(( n - 1 ))
      if [ "$budget" -le 0 ]; then echo "gen.sh: decode $m not run: BUDGET_S spent" | tee -a "$OUT/skipped.txt"; continue; fi
      gen decode "$m" --bandwidth "$bw" || true
    done
    ;;
  streams) for m in "$@"; do gen streams "$m"; done ;;
  first-token) for m in "$@"; do gen first-token "$m" --cold-runs "${COLD_RUNS:-2}"; done ;;
  small)
    bw=$(bandwidth)
    gen decode qwen2.5-0.5b --bandwidth "$bw"
    gen streams qwen2.5-0.5b
    ;;
  sampler-constrained)
    bytetok_model
    for m in ${CONSTRAINED_MODELS:-qwen2.5-0.5b-bytetok smollm2-135m-4bit}; do
      [ -f "$(dir_of "$m")/config.json" ] || { echo "gen.sh: constrained $m skipped: no model" | tee -a "$OUT/skipped.txt"; continue; }
      node benchmark/constrained.mjs --model "$(dir_of "$m")" --runs "$RUNS" --tokens "${TOKENS:-256}" \
        2>"$RES/constrained-$m.log" | tee "$RES/constrained-$m.md" "$OUT/constrained-$m.md"
    done
    gen decode qwen2.5-0.5b --peer mlx-napi-eager --bandwidth "$(bandwidth)"
    # What is left of BUDGET_S: 1 vs 16 concurrent streams, ours alone (the 8x goal).
    if [ "$(left)" -gt 30 ]; then gen streams qwen2.5-0.5b --peer none --streams 1,16; fi
    ;;
  padded-attention)
    [ -f "$MODELS/qwen2.5-0.5b/config.json" ] ||
      python3 benchmark/models/make_random_llm.py --out "$MODELS" qwen2.5-0.5b 2>&1 | tail -2
    status=0
    .device/bin/padded_attention_check 2>&1 | tee "$RES/padded-attention-check.md" "$OUT/padded-attention-check.md" || status=1
    for flag in 1 0; do
      MLX_NAPI_PADDED_ATTENTION=$flag node benchmark/batch_equals_solo.mjs --model "$(dir_of smollm2-135m-4bit)" \
        2>&1 | tee -a "$RES/batch-equals-solo.txt" "$OUT/batch-equals-solo.txt" || status=1
    done
    if [ "$(left)" -gt 30 ]; then gen streams qwen2.5-0.5b --peer mlx-napi-masked --streams 1,16; fi
    exit "$status"
    ;;
  mask-kernel)
    bytetok_model
    status=0
    if [ "${CHECKS:-1}" != 0 ]; then
      MLX_NAPI_MASK_KERNEL=mapped .device/bin/allowed_mask_check 2>&1 | tee "$RES/allowed-mask-check.md" "$OUT/allowed-mask-check.md" || status=1
      .device/bin/padded_attention_check 20 2>&1 | tee "$RES/padded-attention-check.md" "$OUT/padded-attention-check.md" || status=1
      # 1: the kernel on uploaded words (default), mapped: on mapped words, 0: MLX ops.
      for flag in 1 mapped 0; do
        MLX_NAPI_MASK_KERNEL=$flag node benchmark/constrained_texts.mjs --model "$(dir_of smollm2-135m-4bit)" \
          > "$RES/constrained-texts-$flag.jsonl" 2>>"$RES/constrained-texts.log" || status=1
      done
      for flag in mapped 0; do
        if cmp -s "$RES/constrained-texts-1.jsonl" "$RES/constrained-texts-$flag.jsonl"; then
          echo "constrained texts: MLX_NAPI_MASK_KERNEL=1 and =$flag give the same $(wc -l < "$RES/constrained-texts-1.jsonl") outputs"
        else
          echo "constrained texts DIFFER between MLX_NAPI_MASK_KERNEL=1 and =$flag"; status=1
          diff "$RES/constrained-texts-1.jsonl" "$RES/constrained-texts-$flag.jsonl" | head -20 || true
        fi
      done 2>&1 | tee -a "$OUT/constrained-texts.txt"
      cat "$RES/constrained-texts.log" >> "$OUT/constrained-texts.txt"
    fi
    if [ "${ANATOMY_ROUNDS:-7}" != 0 ]; then
      .device/bin/constrained_step_anatomy "$MODELS/qwen2.5-0.5b-bytetok" "${ANATOMY_ROUNDS:-7}" "${TOKENS:-256}" \
        2>>"$RES/anatomy.log" | tee "$RES/anatomy.md" "$OUT/anatomy.md" || status=1
    fi
    for pass in $(seq "${PASSES:-3}"); do
      for flag in ${FLAGS:-mapped 1}; do
        if [ "$(left)" -lt 60 ]; then echo "gen.sh: pass $pass kernel=$flag not run: BUDGET_S spent" | tee -a "$OUT/skipped.txt"; continue; fi
        MLX_NAPI_MASK_KERNEL=$flag node benchmark/constrained.mjs --model "$MODELS/qwen2.5-0.5b-bytetok" \
          --runs "$RUNS" --tokens "${TOKENS:-256}" --kinds "${KINDS:-free,json,regex}" \
          --json "$RES/constrained-kernel$flag-pass$pass.json" 2>>"$RES/constrained.log" \
          | sed "s/^/kernel=$flag pass $pass: /" | tee -a "$RES/constrained-ab.md" "$OUT/constrained-ab.md"
      done
    done
    exit "$status"
    ;;
  *) echo "unknown step $step (models | models16 | bandwidth | decode | streams | first-token | small | sampler-constrained | padded-attention | mask-kernel)" >&2; exit 2 ;;
esac
