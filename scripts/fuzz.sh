#!/bin/sh
# Long fuzzing run of every parser target (crates/mlx-napi-core/tests/fuzz.rs):
# SECONDS_PER_TARGET seconds each (default 1800 = 30 minutes), release build,
# counted in CPU time (MLX_FUZZ_CPU_SECONDS; a wall-clock cap of 6x that stops a
# starved run),
# JOBS targets at once (default: all 8 together, each in its own process, at
# nice 19 so that it yields to other work). Prints executions, findings and CPU
# seconds per target; a finding's input lands in target/fuzz-findings/<target>/
# (copy it to crates/mlx-napi-core/tests/fuzz-corpus/<target>/ with the fix).
# Record the figures in RELIABILITY.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [JOBS]
set -e
cd "$(dirname "$0")/.."
seconds="${1:-1800}"
jobs="${2:-8}"
# Slowest per execution first: they need the CPU time most.
targets="${TARGETS:-audio chat-template safetensors npz detokenizer llama-config whisper-config npy}"
cargo test -p mlx-napi-core --release --test fuzz --no-run 2>&1 | tail -1
bin=$(ls -t target/release/deps/fuzz-* | grep -v '\.d$' | head -1)
logs=$(mktemp -d)
run() {
  # The test binary runs every #[test]; all but the target's return at once.
  MLX_FUZZ_TARGET="$1" MLX_FUZZ_CPU_SECONDS="$seconds" MLX_FUZZ_SECONDS=$((seconds * 6)) /usr/bin/time -f "cpu %U+%S s, max RSS %M KB" \
    nice -n 19 "$bin" --nocapture --test-threads 1 >"$logs/$1.log" 2>&1 || echo "FAILED" >>"$logs/$1.log"
  echo "$1: $(grep -oh 'fuzz [a-z-]*: [0-9]* executions, [0-9]* findings, [0-9]* CPU s' "$logs/$1.log" | sed 's/^fuzz [a-z-]*: //') $(grep -h '^cpu\|FAILED\|panicked' "$logs/$1.log" | tr '\n' ' ')"
}
n=0
for t in $targets; do
  run "$t" &
  n=$((n + 1))
  if [ "$n" -ge "$jobs" ]; then wait; n=0; fi
done
wait
rm -rf "$logs"
