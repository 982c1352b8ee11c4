// The npm packages as a user gets them: `npm run package` writes dist/*.tgz from the
// release addon `npm install` built (nothing is recompiled), and they are installed
// into empty projects whose PATH holds only node, npm, npx and sh — no Rust, no C/C++
// compiler, no Python/pip. Checks the loader's choice, the RUNPATHs, a transcription,
// the CUDA package's error without a driver, and the install hook's fallback message.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sharedPath } from './shared.mjs'

const require = createRequire(import.meta.url)
const { readDynamic } = require('../scripts/package/elf.js')
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(root, 'dist')
const addon = join(root, 'mlx-napi.linux-x64-gnu.node')
const skip =
  process.platform !== 'linux' || process.arch !== 'x64'
    ? 'platform packages are packed on Linux x86-64 here'
    : !existsSync(addon)
      ? `skipping: ${addon} not found (npm install builds it)`
      : false
const hasDriver = existsSync('/proc/driver/nvidia/version')
const TOOLCHAIN = ['cargo', 'rustc', 'rustup', 'cc', 'c++', 'gcc', 'g++', 'clang', 'ld', 'pip', 'pip3', 'python', 'python3']

/** npm's CLI: the one running `npm test`, else the one on PATH. */
function npmCli() {
  const fromNpm = process.env.npm_execpath
  if (fromNpm && /npm-cli\.js$/.test(fromNpm)) return fromNpm
  const r = spawnSync('/bin/sh', ['-c', 'command -v npm'], { encoding: 'utf8' })
  return realpathSync(r.stdout.trim())
}

let work
let env
let tarballs

before(() => {
  if (skip) return
  work = mkdtempSync(join(tmpdir(), 'mlx-napi-pkg-'))
  // PATH with node, npm, npx and sh only (npm runs install scripts through sh).
  const bin = join(work, 'bin')
  mkdirSync(bin)
  const cli = npmCli()
  symlinkSync(process.execPath, join(bin, 'node'))
  symlinkSync(cli, join(bin, 'npm'))
  symlinkSync(join(dirname(cli), 'npx-cli.js'), join(bin, 'npx'))
  symlinkSync('/bin/sh', join(bin, 'sh'))
  env = { PATH: bin, HOME: process.env.HOME, TMPDIR: tmpdir(), LANG: 'C.UTF-8' }
  if (process.env.HF_HOME) env.HF_HOME = process.env.HF_HOME

  const packed = spawnSync(process.execPath, [join(root, 'scripts/package/index.js')], { cwd: root, encoding: 'utf8' })
  assert.equal(packed.status, 0, `npm run package failed:\n${packed.stdout}\n${packed.stderr}`)
  console.log(packed.stdout.trim())
  tarballs = readdirSync(dist)
    .filter((f) => f.endsWith('.tgz'))
    .map((f) => join(dist, f))
})

function project(name) {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true }))
  return dir
}

function run(cwd, cmd, args, extraEnv = {}) {
  return spawnSync(join(env.PATH, cmd), args, { cwd, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 300_000 })
}

const npmInstall = (cwd, args) => run(cwd, 'npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', ...args])

test('the stripped PATH has no Rust, C/C++ compiler or pip', { skip }, () => {
  for (const tool of TOOLCHAIN) {
    const r = spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env })
    assert.notEqual(r.status, 0, `${tool} is reachable on the test PATH`)
  }
})

