#!/usr/bin/env node
'use strict'
// `npm run package`: writes the npm tarballs this machine can build to dist/:
//   mlx-napi                        the JS package (+ Rust sources for the fallback build)
//   mlx-napi-linux-x64-gnu          addon + MLX CPU runtime          (on Linux x86-64)
//   mlx-napi-linux-x64-gnu-cuda13   addon + MLX CUDA 13 runtime      (on Linux x86-64)
//   mlx-napi-darwin-arm64           addon + MLX Metal runtime        (on macOS arm64)
// The addon is the release build `npm install` / `npm run build` left beside
// index.js: nothing is compiled here. Each platform package keeps the wheel's own
// layout (mlx/lib/libmlx.*, <wheel>.libs/) so libmlx's own $ORIGIN RPATH still
// holds, and the addon's copy keeps only its `$ORIGIN/mlx/lib` RUNPATH entry.
//
// Usage: node scripts/package/index.js [--only main,cpu,cuda,metal] [--out DIR]
//        [--cuda-runtime DIR]   (an unpacked mlx-cuda-13 0.32.2 wheel to use instead of .mlx/)
//        [--addon FILE]         (the addon to pack instead of the one beside index.js)
//        [--blas openblas|reference]  (CPU package: OpenBLAS, default, or the wheel's netlib BLAS)
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { parseArgs } = require('node:util')
const { readDynamic, keepFirstSearchPath } = require('./elf.js')
const { MLX_VERSION, OPENBLAS_DEB, openblasDir, runtimeDir } = require('./runtime.js')
const { PACKAGES, platformKey, sourceBuildFile } = require('../../loader/platform.js')

const root = path.resolve(__dirname, '..', '..')
const rootPkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))

// Libraries every Linux system has; anything else a package needs must be in it
// (or, for CUDA, be one of the NVIDIA libraries runtime.json lists).
const SYSTEM_LIBS = /^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so/

// NVIDIA libraries libmlx.so (CUDA) links, and the pip wheel that ships each
// (the wheels mlx-cuda-13 itself requires). An unknown one stops the packaging.
const NVIDIA_WHEELS = {
  'libcublasLt.so.13': 'nvidia-cublas==13.*',
  'libcublas.so.13': 'nvidia-cublas==13.*',
  'libnvrtc.so.13': 'nvidia-cuda-nvrtc==13.*',
  'libcudnn.so.9': 'nvidia-cudnn-cu13==9.*',
  'libcufft.so.12': 'nvidia-cufft==12.*',
  'libnccl.so.2': 'nvidia-nccl-cu13==2.*',
  'libcudart.so.13': 'nvidia-cuda-runtime==13.*',
}
const CUDA_DRIVER = { library: 'libcuda.so.1', minVersion: '580.65.06' } // CUDA 13.0's minimum (Linux)

const TARGETS = {
  cpu: { npmDir: 'npm/linux-x64-gnu', key: 'linux-x64-gnu', variant: 'cpu', libs: 'mlx_cpu.libs' },
  cuda: { npmDir: 'npm/linux-x64-gnu-cuda13', key: 'linux-x64-gnu', variant: 'cuda13', libs: 'mlx_cuda_13.libs' },
  metal: { npmDir: 'npm/darwin-arm64', key: 'darwin-arm64', variant: 'metal', libs: null },
}

function fail(msg) {
  console.error(`package: ${msg}`)
  process.exit(1)
}

function copy(from, to) {
  fs.mkdirSync(path.dirname(to), { recursive: true })
  fs.cpSync(from, to, { recursive: true, dereference: true })
}

