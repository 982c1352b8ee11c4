#!/bin/sh
# The core's cargo tests (`npm run test:rust`). With cargo-nextest installed (CI
# machines have it) every test runs in its own process, as many at once as the
# machine has cores: MLX's CPU backend keeps a process on about one core, so
# `cargo test` (one process per test binary, one binary at a time) leaves the
# other cores idle. Without nextest: plain `cargo test`. Arguments pass through.
set -e
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace "$@"
fi
exec cargo test --workspace "$@"
