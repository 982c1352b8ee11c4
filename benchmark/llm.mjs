#!/usr/bin/env node
// LLM decode/prefill benchmark: mlx-napi vs a peer (mlx-lm on the same MLX build,
// or transformers on PyTorch CUDA), same machine, same checkpoint, same prompt ids,
// alternating runs.
//
//   node benchmark/llm.mjs --model DIR [--peer mlx-lm|transformers] [--name qwen2.5-0.5b] [--rounds 5]
//        [--prompt 128] [--tokens 256] [--long 1000] [--json out.json]
//
// Rows: model load; prefill at 128 and 2048 prompt tokens; decode for each
// sampling setting (greedy, temperature, +top-p, +repetition penalty, all
// filters); per-token time at 10/100/500/1000 generated tokens; host reads per
// token; peak memory. EOS never stops a run (ignoreEos; EOS cleared in mlx-lm).
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Peer } from './peer.mjs'
import { median, summarize } from './stats.mjs'

const require = createRequire(import.meta.url)
const mlx = require('../index.js')

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    name: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    prompt: { type: 'string', default: '128' },
    'long-prompt': { type: 'string', default: '2048' },
    tokens: { type: 'string', default: '256' },
    long: { type: 'string', default: '1000' },
    json: { type: 'string' },
    // mlx-lm (same MLX build) or transformers (PyTorch CUDA, bf16, SDPA).
    peer: { type: 'string', default: 'mlx-lm' },
    'no-peer': { type: 'boolean', default: false },
  },
})
if (!a.model) throw new Error('--model DIR is required')
const rounds = Number(a.rounds)
const genTokens = Number(a.tokens)
const name = a.name ?? a.model.split('/').pop()

const SAMPLING = {
  greedy: {},
  'temp 0.7': { temperature: 0.7 },
  '+ top-p 0.9': { temperature: 0.7, topP: 0.9 },
  '+ rep. penalty 1.1': { temperature: 0.7, topP: 0.9, repetitionPenalty: 1.1 },
  'all filters': { temperature: 0.7, topP: 0.9, topK: 50, minP: 0.05, repetitionPenalty: 1.1 },
}

// Deterministic pseudo-random prompt ids (no tokenizer involved).
function promptIds(n, vocab) {
  let x = 12345
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) % 2 ** 31
    return 1000 + (x % (vocab - 2000))
  })
}

const PEERS = { 'mlx-lm': './peers/mlx_lm_peer.py', transformers: './peers/hf_llm_peer.py' }
if (!PEERS[a.peer]) throw new Error(`--peer must be one of ${Object.keys(PEERS).join(', ')}`)
const peerName = a.peer
const peer = a['no-peer'] ? null : new Peer(fileURLToPath(new URL(PEERS[a.peer], import.meta.url)))

// Load (timed once each, ours first; both from a warm page cache after the first).
let t = performance.now()
const llm = await mlx.loadLLM(a.model)
const oursLoadMs = performance.now() - t
const peerLoadMs = peer ? (await peer.request({ op: 'load', model: a.model })).load_ms : null
const vocab = llm.tokenizer.vocabSize
const short = promptIds(Number(a.prompt), vocab)
const long = promptIds(Number(a['long-prompt']), vocab)

// Warm-up: MLX compiles kernels on first use (seconds on CUDA).
for (const sampling of Object.values(SAMPLING)) {
  await llm.generate(Uint32Array.from(short), { maxTokens: 8, ignoreEos: true, ...sampling })
  if (peer) await peer.request({ op: 'generate', prompt: short, max_tokens: 8, sampling })
}
await llm.generate(Uint32Array.from(long), { maxTokens: 2, ignoreEos: true })
if (peer) await peer.request({ op: 'generate', prompt: long, max_tokens: 2, sampling: {} })

async function ours(prompt, maxTokens, sampling, seed = 0) {
  const r = await llm.generate(Uint32Array.from(prompt), { maxTokens, ignoreEos: true, seed, ...sampling })
  return {
    ttft_ms: r.timings.ttftMs,
    prefill_tps: r.timings.prefillTokensPerSec,
    decode_tps: r.timings.decodeTokensPerSec,
    host_reads_per_token: r.hostReads / r.tokens.length,
  }
}