function npm(args, cwd) {
  // Under `npm run`, npm_execpath is npm's own CLI: run it with this node.
  const cli = process.env.npm_execpath
  const [cmd, argv] = cli && /npm-cli\.js$/.test(cli) ? [process.execPath, [cli, ...args]] : ['npm', args]
  const r = spawnSync(cmd, argv, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (r.error || r.status !== 0) fail(`npm ${args.join(' ')} failed in ${cwd}${r.error ? `: ${r.error.message}` : ''}`)
  return r.stdout
}

/** npm-packs a staged folder into `out`; returns npm's summary of the tarball. */
function pack(stage, out) {
  const [info] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', out], stage))
  return { file: path.join(out, info.filename), packed: info.size, unpacked: info.unpackedSize, files: info.entryCount }
}

/** The main package: JS, types, CLI, install hook and the Rust sources of the fallback build. */
function stageMain(stage) {
  for (const entry of rootPkg.files) copy(path.join(root, entry), path.join(stage, entry))
  copy(path.join(root, 'README.md'), path.join(stage, 'README.md'))
  const pkg = { ...rootPkg }
  delete pkg.devDependencies
  pkg.scripts = { install: rootPkg.scripts.install }
  pkg.optionalDependencies = Object.fromEntries(
    Object.values(PACKAGES)
      .flat()
      .map((p) => [p.name, rootPkg.version]),
  )
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`)
}

function checkLinuxLibs(stage, target, allowed) {
  const files = target.libs ? fs.readdirSync(path.join(stage, target.libs)) : []
  const libs = [path.join(stage, 'mlx/lib/libmlx.so'), ...files.map((f) => path.join(stage, target.libs, f))]
  // A bundled library answers to its file name and, once loaded, to its SONAME.
  const bundled = new Set([...files, ...libs.slice(1).map((l) => readDynamic(l).soname).filter(Boolean)])
  for (const lib of libs) {
    for (const needed of readDynamic(lib).needed) {
      if (!SYSTEM_LIBS.test(needed) && !bundled.has(needed) && !allowed.has(needed)) {
        fail(`${path.relative(stage, lib)} needs ${needed}, which is neither bundled nor a known system or NVIDIA library`)
      }
    }
  }
}

/**
 * Puts OpenBLAS in place of the wheel's reference BLAS/LAPACK, under the file names
 * libmlx.so asks for (its NEEDED entries and RPATH stay as they are):
 *   libblas-*.so.*   ← libopenblas.so.0 (BLAS, CBLAS and LAPACK; SONAME libopenblas.so.0)
 *   liblapack-*.so.* ← OpenBLAS's liblapack.so.3 (RUNPATH $ORIGIN; needs libopenblas.so.0,
 *                      already loaded under that SONAME, and libgfortran.so.5)
 *   libgfortran.so.5 ← the wheel's own libgfortran 5 (GCC 12), renamed: one copy for both
 */
function useOpenblas(libs, licenses) {
  const ob = openblasDir(root)
  const files = fs.readdirSync(libs)
  const named = (re) => files.find((f) => re.test(f)) ?? fail(`${libs} has no ${re}`)
  fs.copyFileSync(path.join(ob, 'libopenblas.so.0'), path.join(libs, named(/^libblas-.*\.so/)))
  fs.copyFileSync(path.join(ob, 'liblapack.so.3'), path.join(libs, named(/^liblapack-.*\.so/)))
  fs.renameSync(path.join(libs, named(/^libgfortran-.*\.so/)), path.join(libs, 'libgfortran.so.5'))
  copy(path.join(ob, 'copyright'), path.join(licenses, 'OpenBLAS-copyright'))
  fs.writeFileSync(
    path.join(licenses, 'README.md'),
    `BLAS/LAPACK: OpenBLAS 0.3.21 from Debian 12 (${OPENBLAS_DEB}), BSD-3-Clause (OpenBLAS-copyright);\n` +
      'libgfortran 5 and libquadmath from the mlx-cpu wheel (GCC 12): GPL-3 with the GCC Runtime Library Exception.\n',
  )
}

/** A platform package: addon + the MLX runtime of `target.variant`. */
function stagePlatform(stage, target, opts) {
  const addon = opts.addon ? path.resolve(opts.addon) : path.join(root, sourceBuildFile(target.key))
  if (!fs.existsSync(addon)) fail(`${path.relative(root, addon)} is missing: run \`npm install\` (or \`npm run build\`) first`)
  const runtime =
    target.variant === 'cuda13' && opts['cuda-runtime'] ? path.resolve(opts['cuda-runtime']) : runtimeDir(root, target.variant)
  const pkg = JSON.parse(fs.readFileSync(path.join(root, target.npmDir, 'package.json'), 'utf8'))
  pkg.version = rootPkg.version
  pkg.mlxNapi = { variant: target.variant, mlxVersion: MLX_VERSION }
  fs.mkdirSync(stage, { recursive: true })
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`)
  copy(path.join(root, target.npmDir, 'README.md'), path.join(stage, 'README.md'))
  // The wheel's own licenses (a site-packages folder holds other wheels' dist-info too).
  const wheelName = { cpu: 'mlx_cpu', cuda13: 'mlx_cuda_13', metal: 'mlx_metal' }[target.variant]
  const distInfo = fs.readdirSync(runtime).find((d) => d.startsWith(`${wheelName}-`) && d.endsWith('.dist-info'))
  const licenses = distInfo && path.join(runtime, distInfo, 'licenses')
  if (licenses && fs.existsSync(licenses)) copy(licenses, path.join(stage, 'licenses'))
  else console.error(`package: no ${wheelName} licenses in ${runtime}; the ${target.variant} package ships without them`)
  const stagedAddon = path.join(stage, sourceBuildFile(target.key))
  copy(addon, stagedAddon)

  if (target.variant === 'metal') {
    for (const f of ['libmlx.dylib', 'mlx.metallib']) copy(path.join(runtime, 'mlx/lib', f), path.join(stage, 'mlx/lib', f))
    // Keep only @loader_path/mlx/lib among the addon's LC_RPATHs (macOS tools).
    const otool = spawnSync('otool', ['-l', stagedAddon], { encoding: 'utf8' })
    if (otool.status !== 0) fail('otool -l failed (Xcode command line tools are needed on macOS)')
    const rpaths = [...otool.stdout.matchAll(/cmd LC_RPATH[\s\S]*?path (\S+) \(offset/g)].map((m) => m[1])
    for (const rp of rpaths.filter((r) => r !== '@loader_path/mlx/lib')) {
      if (spawnSync('install_name_tool', ['-delete_rpath', rp, stagedAddon]).status !== 0) fail(`cannot delete rpath ${rp}`)
    }
    spawnSync('codesign', ['--force', '--sign', '-', stagedAddon]) // the edit invalidates the ad-hoc signature
    return
  }

  const runpath = keepFirstSearchPath(stagedAddon)
  if (runpath !== '$ORIGIN/mlx/lib') fail(`${addon} has RUNPATH ${runpath}; rebuild it (npm run build) with this build.rs`)
  copy(path.join(runtime, 'mlx/lib/libmlx.so'), path.join(stage, 'mlx/lib/libmlx.so'))
  copy(path.join(runtime, target.libs), path.join(stage, target.libs))
  if (target.variant === 'cpu') {
    if (opts.blas === 'openblas') useOpenblas(path.join(stage, target.libs), path.join(stage, 'licenses'))
    return checkLinuxLibs(stage, target, new Set())
  }

  // CUDA: MLX compiles kernels at run time against the headers beside libmlx.so.
  copy(path.join(runtime, 'mlx/include'), path.join(stage, 'mlx/include'))
  const needed = readDynamic(path.join(stage, 'mlx/lib/libmlx.so')).needed
  const nvidia = needed.filter((n) => !SYSTEM_LIBS.test(n) && n !== CUDA_DRIVER.library && !/^lib(blas|lapack)-/.test(n))
  const unknown = nvidia.filter((n) => !NVIDIA_WHEELS[n])
  if (unknown.length > 0) fail(`libmlx.so (CUDA) needs ${unknown.join(', ')}: add it to NVIDIA_WHEELS`)
  const spec = {
    mlxVersion: MLX_VERSION,
    driver: CUDA_DRIVER,
    nvidia: nvidia.map((soname) => ({ soname, pip: NVIDIA_WHEELS[soname] })),
    headers: { file: 'cuda_runtime.h', nvidiaDir: 'cu13', pip: NVIDIA_WHEELS['libcudart.so.13'] },
  }
  fs.writeFileSync(path.join(stage, 'runtime.json'), `${JSON.stringify(spec, null, 2)}\n`)
  checkLinuxLibs(stage, target, new Set([CUDA_DRIVER.library, ...nvidia]))
}

function human(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MiB`
}

