'use strict'
// Chooses and loads the native addon.
//
// Candidates, in order (MLX_NAPI_BACKEND=auto, the default):
//   1. NAPI_RS_NATIVE_LIBRARY_PATH: an explicit addon file;
//   2. a source build beside index.js (a checkout, or scripts/install.js's fallback);
//   3. the CUDA package, when installed and an NVIDIA driver and NVIDIA's runtime
//      libraries are present (loader/cuda.js);
//   4. the CPU package (Linux) or the Metal package (macOS).
// MLX_NAPI_BACKEND=cpu|cuda|metal takes that package only (cpu/metal: or a source
// build when the package is absent) and fails loudly instead of falling back.
// Every candidate passed over is recorded with why, for backendInfo().addon.
const { existsSync, readFileSync } = require('node:fs')
const path = require('node:path')
const { PACKAGES, platformKey, sourceBuildFile } = require('./platform.js')

const root = path.join(__dirname, '..')
const BACKENDS = ['auto', 'cpu', 'cuda', 'metal']

function loadError(message, attempts) {
  const err = new Error(message)
  err.code = 'ERR_ADDON_LOAD'
  err.attempts = attempts
  return err
}

/** The installed folder of a platform package, or null. */
function packageDir(name) {
  try {
    return path.dirname(require.resolve(`${name}/package.json`, { paths: [root] }))
  } catch {
    return null
  }
}

function requireAddon(file) {
  return require(file)
}

/**
 * Loads the addon.
 * @returns {{ binding: object, addon: import('../index').AddonInfo }}
 */
function loadAddon() {
  const requested = (process.env.MLX_NAPI_BACKEND || 'auto').toLowerCase()
  if (!BACKENDS.includes(requested)) {
    throw loadError(`MLX_NAPI_BACKEND=${process.env.MLX_NAPI_BACKEND} is not one of ${BACKENDS.join(', ')}`, [])
  }
  const key = platformKey()
  const offered = (PACKAGES[key] ?? []).map((p) => p.backend)
  if (requested !== 'auto' && offered.length > 0 && !offered.includes(requested)) {
    throw loadError(`MLX_NAPI_BACKEND=${requested} is not available on ${key} (here: ${offered.join(', ')})`, [])
  }
  const skipped = [] // "candidate: why not", for backendInfo().addon.skipped and errors
  const hints = []
  const forced = requested !== 'auto'
  const loaded = (binding, info) => ({
    binding,
    addon: { variant: null, package: null, skipped, ...info },
  })

  const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (override) {
    return loaded(requireAddon(path.resolve(override)), {
      source: 'override',
      path: path.resolve(override),
      reason: 'NAPI_RS_NATIVE_LIBRARY_PATH names this file',
    })
  }

  const local = path.join(root, sourceBuildFile(key))
  const tryLocal = (why) => {
    if (!existsSync(local)) return null
    try {
      return loaded(requireAddon(local), { source: 'source-build', path: local, reason: why })
    } catch (e) {
      skipped.push(`source build ${local}: ${e.message}`)
      return null
    }
  }
  if (!forced) {
    const r = tryLocal('a source build is present beside index.js (a checkout, or no prebuilt package fitted at install)')
    if (r) return r
  }

  const candidates = (PACKAGES[key] ?? []).filter((p) => !forced || p.backend === requested)
  for (const pkg of candidates) {
    const dir = packageDir(pkg.name)
    if (!dir) {
      skipped.push(`${pkg.name}: not installed`)
      continue
    }
    const variant = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).mlxNapi?.variant ?? pkg.backend
    let reason = forced ? `MLX_NAPI_BACKEND=${requested}` : `the ${pkg.backend.toUpperCase()} package for ${key}`
    let nvidia
    if (pkg.backend === 'cuda') {
      const cuda = require('./cuda.js').prepareCuda(dir)
      if (!cuda.ok) {
        // With a GPU present, say how to get the missing libraries right in backendInfo().
        skipped.push(`${pkg.name}: ${cuda.reason}${cuda.driverFound && !forced ? `. ${cuda.hint}` : ''}`)
        if (cuda.hint) hints.push(cuda.hint)
        continue
      }
      nvidia = { driver: cuda.driver, libraries: cuda.libraries, cudaHome: cuda.cudaHome }
      reason += `; NVIDIA driver ${cuda.driver ?? '(version unknown)'} and NVIDIA's CUDA libraries found`
    } else if (!forced && skipped.length > 0) {
      reason += ` (passed over: ${skipped.join('; ')})`
    }
    const file = path.join(dir, pkg.file)
    try {
      return loaded(requireAddon(file), { source: 'prebuilt', package: pkg.name, variant, path: file, reason, nvidia })
    } catch (e) {
      skipped.push(`${pkg.name}: ${e.message}`)
    }
  }

  if (forced && requested !== 'cuda') {
    const r = tryLocal(`MLX_NAPI_BACKEND=${requested}, and its package is not installed: using the source build`)
    if (r) return r
  }

  const names = (PACKAGES[key] ?? []).map((p) => p.name)
  const lines = [
    forced
      ? `mlx-napi: MLX_NAPI_BACKEND=${requested} could not be loaded on ${key}.`
      : `mlx-napi: no native addon could be loaded on ${key}.`,
    ...skipped.map((s) => `  - ${s}`),
    ...hints,
  ]
  if (!forced) {
    lines.push(
      names.length > 0
        ? `Reinstall so that npm installs the optional dependency ${names.join(' / ')} (not --omit=optional` +
            ` or --no-optional), or build from source: MLX_NAPI_BUILD_FROM_SOURCE=1 npm rebuild mlx-napi` +
            ` (needs Rust ≥ 1.88, a C++20 compiler and Python's pip).`
        : `No prebuilt package exists for ${key} (prebuilt: Linux x86-64 glibc, macOS arm64). Build from` +
            ` source: MLX_NAPI_BUILD_FROM_SOURCE=1 npm rebuild mlx-napi (needs Rust ≥ 1.88, a C++20 compiler` +
            ` and Python's pip; MLX publishes its runtime for Linux x86-64/arm64 and macOS arm64 only).`,
    )
  }
  throw loadError(lines.join('\n'), skipped)
}

/** Path of the libmlx this process loaded (Linux: from /proc/self/maps), or null. */
function loadedLibmlx(addonPath) {
  if (process.platform === 'linux') {
    try {
      const line = readFileSync('/proc/self/maps', 'utf8')
        .split('\n')
        .find((l) => /\/libmlx\.so$/.test(l))
      return line ? line.slice(line.indexOf('/')) : null
    } catch {
      return null
    }
  }
  const beside = path.join(path.dirname(addonPath), 'mlx', 'lib', 'libmlx.dylib')
  return existsSync(beside) ? beside : null
}

module.exports = { loadAddon, loadedLibmlx }
