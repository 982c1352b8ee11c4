#!/usr/bin/env bash
# Runs on the GPU machine after ../shared/gpu/pack's chunks were installed with
# the real model and audio as extra paths (see benchmark/README.md).
# Usage: bash benchmark/gpu/whisper.sh STEP   (OUT = results dir, MODELS = model dir)
#   tiny    real whisper-tiny.en (from shared) on 10 and 30 min of real speech:
#           both libraries' default decoding (timestamps, fallback, conditioning)
#   turbo   random-weight whisper-large-v3-turbo shapes, forced equal work
#   small   random-weight whisper-small shapes, forced equal work
#   longform  real whisper-tiny.en on ~21 min of long-form speech with a known
#           transcript (the core's long-form set, 6 variants tiled, written by
#           .device/bin/longform_eval): WER beside speed for our batch sizes
#           (CONFIGS, default b1,b8,b16) and mlx-whisper, each run its own
#           process, alternating (benchmark/whisper_longform.mjs)
# Every step runs both peers in each round: mlx-whisper (same MLX build) and
# transformers' batched pipeline (PyTorch CUDA, fp16, SDPA); HF_PEER=0 drops
# the second.
# Each step is sized to finish in under 9 minutes on one H200; ROUNDS /
# LONG_ROUNDS / LENGTHS override the defaults (5 / 3 / 600,1800). BUDGET_S
# (default 520) is the step's wall-clock budget: whisper.mjs cuts rounds
# (longest input first, never below 1) to end within it, and says so.
set -euo pipefail
source /root/gpu-env.sh
export PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/out}"
MODELS="${MODELS:-/tmp/models}"
SHARED="${MLX_TEST_SHARED:-/root/gpu-extra/shared}"
export MLX_TEST_SHARED="$SHARED"
mkdir -p "$OUT" "$MODELS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
make=benchmark/models/make_random_whisper.py
common=(--lengths "${LENGTHS:-600,1800}" --rounds "${ROUNDS:-5}" --long-rounds "${LONG_ROUNDS:-3}")
[ "${HF_PEER:-1}" = 1 ] && common+=(--hf-peer)
budget() { echo "--budget-s $(( ${BUDGET_S:-520} - SECONDS ))"; }  # SECONDS: bash's elapsed time

random_step() {  # name
  python3 "$make" random --out "$MODELS" --tokenizer-from "$SHARED/models/whisper-tiny.en/tokenizer.json" "$1"
  node benchmark/whisper.mjs --model "$MODELS/$1" --peer-model "$MODELS/$1-mlx" --random \
    "${common[@]}" $(budget) --json "$OUT/whisper-$1.json" 2>&1 | tee "$OUT/whisper-$1.md"
}

case "${1:?step}" in
  tiny)
    python3 "$make" convert "$SHARED/models/whisper-tiny.en" "$MODELS/whisper-tiny.en-mlx"
    node benchmark/whisper.mjs --model "$SHARED/models/whisper-tiny.en" --peer-model "$MODELS/whisper-tiny.en-mlx" \
      --name whisper-tiny.en "${common[@]}" $(budget) --json "$OUT/whisper-tiny.en.json" 2>&1 | tee "$OUT/whisper-tiny.en.md"
    ;;
  longform)
    python3 "$make" convert "$SHARED/models/whisper-tiny.en" "$MODELS/whisper-tiny.en-mlx"
    .device/bin/longform_eval write "$MODELS/longform.wav" "$MODELS/longform.txt" "${VARIANTS:-6}"
    node benchmark/whisper_longform.mjs --model "$SHARED/models/whisper-tiny.en" \
      --peer-model "$MODELS/whisper-tiny.en-mlx" --audio "$MODELS/longform.wav" --reference "$MODELS/longform.txt" \
      --configs "${CONFIGS:-b1,b8,b16,mlx-whisper}" --runs "${RUNS:-7}" $(budget) \
      --json "$OUT/whisper-longform.json" 2>&1 | tee "$OUT/whisper-longform.md"
    ;;
  turbo)
    random_step whisper-large-v3-turbo
    ;;
  small)
    random_step whisper-small
    ;;
  *)
    echo "unknown step $1 (tiny | longform | turbo | small)" >&2
    exit 2
    ;;
esac
