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

// OpenBLAS for the CPU package. The mlx-cpu wheel bundles the reference (netlib)
// BLAS, whose unblocked sgemm makes MLX's CPU backend 10-20x slower than it
// need be (RESULTS.md). Debian 12's OpenBLAS (BSD-3-Clause; pthreads; kernels for
// every x86-64 CPU chosen at run time; needs glibc ≥ 2.34, under the wheel's 2.35)
// takes the wheel's BLAS and LAPACK file names, so libmlx.so loads it unchanged.
const OPENBLAS_DEB = 'libopenblas0-pthread=0.3.21+ds-4'

/** Folder with OpenBLAS's libopenblas.so.0, liblapack.so.3 and copyright, fetched with apt once. */
function openblasDir(root) {
  const dir = path.join(runtimeHome(root), 'openblas-0.3.21')
  if (existsSync(path.join(dir, '.complete'))) return dir
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const apt = (args) => spawnSync('apt-get', ['-o', 'APT::Sandbox::User=root', ...args], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] })
  console.error(`package: downloading ${OPENBLAS_DEB} with apt-get`)
  let r = apt(['download', OPENBLAS_DEB])
  if (r.status !== 0 && !r.error) {
    // A fresh machine may have no package lists yet.
    apt(['update', '-qq'])
    r = apt(['download', OPENBLAS_DEB])
  }
  const deb = existsSync(dir) && readdirSync(dir).find((f) => f.endsWith('.deb'))
  if (!deb) {
    throw new Error(
      `'apt-get download ${OPENBLAS_DEB}' failed (a Debian 12 package source is needed); ` +
        'or pack the wheel\'s reference BLAS with --blas reference',
    )
  }
  const x = spawnSync('dpkg-deb', ['-x', deb, 'x'], { cwd: dir, stdio: 'inherit' })
  if (x.status !== 0) throw new Error(`cannot unpack ${deb}`)
  const lib = path.join(dir, 'x/usr/lib/x86_64-linux-gnu/openblas-pthread')
  const { copyFileSync } = require('node:fs')
  copyFileSync(path.join(lib, 'libopenblasp-r0.3.21.so'), path.join(dir, 'libopenblas.so.0'))
  copyFileSync(path.join(lib, 'liblapack.so.3'), path.join(dir, 'liblapack.so.3'))
  copyFileSync(path.join(dir, 'x/usr/share/doc/libopenblas0-pthread/copyright'), path.join(dir, 'copyright'))
  rmSync(path.join(dir, 'x'), { recursive: true, force: true })
  rmSync(path.join(dir, deb), { force: true })
  writeFileSync(path.join(dir, '.complete'), `${OPENBLAS_DEB}\n`)
  return dir
}

module.exports.openblasDir = openblasDir
module.exports.OPENBLAS_DEB = OPENBLAS_DEB