const rows = []
function row(label, oursRuns, peerRuns, key, unit, higherIsBetter = true) {
  const o = summarize(oursRuns.map((r) => r[key]))
  const p = peerRuns.length ? summarize(peerRuns.map((r) => r[key])) : null
  const ratio = p ? (higherIsBetter ? o.median / p.median : p.median / o.median) : null
  rows.push({ label, unit, ours: o, peer: p, ratio })
  const fmt = (s) => (s ? `${s.median.toFixed(2)} (${s.min.toFixed(2)}–${s.max.toFixed(2)})` : '–')
  console.log(`| ${label} | ${fmt(o)} | ${fmt(p)} | ${ratio ? ratio.toFixed(3) + '×' : '–'} |`)
}

console.log(`\n${name}: load ours ${oursLoadMs.toFixed(0)} ms, ${peerName} ${peerLoadMs?.toFixed(0) ?? '–'} ms`)
console.log(`| case | mlx-napi median (min–max) | ${peerName} median (min–max) | ratio |`)
console.log(`| --- | --- | --- | --- |`)

// Prefill at two prompt lengths (greedy, 1 generated token).
for (const [label, prompt] of [
  [`prefill tok/s, prompt ${short.length}`, short],
  [`prefill tok/s, prompt ${long.length}`, long],
]) {
  const o = []
  const p = []
  for (let i = 0; i < rounds; i++) {
    o.push(await ours(prompt, 1, {}))
    if (peer) p.push(await peer.request({ op: 'generate', prompt, max_tokens: 1, sampling: {} }))
  }
  row(label, o, p, 'prefill_tps', 'tok/s')
  if (prompt === short) row(`time to first token ms, prompt ${short.length}`, o, p, 'ttft_ms', 'ms', false)
}

// Decode under each sampling setting.
const greedyOurs = []
for (const [label, sampling] of Object.entries(SAMPLING)) {
  const o = []
  const p = []
  for (let i = 0; i < rounds; i++) {
    o.push(await ours(short, genTokens, sampling, i))
    if (peer) p.push(await peer.request({ op: 'generate', prompt: short, max_tokens: genTokens, sampling }))
  }
  row(`decode tok/s, ${label}, ${genTokens} tokens`, o, p, 'decode_tps', 'tok/s')
  if (label === 'greedy') greedyOurs.push(...o)
  else if (label === 'all filters') {
    const cost = 1 - median(o.map((r) => r.decode_tps)) / median(greedyOurs.map((r) => r.decode_tps))
    console.log(`| full sampling cost vs greedy (ours) | ${(cost * 100).toFixed(1)} % | | |`)
    rows.push({ label: 'full sampling cost vs greedy (ours)', ours: { median: cost } })
  }
  if (label === 'greedy') {
    const reads = median(o.map((r) => r.host_reads_per_token))
    console.log(`| host reads per token (ours) | ${reads.toFixed(3)} | | |`)
    rows.push({ label: 'host reads per token (ours)', ours: { median: reads } })
  }
}

// Per-token time along a long generation (streamed; arrival time of each token).
const longN = Number(a.long)
const windows = [10, 100, 500, 1000].filter((n) => n <= longN)
function perTokenAt(stamps) {
  // ms per token over the 10 tokens ending at n (token n-1 arrives at stamps[n-1]).
  return Object.fromEntries(windows.map((n) => [n, (stamps[n - 1] - stamps[Math.max(0, n - 11)]) / Math.min(10, n - 1)]))
}
const oursStamps = []
const start = performance.now()
for await (const _ of llm.stream(Uint32Array.from(short), { maxTokens: longN, ignoreEos: true })) {
  oursStamps.push(performance.now() - start)
}
const oursPer = perTokenAt(oursStamps)
const peerPer = peer
  ? perTokenAt((await peer.request({ op: 'generate', prompt: short, max_tokens: longN, sampling: {} })).token_ms)
  : null
for (const n of windows) {
  console.log(`| ms/token at token ${n} | ${oursPer[n].toFixed(3)} | ${peerPer ? peerPer[n].toFixed(3) : '–'} | |`)
}
const mem = mlx.memoryStats()
console.log(`| peak memory (ours, GB) | ${(mem.peak / 1e9).toFixed(2)} | | |`)

const info = mlx.backendInfo()
const out = {
  model: name,
  peer: peer ? peerName : null,
  device: info.deviceName ?? info.device,
  backend: info.backend,
  mlx: info.mlxVersion,
  date: new Date().toISOString(),
  load_ms: { ours: oursLoadMs, peer: peerLoadMs },
  rows,
  per_token_ms: { ours: oursPer, peer: peerPer },
  peak_memory: mem.peak,
}
if (a.json) writeFileSync(a.json, JSON.stringify(out, null, 2))
await llm.dispose()
await peer?.close()
