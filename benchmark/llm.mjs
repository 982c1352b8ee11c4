#!/usr/bin/env node
// LLM decode/prefill benchmark: mlx-napi vs its peers (mlx-lm on the same MLX
// build, transformers on PyTorch CUDA), same machine, same checkpoint, same
// prompt ids, runs alternating ours, peer 1, peer 2, … within every round.
//
//   node benchmark/llm.mjs --model DIR [--peer mlx-lm,transformers] [--name qwen2.5-0.5b] [--rounds 5]
//        [--prompt 128] [--tokens 256] [--long 1000] [--long-rounds 3] [--peer-rounds transformers=2]
//        [--json out.json]
//
// --peer-rounds caps a slow peer's rounds (its median is then over fewer runs;
// the table says how many).
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
    'long-rounds': { type: 'string', default: '3' },
    'peer-rounds': { type: 'string', default: '' },
    json: { type: 'string' },
    // Comma-separated: mlx-lm (same MLX build), transformers (PyTorch CUDA, bf16, SDPA).
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
const peerNames = a['no-peer'] ? [] : a.peer.split(',').map((p) => p.trim())
for (const p of peerNames) {
  if (!PEERS[p]) throw new Error(`--peer takes a comma-separated list of ${Object.keys(PEERS).join(', ')}; got ${p}`)
}
const peerRounds = Object.fromEntries(
  a['peer-rounds']
    .split(',')
    .filter(Boolean)
    .map((kv) => {
      const [p, n] = kv.split('=')
      if (!peerNames.includes(p) || !(Number(n) >= 1)) throw new Error(`--peer-rounds: bad entry ${kv}`)
      return [p, Number(n)]
    }),
)
const peers = peerNames.map((p) => ({
  name: p,
  rounds: Math.min(rounds, peerRounds[p] ?? rounds),
  proc: new Peer(fileURLToPath(new URL(PEERS[p], import.meta.url))),
}))

// Load (timed once each, ours first; all from a warm page cache after the first).
let t = performance.now()
const llm = await mlx.loadLLM(a.model)
const oursLoadMs = performance.now() - t
const peerLoadMs = {}
for (const p of peers) peerLoadMs[p.name] = (await p.proc.request({ op: 'load', model: a.model })).load_ms
const vocab = llm.tokenizer.vocabSize
const short = promptIds(Number(a.prompt), vocab)
const long = promptIds(Number(a['long-prompt']), vocab)

// Warm-up: MLX compiles kernels on first use (seconds on CUDA).
for (const sampling of Object.values(SAMPLING)) {
  await llm.generate(Uint32Array.from(short), { maxTokens: 8, ignoreEos: true, ...sampling })
  for (const p of peers) await p.proc.request({ op: 'generate', prompt: short, max_tokens: 8, sampling })
}
await llm.generate(Uint32Array.from(long), { maxTokens: 2, ignoreEos: true })
for (const p of peers) await p.proc.request({ op: 'generate', prompt: long, max_tokens: 2, sampling: {} })

async function ours(prompt, maxTokens, sampling, seed = 0) {
  const r = await llm.generate(Uint32Array.from(prompt), { maxTokens, ignoreEos: true, seed, ...sampling })
  return {
    ttft_ms: r.timings.ttftMs,
    prefill_tps: r.timings.prefillTokensPerSec,
    decode_tps: r.timings.decodeTokensPerSec,
    host_reads_per_token: r.hostReads / r.tokens.length,
  }
}

// One round: ours, then each peer, on the same request.
const peerPeak = {}
async function oneRound(prompt, maxTokens, sampling, seed) {
  const o = await ours(prompt, maxTokens, sampling, seed)
  const byPeer = {}
  for (const p of peers.filter((p) => seed < p.rounds)) {
    const r = await p.proc.request({ op: 'generate', prompt, max_tokens: maxTokens, sampling })
    byPeer[p.name] = r
    if (r.peak_memory) peerPeak[p.name] = Math.max(peerPeak[p.name] ?? 0, r.peak_memory)
  }
  return { o, byPeer }
}

async function runRounds(prompt, maxTokens, sampling) {
  const o = []
  const byPeer = Object.fromEntries(peers.map((p) => [p.name, []]))
  for (let i = 0; i < rounds; i++) {
    const r = await oneRound(prompt, maxTokens, sampling, i)
    o.push(r.o)
    for (const p of peers) if (r.byPeer[p.name]) byPeer[p.name].push(r.byPeer[p.name])
  }
  return { o, byPeer }
}

const rows = []
const fmt = (s) => (s ? `${s.median.toFixed(2)} (${s.min.toFixed(2)}–${s.max.toFixed(2)})` : '–')
function row(label, { o: oursRuns, byPeer }, key, unit, higherIsBetter = true) {
  const o = summarize(oursRuns.map((r) => r[key]))
  const peerStats = {}
  const cells = [fmt(o)]
  for (const p of peers) {
    const s = summarize(byPeer[p.name].map((r) => r[key]))
    const ratio = higherIsBetter ? o.median / s.median : s.median / o.median
    peerStats[p.name] = { ...s, ratio }
    cells.push(fmt(s), `${ratio.toFixed(3)}×`)
  }
  rows.push({ label, unit, ours: o, peers: peerStats })
  console.log(`| ${label} | ${cells.join(' | ')} |`)
}
const blanks = ' |'.repeat(2 * peers.length)
function note(label, value, json) {
  console.log(`| ${label} | ${value} |${blanks}`)
  rows.push({ label, ours: json })
}

