#!/usr/bin/env node
// One side of benchmark/gen.mjs: mlx-napi alone in this process, one
// measurement, one JSON line on stdout (the mlx-lm side is
// peers/mlx_lm_side.py, same arguments, same output).
//
//   node benchmark/gen_side.mjs --mode decode      --model DIR [--prompt 128] [--tokens 256]
//   node benchmark/gen_side.mjs --mode streams     --model DIR [--streams 1,4,16,64] [--stream-prompt 64] [--stream-tokens 128]
//   node benchmark/gen_side.mjs --mode first-token --model DIR --t0 EPOCH_MS [--prompt 128]
//
// decode: after warm-up, one generation per sampling setting (greedy, all
//   filters) of --tokens tokens; decode tok/s from the token arrival times.
// streams: for each count C, C concurrent llm.stream() calls of
//   --stream-tokens tokens (distinct prompts), after a warm-up run of each
//   C; aggregate tok/s = C × tokens / wall time from the first call to the
//   last token (prefill included), as seen by JS.
// first-token: nothing warm; --t0 is the time the parent spawned us; reports
//   t0 → first token (node start, addon load, model load, kernel compiles or
//   cache reads, prefill, first step).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'

const { values: a } = parseArgs({
  options: {
    mode: { type: 'string' },
    model: { type: 'string' },
    prompt: { type: 'string', default: '128' },
    tokens: { type: 'string', default: '256' },
    streams: { type: 'string', default: '1,4,16,64' },
    'stream-prompt': { type: 'string', default: '64' },
    'stream-tokens': { type: 'string', default: '128' },
    t0: { type: 'string' },
  },
})
const require = createRequire(import.meta.url)
const mlx = require('../index.js')

const SAMPLING = {
  greedy: {},
  'all filters': { temperature: 0.7, topP: 0.9, topK: 50, minP: 0.05, repetitionPenalty: 1.1 },
}

/** Deterministic pseudo-random prompt ids (no tokenizer involved); `salt`
 *  varies them. MINSTD: exact in doubles, so Python draws the same ids. */
function promptIds(n, vocab, salt = 0) {
  let x = 12345 + salt * 7919
  return Array.from({ length: n }, () => {
    x = (x * 48271) % 2147483647
    return 1000 + (x % (vocab - 2000))
  })
}

/** Decode tok/s from arrival times: tokens after the first over the time after it. */
const decodeRate = (stamps) => (stamps.length - 1) / ((stamps[stamps.length - 1] - stamps[0]) / 1e3)

async function stamped(llm, prompt, options) {
  const stamps = []
  let result
  const stream = llm.stream(Uint32Array.from(prompt), { ignoreEos: true, logprobs: false, ...options })
  const start = performance.now()
  for (;;) {
    const step = await stream.next()
    if (step.done) {
      result = step.value
      break
    }
    stamps.push(performance.now() - start)
  }
  return { stamps, result }
}

// config.json's vocab_size: both sides draw prompt ids below it.
const vocab = JSON.parse(readFileSync(join(a.model, 'config.json'), 'utf8')).vocab_size
const out = { side: 'mlx-napi', mode: a.mode }
if (a.mode === 'first-token') {
  const t0 = Number(a.t0)
  const llm = await mlx.loadLLM(a.model)
  const prompt = promptIds(Number(a.prompt), vocab)
  await llm.generate(Uint32Array.from(prompt), { maxTokens: 1, ignoreEos: true })
  out.first_token_ms = Date.now() - t0
  out.kernel_cache_dir = mlx.backendInfo().kernelCacheDir
  await llm.dispose()
} else if (a.mode === 'decode') {
  const llm = await mlx.loadLLM(a.model)
  const prompt = promptIds(Number(a.prompt), vocab)
  const tokens = Number(a.tokens)
  for (const sampling of Object.values(SAMPLING)) await stamped(llm, prompt, { maxTokens: 16, seed: 1, ...sampling })
  out.decode_tps = {}
  out.host_reads_per_token = {}
  for (const [name, sampling] of Object.entries(SAMPLING)) {
    const { stamps, result } = await stamped(llm, prompt, { maxTokens: tokens, seed: 1, ...sampling })
    out.decode_tps[name] = decodeRate(stamps)
    out.host_reads_per_token[name] = result.hostReads / result.tokens.length
  }
  out.peak_memory = mlx.memoryStats().peak
  await llm.dispose()
} else if (a.mode === 'streams') {
  const counts = a.streams.split(',').map(Number)
  const llm = await mlx.loadLLM(a.model, { maxBatchSize: Math.max(...counts) })
  const tokens = Number(a['stream-tokens'])
  const runStreams = async (c, maxTokens) => {
    const start = performance.now()
    const per = await Promise.all(
      Array.from({ length: c }, (_, i) =>
        stamped(llm, promptIds(Number(a['stream-prompt']), vocab, i + 1), { maxTokens })),
    )
    const wall = (performance.now() - start) / 1e3
    return { wall, per }
  }
  out.aggregate_tps = {}
  out.per_stream_decode_tps = {}
  out.last_first_token_ms = {}
  for (const c of counts) {
    await runStreams(c, 8) // warm-up at this batch size
    const { wall, per } = await runStreams(c, tokens)
    out.aggregate_tps[c] = (c * tokens) / wall
    // When the last stream got its first token: the prefill cost of joining.
    out.last_first_token_ms[c] = Math.max(...per.map((p) => p.stamps[0]))
    const rates = per.map((p) => decodeRate(p.stamps)).sort((x, y) => x - y)
    out.per_stream_decode_tps[c] = rates[rates.length >> 1]
  }
  out.peak_memory = mlx.memoryStats().peak
  await llm.dispose()
} else {
  throw new Error('--mode decode | streams | first-token')
}
const info = mlx.backendInfo()
Object.assign(out, { device: info.deviceName ?? info.device, backend: info.backend, mlx: info.mlxVersion })
console.log(JSON.stringify(out))
