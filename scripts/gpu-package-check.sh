#!/usr/bin/env bash
# The CUDA platform package as a user installs it, on the GPU machine.
#
#   here:    npm install && npm run package      # dist/*.tgz
#            bash scripts/gpu-package-check.sh stage
#            ../shared/gpu/pack ../shared/models/whisper-tiny.en ../shared/audio
#   device:  one call per .gpu/cN chunk, back to back (benchmark/README.md), then
#            run  carry [".gpu-pkg"]  command: bash scripts/gpu-package-check.sh run
#
# `stage` gathers into .gpu-pkg/ (git-ignored, about 40 MB): the main and CPU
# tarballs from dist/, npm itself (the GPU machine has node from gpu-setup but no
# npm), and an npm cache holding mlx-napi's JS dependencies (the machine is offline).
# The CUDA tarball (88 MiB) is over the device tool's 64 MiB upload limit, so `run`
# packs it there with the same scripts/package code, from the addon in the CPU
# tarball and the mlx-cuda-13 0.32.2 wheel's files that gpu-setup installed.
#
# `run` starts from a clean environment (no LD_LIBRARY_PATH or CUDA_HOME from
# /root/gpu-env.sh), installs the three tarballs into an empty project with npm
# --offline, and prints `npx mlx-napi info`, `backendInfo()` (backend: 'cuda') and a
# transcription of jfk.wav, then the same with MLX_NAPI_BACKEND=cpu.
# MLX_TEST_SHARED (default /root/gpu-extra/shared) locates whisper-tiny.en and jfk.wav.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=.gpu-pkg
version=$(node -p "require('./package.json').version")

case "${1:?usage: gpu-package-check.sh stage|run}" in
  stage)
    for f in "mlx-napi-$version.tgz" "mlx-napi-linux-x64-gnu-$version.tgz"; do
      [ -f "dist/$f" ] || { echo "dist/$f missing: run npm run package first" >&2; exit 1; }
    done
    rm -rf "$stage"
    mkdir -p "$stage/bin"
    cp "dist/mlx-napi-$version.tgz" "dist/mlx-napi-linux-x64-gnu-$version.tgz" "$stage/"
    npm_dir="$(dirname "$(dirname "$(realpath "$(command -v npm)")")")"
    cp -a "$npm_dir" "$stage/npm"
    ln -s ../npm/bin/npm-cli.js "$stage/bin/npm"
    ln -s ../npm/bin/npx-cli.js "$stage/bin/npx"
    # Fill a private npm cache with the main package's dependencies.
    tmp="$(mktemp -d)"
    (cd "$tmp" && echo '{"name":"cache-fill","private":true}' > package.json &&
      npm install --cache "$OLDPWD/$stage/npm-cache" --ignore-scripts --omit=optional --no-audit --no-fund \
        "$OLDPWD/dist/mlx-napi-$version.tgz" >/dev/null)
    rm -rf "$tmp"
    echo "staged $(du -sh "$stage" | cut -f1) in $stage/; carry it: run carry [\"$stage\"] command: bash scripts/gpu-package-check.sh run"
    ;;
  run)
    [ -d "$stage/npm" ] || { echo "$stage/ missing: run 'bash scripts/gpu-package-check.sh stage' here and carry it" >&2; exit 1; }
    site="${MLX_CUDA_SITE:-$(python3 -c 'import site; print(site.getsitepackages()[0])')}"
    [ -f "$site/mlx/lib/libmlx.so" ] || { echo "no MLX CUDA runtime in $site: run ../shared/gpu/pack's gpu-setup chunks first" >&2; exit 1; }
    unset LD_LIBRARY_PATH CUDA_HOME CUDA_PATH MLX_LIB_DIR
    export PATH="$PWD/$stage/bin:/usr/local/bin:$PATH"
    shared="${MLX_TEST_SHARED:-/root/gpu-extra/shared}"
    out="${OUT:-/tmp/out}"
    mkdir -p "$out"
    echo "== device"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    echo "node $(node --version), npm $(npm --version)"
    echo "== NVIDIA libraries the CUDA package will use (from the machine's Python)"
    python3 - <<'PY' || true
import nvidia, os
for root in nvidia.__path__:
    for d in sorted(os.listdir(root)):
        lib = os.path.join(root, d, "lib")
        if os.path.isdir(lib):
            size = sum(os.path.getsize(os.path.join(lib, f)) for f in os.listdir(lib))
            print(f"  {lib}: {size / 2**20:.0f} MiB")
PY

    echo "== pack the CUDA tarball here (same scripts/package code, runtime from $site)"
    tmp="$(mktemp -d)"
    tar -xzf "$stage/mlx-napi-linux-x64-gnu-$version.tgz" -C "$tmp" package/mlx-napi.linux-x64-gnu.node
    node scripts/package/index.js --only cuda --cuda-runtime "$site" --addon "$tmp/package/mlx-napi.linux-x64-gnu.node" \
      --out "$tmp/dist"

    echo "== npm install (offline) into an empty project"
    proj="$(mktemp -d)"
    cd "$proj"
    echo '{"name":"user-app","private":true}' > package.json
    npm install --offline --cache "$OLDPWD/$stage/npm-cache" --no-audit --no-fund --foreground-scripts \
      "$OLDPWD/$stage/mlx-napi-$version.tgz" "$OLDPWD/$stage/mlx-napi-linux-x64-gnu-$version.tgz" \
      "$tmp/dist/mlx-napi-linux-x64-gnu-cuda13-$version.tgz" 2>&1 | grep -v 'nodedir' | tee "$out/install.txt"
    echo "== npx mlx-napi info"
    npx mlx-napi info | tee "$out/info.txt"
    echo "== backendInfo()"
    node -p "require('mlx-napi').backendInfo()" | tee "$out/backend-info.txt"
    if [ -f "$shared/audio/jfk.wav" ] && [ -d "$shared/models/whisper-tiny.en" ]; then
      echo "== npx mlx-napi transcribe jfk.wav (CUDA)"
      npx mlx-napi transcribe -m "$shared/models/whisper-tiny.en" "$shared/audio/jfk.wav" | tee "$out/transcript-cuda.txt"
      echo "== MLX_NAPI_BACKEND=cpu: the CPU package on the same machine"
      MLX_NAPI_BACKEND=cpu npx mlx-napi info | grep -E '^(backend|addon|libmlx):'
      MLX_NAPI_BACKEND=cpu npx mlx-napi transcribe -m "$shared/models/whisper-tiny.en" "$shared/audio/jfk.wav"
    else
      echo "skipping transcription: $shared/{models/whisper-tiny.en,audio/jfk.wav} not found (pack them as extras)"
    fi
    grep -q "^backend: cuda$" "$out/info.txt" && echo "gpu-package-check: OK (backend: cuda from the installed CUDA package)"
    ;;
  *)
    echo "usage: gpu-package-check.sh stage|run" >&2; exit 2 ;;
esac