function main() {
  const { values: opts } = parseArgs({
    options: {
      only: { type: 'string' },
      out: { type: 'string', default: 'dist' },
      'cuda-runtime': { type: 'string' },
      addon: { type: 'string' },
      blas: { type: 'string', default: 'openblas' },
    },
  })
  const host = platformKey()
  const buildable = ['main', ...Object.entries(TARGETS).filter(([, t]) => t.key === host).map(([k]) => k)]
  const wanted = opts.only ? opts.only.split(',') : buildable
  if (!['openblas', 'reference'].includes(opts.blas)) fail(`--blas ${opts.blas}: openblas or reference`)
  for (const w of wanted) if (!buildable.includes(w)) fail(`'${w}' cannot be packaged on ${host} (here: ${buildable.join(', ')})`)
  const out = path.resolve(root, opts.out)
  const stageRoot = path.join(out, '.stage')
  fs.rmSync(stageRoot, { recursive: true, force: true })
  fs.mkdirSync(out, { recursive: true })
  const results = []
  for (const w of wanted) {
    const stage = path.join(stageRoot, w)
    if (w === 'main') stageMain(stage)
    else stagePlatform(stage, TARGETS[w], opts)
    results.push(pack(stage, out))
  }
  fs.rmSync(stageRoot, { recursive: true, force: true })
  console.log('| tarball | packed | installed | files |\n| --- | ---: | ---: | ---: |')
  for (const r of results) {
    console.log(`| ${path.relative(root, r.file)} | ${human(r.packed)} | ${human(r.unpacked)} | ${r.files} |`)
  }
}

main()