console.log(
  `\n${name}: load ours ${oursLoadMs.toFixed(0)} ms` +
    peers.map((p) => `, ${p.name} ${peerLoadMs[p.name].toFixed(0)} ms`).join(''),
)
console.log(
  `| case | mlx-napi median (min–max), ${rounds} runs |` +
    peers.map((p) => ` ${p.name} median (min–max), ${p.rounds} runs | ratio |`).join(''),
)
console.log(`| --- | --- |${peers.map(() => ' --- | --- |').join('')}`)

// Prefill at two prompt lengths (greedy, 1 generated token).
for (const [label, prompt] of [
  [`prefill tok/s, prompt ${short.length}`, short],
  [`prefill tok/s, prompt ${long.length}`, long],
]) {
  const runs = await runRounds(prompt, 1, {})
  row(label, runs, 'prefill_tps', 'tok/s')
  if (prompt === short) row(`time to first token ms, prompt ${short.length}`, runs, 'ttft_ms', 'ms', false)
}

// Decode under each sampling setting.
let greedyTps = null
for (const [label, sampling] of Object.entries(SAMPLING)) {
  const runs = await runRounds(short, genTokens, sampling)
  row(`decode tok/s, ${label}, ${genTokens} tokens`, runs, 'decode_tps', 'tok/s')
  const tps = median(runs.o.map((r) => r.decode_tps))
  if (label === 'greedy') {
    greedyTps = tps
    const reads = median(runs.o.map((r) => r.host_reads_per_token))
    note('host reads per token (ours)', reads.toFixed(3), { median: reads })
  } else if (label === 'all filters') {
    const cost = 1 - tps / greedyTps
    note('full sampling cost vs greedy (ours)', `${(cost * 100).toFixed(1)} %`, { median: cost })
  }
}

// Per-token time along long generations (streamed; arrival time of each
// token), median over `--long-rounds` runs of each side.
const longN = Number(a.long)
const longRounds = Number(a['long-rounds'])
const windows = [10, 100, 500, 1000].filter((n) => n <= longN)
function perTokenAt(stampRuns) {
  // ms per token over the 10 tokens ending at n (token n-1 arrives at stamps[n-1]).
  const at = (stamps, n) => (stamps[n - 1] - stamps[Math.max(0, n - 11)]) / Math.min(10, n - 1)
  return Object.fromEntries(windows.map((n) => [n, median(stampRuns.map((s) => at(s, n)))]))
}
const oursStampRuns = []
const peerStampRuns = Object.fromEntries(peers.map((p) => [p.name, []]))
for (let i = 0; i < longRounds; i++) {
  const stamps = []
  const start = performance.now()
  for await (const _ of llm.stream(Uint32Array.from(short), { maxTokens: longN, ignoreEos: true })) {
    stamps.push(performance.now() - start)
  }
  oursStampRuns.push(stamps)
  for (const p of peers.filter((p) => i < Math.min(p.rounds, longRounds))) {
    const r = await p.proc.request({ op: 'generate', prompt: short, max_tokens: longN, sampling: {} })
    peerStampRuns[p.name].push(r.token_ms)
  }
}
const oursPer = perTokenAt(oursStampRuns)
const peerPer = Object.fromEntries(peers.map((p) => [p.name, perTokenAt(peerStampRuns[p.name])]))
for (const n of windows) {
  const cells = peers.map((p) => ` ${peerPer[p.name][n].toFixed(3)} | |`).join('')
  console.log(`| ms/token at token ${n} (median of ≤ ${longRounds} runs) | ${oursPer[n].toFixed(3)} |${cells}`)
}
const flat = (per) => Math.max(...windows.map((n) => per[n])) / Math.min(...windows.map((n) => per[n])) - 1
note('per-token time spread, token 10–1000 (max/min − 1, ours)', `${(flat(oursPer) * 100).toFixed(1)} %`, {
  median: flat(oursPer),
})
const mem = mlx.memoryStats()
const peakCells = peers.map((p) => (peerPeak[p.name] ? `${p.name} ${(peerPeak[p.name] / 1e9).toFixed(2)}` : null))
note(
  'peak memory, GB (ours; peers as they report it)',
  [(mem.peak / 1e9).toFixed(2), ...peakCells.filter(Boolean)].join(' · '),
  { median: mem.peak, peers: peerPeak },
)

const info = mlx.backendInfo()
const out = {
  model: name,
  peers: peerNames,
  device: info.deviceName ?? info.device,
  backend: info.backend,
  mlx: info.mlxVersion,
  date: new Date().toISOString(),
  rounds,
  peer_rounds: Object.fromEntries(peers.map((p) => [p.name, p.rounds])),
  long_rounds: longRounds,
  load_ms: { ours: oursLoadMs, peers: peerLoadMs },
  rows,
  per_token_ms: { ours: oursPer, peers: peerPer },
  peak_memory: mem.peak,
}
if (a.json) writeFileSync(a.json, JSON.stringify(out, null, 2))
await llm.dispose()
for (const p of peers) await p.proc.close()