test('dist/*.tgz install into an empty project and run without a toolchain', { skip }, async (t) => {
  const names = tarballs.map((f) => f.slice(dist.length + 1))
  for (const want of ['mlx-napi-0.1.0.tgz', 'mlx-napi-linux-x64-gnu-0.1.0.tgz', 'mlx-napi-linux-x64-gnu-cuda13-0.1.0.tgz']) {
    assert.ok(names.includes(want), `dist/ lacks ${want}: ${names}`)
  }
  const proj = project('user-app')
  const install = npmInstall(proj, tarballs)
  assert.equal(install.status, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`)
  const expected = hasDriver ? /mlx-napi: using prebuilt mlx-napi-linux-x64-gnu/ : /mlx-napi: using prebuilt mlx-napi-linux-x64-gnu \(MLX backend: cpu\)/
  assert.match(install.stdout, expected)
  const modules = realpathSync(join(proj, 'node_modules'))

  await t.test('each addon copy keeps only its $ORIGIN/mlx/lib RUNPATH', () => {
    for (const pkg of ['mlx-napi-linux-x64-gnu', 'mlx-napi-linux-x64-gnu-cuda13']) {
      const dyn = readDynamic(join(modules, pkg, 'mlx-napi.linux-x64-gnu.node'))
      assert.equal(dyn.runpath, '$ORIGIN/mlx/lib', pkg)
      assert.ok(dyn.needed.includes('libmlx.so'))
      assert.ok(existsSync(join(modules, pkg, 'mlx/lib/libmlx.so')), pkg)
    }
    assert.equal(readDynamic(join(modules, 'mlx-napi-linux-x64-gnu/mlx/lib/libmlx.so')).rpath, '$ORIGIN/../../mlx_cpu.libs')
    // OpenBLAS under the wheel's BLAS file name (scripts/package: useOpenblas).
    const libs = join(modules, 'mlx-napi-linux-x64-gnu/mlx_cpu.libs')
    const blas = readdirSync(libs).find((f) => f.startsWith('libblas-'))
    assert.equal(readDynamic(join(libs, blas)).soname, 'libopenblas.so.0')
    const spec = require(join(modules, 'mlx-napi-linux-x64-gnu-cuda13/runtime.json'))
    assert.deepEqual(spec.nvidia.map((l) => l.soname).sort(), [
      'libcublasLt.so.13',
      'libcudnn.so.9',
      'libcufft.so.12',
      'libnccl.so.2',
      'libnvrtc.so.13',
    ])
  })

  await t.test('npx mlx-napi info: the CPU package, its own libmlx, and why not CUDA', { skip: hasDriver && 'an NVIDIA driver is present' }, () => {
    const r = run(proj, 'npx', ['mlx-napi', 'info', '--json'])
    assert.equal(r.status, 0, r.stderr)
    const info = JSON.parse(r.stdout)
    assert.equal(info.mlxVersion, '0.32.2')
    assert.equal(info.backend, 'cpu')
    assert.equal(info.addon.source, 'prebuilt')
    assert.equal(info.addon.package, 'mlx-napi-linux-x64-gnu')
    assert.equal(info.addon.variant, 'cpu')
    assert.equal(info.addon.libmlx, join(modules, 'mlx-napi-linux-x64-gnu/mlx/lib/libmlx.so'))
    assert.ok(
      info.addon.skipped.some((s) => /^mlx-napi-linux-x64-gnu-cuda13: no NVIDIA driver/.test(s)),
      JSON.stringify(info.addon.skipped),
    )
    const text = run(proj, 'npx', ['mlx-napi', 'info'])
    assert.match(text.stdout, /^addon: prebuilt mlx-napi-linux-x64-gnu \(cpu\)$/m)
  })

  await t.test('MLX_NAPI_BACKEND=cuda without a driver fails with ERR_ADDON_LOAD and says what is missing', { skip: hasDriver && 'an NVIDIA driver is present' }, () => {
    const r = run(proj, 'node', ['-e', "require('mlx-napi')"], { MLX_NAPI_BACKEND: 'cuda' })
    assert.notEqual(r.status, 0)
    assert.match(r.stderr, /code: 'ERR_ADDON_LOAD'/)
    assert.match(r.stderr, /MLX_NAPI_BACKEND=cuda could not be loaded/)
    assert.match(r.stderr, /no NVIDIA driver \(libcuda\.so\.1/)
    assert.match(r.stderr, /NVIDIA driver 580\.65\.06 or newer/)
  })

  await t.test('MLX_NAPI_BACKEND=cpu loads the CPU package; an unknown value is refused', () => {
    const cpu = run(proj, 'node', ['-e', "process.stdout.write(require('mlx-napi').backendInfo().addon.reason)"], {
      MLX_NAPI_BACKEND: 'cpu',
    })
    assert.equal(cpu.status, 0, cpu.stderr)
    assert.equal(cpu.stdout, 'MLX_NAPI_BACKEND=cpu')
    const bad = run(proj, 'node', ['-e', "require('mlx-napi')"], { MLX_NAPI_BACKEND: 'tpu' })
    assert.notEqual(bad.status, 0)
    assert.match(bad.stderr, /MLX_NAPI_BACKEND=tpu is not one of auto, cpu, cuda, metal/)
  })

  await t.test('a matmul runs on the bundled OpenBLAS, mapped from the package', () => {
    const code =
      "const m = require('mlx-napi'); m.selfTest({ size: 256 }).then((r) => { const maps = require('fs')" +
      ".readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/).pop()).filter((p) => /blas|lapack|gfortran/.test(p));" +
      ' console.log(JSON.stringify({ r, maps: [...new Set(maps)] })) })'
    const out = run(proj, 'node', ['-e', code], { MLX_NAPI_BACKEND: 'cpu' })
    assert.equal(out.status, 0, out.stderr)
    const { r, maps } = JSON.parse(out.stdout)
    assert.equal(r.relativeError, 0)
    assert.equal(maps.length, 3, maps.join(', ')) // BLAS, LAPACK, one libgfortran
    for (const lib of maps) assert.ok(lib.startsWith(join(modules, 'mlx-napi-linux-x64-gnu/mlx_cpu.libs/')), lib)
  })

  const model = sharedPath('models/whisper-tiny.en')
  const jfk = sharedPath('audio/jfk.wav')
  await t.test('npx mlx-napi transcribe jfk.wav with the installed packages', { skip: !(model && jfk) && 'test data absent' }, () => {
    const r = run(proj, 'npx', ['mlx-napi', 'transcribe', '--model', model, jfk])
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /ask not what your country can do for you,? ask what you can do for your country/i)
  })

  await t.test('Electron layout: the example\'s job.js in a worker_threads Worker from app.asar.unpacked', {
    skip: !(model && jfk) && 'test data absent',
  }, () => {
    // electron-builder puts asarUnpack'ed files under resources/app.asar.unpacked/.
    const unpacked = join(work, 'resources', 'app.asar.unpacked')
    mkdirSync(unpacked, { recursive: true })
    cpSync(join(proj, 'node_modules'), join(unpacked, 'node_modules'), { recursive: true })
    cpSync(join(root, 'examples/electron/job.js'), join(unpacked, 'job.js'))
    const code =
      "const { Worker } = require('node:worker_threads');" +
      'const w = new Worker(' +
      JSON.stringify(
        "const { parentPort, workerData } = require('node:worker_threads');" +
          "require('./job.js').transcribe(workerData.model, workerData.audio)" +
          '.then((r) => parentPort.postMessage({ r, path: require(\'mlx-napi\').backendInfo().addon.path }))',
      ) +
      ', { eval: true, workerData: ' +
      JSON.stringify({ model, audio: jfk }) +
      " }); w.once('message', (m) => { console.log(JSON.stringify(m)); process.exit(0) }); w.once('error', (e) => { console.error(e); process.exit(1) })"
    const r = run(unpacked, 'node', ['-e', code], { MLX_NAPI_BACKEND: 'cpu' })
    assert.equal(r.status, 0, r.stderr)
    const { r: result, path } = JSON.parse(r.stdout)
    assert.match(result.text, /ask not what your country can do for you/i)
    assert.equal(result.backend, 'cpu')
    assert.ok(path.startsWith(join(realpathSync(unpacked), 'node_modules', 'mlx-napi-linux-x64-gnu')), path)
  })
})

test('without a fitting platform package and without a toolchain, install says so and require() explains', { skip }, () => {
  const proj = project('no-prebuilt')
  const main = tarballs.find((f) => f.endsWith('/mlx-napi-0.1.0.tgz'))
  const install = npmInstall(proj, ['--omit=optional', main])
  assert.equal(install.status, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`)
  assert.match(install.stdout, /mlx-napi: no prebuilt addon loads here/)
  assert.match(install.stdout, /source build not possible: no Rust toolchain/)
  const r = run(proj, 'node', ['-e', "require('mlx-napi')"])
  assert.notEqual(r.status, 0)
  assert.match(r.stderr, /code: 'ERR_ADDON_LOAD'/)
  assert.match(r.stderr, /mlx-napi-linux-x64-gnu: not installed/)
  assert.match(r.stderr, /MLX_NAPI_BUILD_FROM_SOURCE=1 npm rebuild mlx-napi/)
})

after(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})
