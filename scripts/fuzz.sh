#!/bin/sh
# Long fuzzing run of every parser target (crates/mlx-napi-core/tests/fuzz.rs):
# SECONDS_PER_TARGET seconds each (default 1800 = 30 minutes), release build.
# Prints executions and findings per target; record them in RELIABILITY.md.
set -e
cd "$(dirname "$0")/.."
MLX_FUZZ_SECONDS="${1:-1800}" cargo test -p mlx-napi-core --release --test fuzz -- --nocapture --test-threads 1 2>&1 |
  grep -E '^fuzz |test result|panicked|FAILED'
