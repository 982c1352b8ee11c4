'use strict'
// The MLX 0.32.2 runtimes a platform package carries: the PyPI wheels that
// crates/mlx-sys/build.rs also uses, unpacked under .mlx/0.32.2/<variant> (the
// build's own copy is reused; a missing one is fetched the same way).
const { spawnSync } = require('node:child_process')
const { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } = require('node:fs')
const path = require('node:path')

const MLX_VERSION = '0.32.2'
const WHEELS = { cpu: 'mlx-cpu', cuda13: 'mlx-cuda-13', metal: 'mlx-metal' }

function runtimeHome(root) {
  return process.env.MLX_RUNTIME_HOME || path.join(root, '.mlx', MLX_VERSION)
}

/**
 * The unpacked wheel for `variant` (a folder with mlx/lib and <wheel>.libs),
 * fetched with `pip download` when absent.
 */
function runtimeDir(root, variant) {
  const dir = path.join(runtimeHome(root), variant)
  if (existsSync(path.join(dir, '.complete'))) return dir
  const pkg = WHEELS[variant]
  const python = process.env.PYTHON || 'python3'
  const download = `${dir}.download`
  rmSync(download, { recursive: true, force: true })
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(download, { recursive: true })
  console.error(`package: downloading ${pkg}==${MLX_VERSION} from PyPI`)
  const run = (args) => {
    const r = spawnSync(python, args, { stdio: 'inherit' })
    if (r.error || r.status !== 0) {
      throw new Error(`'${python} ${args.join(' ')}' failed${r.error ? `: ${r.error.message}` : ''}`)
    }
  }
  run(['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '-d', download, `${pkg}==${MLX_VERSION}`])
  const wheel = readdirSync(download).find((f) => f.endsWith('.whl'))
  if (!wheel) throw new Error(`pip downloaded no wheel for ${pkg}`)
  run(['-m', 'zipfile', '-e', path.join(download, wheel), dir])
  rmSync(download, { recursive: true, force: true })
  writeFileSync(path.join(dir, '.complete'), `${pkg}==${MLX_VERSION}\n`)
  return dir
}

module.exports = { MLX_VERSION, runtimeDir }
