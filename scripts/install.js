#!/usr/bin/env node
'use strict'
// mlx-napi's install hook. In a user's node_modules: check that a prebuilt
// platform package (an optional dependency) loads; when none does, build the
// addon from the Rust sources shipped in this package (the fallback), and say
// which of the two happened. In a checkout of the repository it does nothing:
// `npm install` there builds through the `prepare` script.
//
// MLX_NAPI_BUILD_FROM_SOURCE=1 builds from source even when a prebuilt package loads.
// MLX_NAPI_KEEP_TARGET=1 keeps cargo's target/ folder after a source build (else
// removed: about 1 GB).
const { spawnSync } = require('node:child_process')
const { copyFileSync, existsSync, rmSync } = require('node:fs')
const path = require('node:path')
const { platformKey, sourceBuildFile } = require('../loader/platform.js')

const root = path.join(__dirname, '..')
const say = (msg) => console.log(`mlx-napi: ${msg}`)

/** Loads the package in a child process; returns its backendInfo() or the load error. */
function probe() {
  const code =
    `try { const i = require(${JSON.stringify(root)}).backendInfo();` +
    ' process.stdout.write(JSON.stringify({ backend: i.backend, addon: i.addon })) }' +
    ' catch (e) { process.stderr.write(String(e.message)); process.exit(1) }'
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' })
  if (r.status === 0) {
    try {
      return { ok: true, info: JSON.parse(r.stdout) }
    } catch {}
  }
  return { ok: false, error: (r.stderr || r.error?.message || '').trim() }
}

function describe({ backend, addon }) {
  const what = addon.source === 'prebuilt' ? `prebuilt ${addon.package}` : `${addon.source} ${addon.path}`
  return `${what} (MLX backend: ${backend}): ${addon.reason}`
}

function buildFromSource() {
  const cargo = process.env.CARGO || 'cargo'
  const version = spawnSync(cargo, ['--version'], { encoding: 'utf8' })
  if (version.error || version.status !== 0) return { ok: false, why: `no Rust toolchain ('${cargo} --version' failed)` }
  say(`building from source with ${version.stdout.trim()} (a few minutes; needs a C++20 compiler and Python's pip)`)
  const build = spawnSync(cargo, ['build', '--release', '--lib', '-p', 'mlx-napi'], { cwd: root, stdio: 'inherit' })
  if (build.status !== 0) return { ok: false, why: 'cargo build failed (see its messages above)', fatal: true }
  const target = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target')
  const lib = process.platform === 'darwin' ? 'libmlx_napi.dylib' : 'libmlx_napi.so'
  copyFileSync(path.join(target, 'release', lib), path.join(root, sourceBuildFile(platformKey())))
  if (process.env.MLX_NAPI_KEEP_TARGET !== '1' && !process.env.CARGO_TARGET_DIR) {
    rmSync(target, { recursive: true, force: true })
  }
  return { ok: true }
}

function main() {
  // A checkout (not inside node_modules): `prepare` builds the addon.
  if (!root.split(path.sep).includes('node_modules')) return 0
  const forceSource = process.env.MLX_NAPI_BUILD_FROM_SOURCE === '1'
  if (!forceSource) {
    const first = probe()
    if (first.ok) {
      say(`using ${describe(first.info)}`)
      return 0
    }
    say(`no prebuilt addon loads here:\n${first.error}`)
    say('falling back to a source build')
  } else if (existsSync(path.join(root, 'Cargo.toml'))) {
    say('MLX_NAPI_BUILD_FROM_SOURCE=1: building from source')
  }
  const built = buildFromSource()
  if (!built.ok) {
    say(`source build not possible: ${built.why}. Install Rust ≥ 1.88, a C++20 compiler and Python 3 with pip, then run \`npm rebuild mlx-napi\`.`)
    return built.fatal ? 1 : 0 // without a toolchain, require('mlx-napi') repeats the explanation
  }
  const after = probe()
  if (!after.ok) {
    say(`the source build does not load:\n${after.error}`)
    return 1
  }
  say(`built from source: ${describe(after.info)}`)
  return 0
}

process.exitCode = main()
