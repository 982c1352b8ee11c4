#!/usr/bin/env bash
# Regenerates src/bindings.rs from the mlx-c headers of the published mlx-sys
# crate. Needs libclang (e.g. Debian's libclang-16-dev); the normal build does not.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${MLX_C_SRC:-$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/mlx-sys-0.7.0/src/mlx-c 2>/dev/null | head -1)}"
[ -d "$src/mlx/c" ] || { echo "mlx-c sources not found: build the workspace once (it fetches them) or set MLX_C_SRC" >&2; exit 1; }
export LIBCLANG_PATH="${LIBCLANG_PATH:-$(ls -d /usr/lib/llvm-*/lib 2>/dev/null | sort -V | tail -1)}"
cargo run --quiet --release --manifest-path "$here/bindgen/Cargo.toml" -- "$src" "$here/src/bindings.rs"
echo "wrote $here/src/bindings.rs"
