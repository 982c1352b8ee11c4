#!/usr/bin/env bash
# The CPU package with OpenBLAS vs the mlx-cpu wheel's reference BLAS, as users get
# them: both tarballs from scripts/package (--blas openblas | reference) installed into
# two empty projects, then `mlx-napi bench` alternating between them (ROUNDS, default 2):
# Whisper tiny.en on jfk.wav (× real time), SmolLM2-135M dequantized to float32 (BLAS-bound)
# and as shipped in 4-bit (MLX's own quantized kernels: no BLAS). Needs npm install first
# and ../shared. Results in benchmark/RESULTS.md ("CPU package: OpenBLAS").
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${MLX_TEST_SHARED:-$(cd .. && pwd)/shared}"
work="$(mktemp -d)"
node scripts/package/index.js --only main,cpu --out "$work/openblas" >/dev/null
node scripts/package/index.js --only cpu --blas reference --out "$work/reference" >/dev/null
for v in openblas reference; do
  mkdir -p "$work/p-$v" && (cd "$work/p-$v" && echo '{"name":"p","private":true}' > package.json &&
    npm install --no-audit --no-fund --prefer-offline "$work/openblas/mlx-napi-0.1.0.tgz" \
      "$work/$v/mlx-napi-linux-x64-gnu-0.1.0.tgz" >/dev/null 2>&1)
done
node benchmark/models/dequantize_mlx.mjs "$shared/models/smollm2-135m-instruct-4bit" "$work/smollm2-f32"
summary='const j = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(j.kind === "whisper"
  ? `${j.timesRealTime.toFixed(2)}x real time (${(j.totalMs / 1000).toFixed(1)} s)`
  : `prefill ${j.prefillTokensPerSec.toFixed(1)} tok/s, decode ${j.decodeTokensPerSec.toFixed(1)} tok/s`)'
for round in $(seq 1 "${ROUNDS:-2}"); do
  for v in openblas reference; do
    cd "$work/p-$v"
    echo "== round $round, $v (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    printf 'whisper-tiny.en jfk.wav: '
    npx mlx-napi bench -m "$shared/models/whisper-tiny.en" --audio "$shared/audio/jfk.wav" --json 2>/dev/null | node -e "$summary"
    printf 'smollm2-135m float32, 64 tokens: '
    npx mlx-napi bench -m "$work/smollm2-f32" --tokens 64 --json 2>/dev/null | node -e "$summary"
    printf 'smollm2-135m 4-bit, 64 tokens: '
    npx mlx-napi bench -m "$shared/models/smollm2-135m-instruct-4bit" --tokens 64 --json 2>/dev/null | node -e "$summary"
    cd - >/dev/null
  done
done
rm -rf "$work"
