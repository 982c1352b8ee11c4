#!/usr/bin/env bash
# Runs on the GPU machine after ../shared/gpu/pack's chunks were installed with
# the real models and audio as extra paths (see benchmark/README.md), carrying
# the addon and `.device/node_modules` (fastify, @fastify/multipart, openai:
# the server's dependencies and the client; see benchmark/README.md).
# Usage: OUT=/tmp/out bash benchmark/gpu/serve.sh
#   The OpenAI-compatible server under 1, 4 and 16 concurrent clients
#   (benchmark/serve.mjs): SmolLM2-135M 4-bit chat (REQUESTS requests of TOKENS
#   tokens, streamed) and whisper-tiny.en transcriptions of jfk.wav.
set -euo pipefail
source /root/gpu-env.sh
OUT="${OUT:-/tmp/out}"
SHARED="${MLX_TEST_SHARED:-/root/gpu-extra/shared}"
mkdir -p "$OUT"
[ -d node_modules/fastify ] || ln -sfn .device/node_modules node_modules
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
export MLX_CUDA_GRAPH_CACHE_SIZE="${MLX_CUDA_GRAPH_CACHE_SIZE:-1000}"
node benchmark/serve.mjs --llm "$SHARED/models/smollm2-135m-instruct-4bit" \
  --whisper "$SHARED/models/whisper-tiny.en" --audio "$SHARED/audio/jfk.wav" \
  --clients 1,4,16 --requests "${REQUESTS:-64}" --audio-requests "${AUDIO_REQUESTS:-32}" \
  --tokens "${TOKENS:-128}" --stream --json "$OUT/serve.json" | tee "$OUT/serve.md"
