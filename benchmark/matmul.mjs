#!/usr/bin/env node
// Matmul throughput through mlx-napi vs MLX's Python API, same process tree, same
// machine, alternating rounds. Usage:
//   node benchmark/matmul.mjs [--size 8192] [--dtype bfloat16] [--rounds 5] [--iterations 20]
// Prints a JSON summary and a markdown row for benchmark/RESULTS.md.
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { median, summarize } from './stats.mjs'

const require = createRequire(import.meta.url)
const { backendInfo, benchmarkMatmul } = require('../index.js')

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '8192' },
    dtype: { type: 'string', default: 'bfloat16' },
    rounds: { type: 'string', default: '5' },
    iterations: { type: 'string', default: '20' },
    python: { type: 'string', default: process.env.PYTHON ?? 'python3' },
  },
})
const size = Number(values.size)
const rounds = Number(values.rounds)
const iterations = Number(values.iterations)
const peerScript = fileURLToPath(new URL('./peers/mlx_matmul.py', import.meta.url))
const tflops = (ms) => (2 * size ** 3) / (ms * 1e-3) / 1e12

const ours = []
const peer = []
for (let round = 0; round < rounds; round++) {
  // Warm-up only in the first round of each: later rounds reuse compiled kernels.
  const r = await benchmarkMatmul({ size, dtype: values.dtype, warmup: round === 0 ? 5 : 1, iterations })
  ours.push(r.medianMillis)
  const out = execFileSync(values.python, [peerScript, String(size), values.dtype, '5', String(iterations)], {
    encoding: 'utf8',
  })
  peer.push(median(JSON.parse(out.trim().split('\n').pop()).millis))
}

const info = backendInfo()
const summary = {
  size,
  dtype: values.dtype,
  device: info.deviceName ?? info.device,
  backend: info.backend,
  mlx: info.mlxVersion,
  ours: { ...summarize(ours), tflops: tflops(median(ours)) },
  peer: { ...summarize(peer), tflops: tflops(median(peer)) },
  ratio: median(peer) / median(ours),
}
console.log(JSON.stringify(summary, null, 2))
console.log(
  `| matmul ${size}³ ${values.dtype} | ${summary.ours.median.toFixed(3)} ms (${summary.ours.tflops.toFixed(0)} TFLOP/s) ` +
    `| ${summary.peer.median.toFixed(3)} ms (${summary.peer.tflops.toFixed(0)} TFLOP/s) | ${summary.ratio.toFixed(3)}× |`,
)
