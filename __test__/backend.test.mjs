import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { backendInfo, selfTest } = require('../index.js')

test('backendInfo reports the loaded MLX 0.32.2 and its device', () => {
  const info = backendInfo()
  assert.equal(info.mlxVersion, '0.32.2')
  assert.ok(['gpu', 'cpu'].includes(info.device))
  assert.ok(['cuda', 'metal', 'cpu'].includes(info.backend))
  if (info.backend === 'cpu') assert.equal(info.device, 'cpu')
})

test('selfTest computes a matmul off the main thread and checks it', async () => {
  const order = []
  const pending = selfTest({ size: 512 }).then((r) => {
    order.push('matmul')
    return r
  })
  assert.ok(pending instanceof Promise)
  setTimeout(() => order.push('timer'), 0)
  const r = await pending
  // Had the matmul run on the JS thread, its promise would already be settled and
  // resolve (as a microtask) before any timer; a 512³ CPU matmul takes far longer
  // than the 1 ms timer, so the timer firing first shows the loop stayed free.
  if (backendInfo().device === 'cpu') assert.deepEqual(order, ['timer', 'matmul'])
  assert.equal(r.size, 512)
  assert.equal(r.dtype, 'float32')
  assert.ok(r.relativeError < 1e-4, `relative error ${r.relativeError}`)
  assert.ok(r.millis > 0)
})

test('an MLX exception rejects with code ERR_MLX and the process survives', async () => {
  await assert.rejects(selfTest({ size: 8, dtype: 'int32' }), (err) => {
    assert.ok(err instanceof Error)
    assert.equal(err.code, 'ERR_MLX')
    assert.match(err.message, /matmul/)
    return true
  })
  // MLX is still usable afterwards.
  const r = await selfTest({ size: 16 })
  assert.ok(r.relativeError < 1e-4)
})

test('invalid options are RangeErrors with ERR_INVALID_ARG', async () => {
  await assert.rejects(selfTest({ dtype: 'float128' }), (err) => {
    assert.ok(err instanceof RangeError)
    assert.equal(err.code, 'ERR_INVALID_ARG')
    return true
  })
  await assert.rejects(selfTest({ size: 0 }), { code: 'ERR_INVALID_ARG' })
  await assert.rejects(selfTest({ size: 1 << 20 }), { code: 'ERR_INVALID_ARG' })
})

test('memoryStats reports MLX allocator counters', async () => {
  const { memoryStats, resetPeakMemory } = require('../index.js')
  await selfTest({ size: 256 })
  const m = memoryStats()
  for (const k of ['active', 'peak', 'cache']) assert.ok(Number.isFinite(m[k]) && m[k] >= 0, k)
  assert.ok(m.peak >= m.active)
  resetPeakMemory()
  assert.ok(memoryStats().peak <= m.peak)
})

test('kernelCacheDir: a per-user cache directory by default, MLX_PTX_CACHE_DIR wins', async () => {
  const { spawnSync } = await import('node:child_process')
  const { join } = await import('node:path')
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const addon = new URL('../index.js', import.meta.url).pathname
  const script = `const { backendInfo } = require(${JSON.stringify(addon)});
    const info = backendInfo();
    console.log(JSON.stringify({ dir: info.kernelCacheDir, env: process.env.MLX_PTX_CACHE_DIR ?? null }))`
  const run = (env) => {
    const base = { ...process.env }
    delete base.MLX_PTX_CACHE_DIR
    delete base.XDG_CACHE_HOME
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...base, ...env }, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    return JSON.parse(r.stdout.trim().split('\n').pop())
  }
  const home = mkdtempSync(join(tmpdir(), 'mlx-napi-home-'))
  try {
    const version = backendInfo().mlxVersion
    // Linux: $XDG_CACHE_HOME, else ~/.cache; exported for MLX's CUDA backend.
    const xdg = run({ HOME: home, XDG_CACHE_HOME: join(home, 'xdg') })
    assert.equal(xdg.dir, join(home, 'xdg', 'mlx-napi', `mlx-${version}`, 'kernels'))
    assert.equal(xdg.env, xdg.dir)
    const plain = run({ HOME: home })
    const expected = process.platform === 'darwin'
      ? join(home, 'Library', 'Caches', 'mlx-napi', `mlx-${version}`, 'kernels')
      : join(home, '.cache', 'mlx-napi', `mlx-${version}`, 'kernels')
    assert.equal(plain.dir, expected)
    const explicit = run({ HOME: home, MLX_PTX_CACHE_DIR: join(home, 'mine') })
    assert.deepEqual(explicit, { dir: join(home, 'mine'), env: join(home, 'mine') })
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
})
