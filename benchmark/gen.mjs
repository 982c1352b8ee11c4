#!/usr/bin/env node
// Generation benchmark, method of issue #14: each side alone in its own
// process (mlx-napi: gen_side.mjs; mlx-lm: peers/mlx_lm_side.py), the
// processes alternating (ours first in even runs, mlx-lm first in odd ones),
// ≥ 7 runs each, min / median / max. Nothing else of ours runs beside a
// measured process (llm.mjs kept both resident in one machine, which spread
// its numbers).
//
//   node benchmark/gen.mjs --mode decode      --model DIR [--name N] [--runs 7] [--tokens 256] [--prompt 128]
//                          [--bandwidth GBPS]   (measured copy bandwidth: adds the roofline column)
//   node benchmark/gen.mjs --mode streams     --model DIR [--streams 1,4,16,64] [--stream-tokens 128] [--stream-prompt 64]
//   node benchmark/gen.mjs --mode first-token --model DIR [--runs 7] [--cold-runs 2]
//   common: [--peer mlx-lm|mlx-napi-eager|mlx-napi-masked|none] [--json F] [--budget-s S] [--python python3]
//
// --peer mlx-napi-eager: our own side with the sampler's draw chain eager
// (MLX_NAPI_COMPILE_SAMPLER=0) against the default (compiled on a GPU), the
// two alternating like any peer: the compiled sampler's A/B (issue #14).
// --peer mlx-napi-masked: our own side with MLX's masked attention in batch
// steps (MLX_NAPI_PADDED_ATTENTION=0) instead of the CUDA padded-attention
// kernel: that kernel's A/B on concurrent streams.
//
// first-token: "cold" runs start with empty kernel caches (a fresh
// MLX_PTX_CACHE_DIR and CUDA_CACHE_PATH each, like a new machine or
// container); "warm" runs reuse the side's own caches, filled by its cold
// runs (each side has its own, so neither warms the other's).
// --budget-s stops starting runs once the time is spent (the table says how
// many ran); a device call has 10 minutes.
import { spawn } from 'node:child_process'
import {
  closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { summarize } from './stats.mjs'

const { values: a } = parseArgs({
  options: {
    mode: { type: 'string' },
    model: { type: 'string' },
    name: { type: 'string' },
    runs: { type: 'string', default: '7' },
    'cold-runs': { type: 'string', default: '2' },
    prompt: { type: 'string', default: '128' },
    tokens: { type: 'string', default: '256' },
    streams: { type: 'string', default: '1,4,16,64' },
    'stream-prompt': { type: 'string', default: '64' },
    'stream-tokens': { type: 'string', default: '128' },
    bandwidth: { type: 'string' },
    peer: { type: 'string', default: 'mlx-lm' },
    python: { type: 'string', default: process.env.PYTHON ?? 'python3' },
    json: { type: 'string' },
    'budget-s': { type: 'string', default: '0' },
  },
})
if (!a.model || !['decode', 'streams', 'first-token'].includes(a.mode)) {
  throw new Error('usage: --mode decode|streams|first-token --model DIR (see the header)')
}
const name = a.name ?? a.model.split('/').filter(Boolean).pop()
const runs = Number(a.runs)
const started = Date.now()
const budgetMs = Number(a['budget-s']) * 1e3
const withinBudget = () => !budgetMs || Date.now() - started < budgetMs
const here = (rel) => fileURLToPath(new URL(rel, import.meta.url))

const passed = ['--mode', a.mode, '--model', a.model, '--prompt', a.prompt, '--tokens', a.tokens,
  '--streams', a.streams, '--stream-prompt', a['stream-prompt'], '--stream-tokens', a['stream-tokens']]
const SIDES = {
  'mlx-napi': () => [process.execPath, [here('./gen_side.mjs'), ...passed]],
  'mlx-napi-eager': () => [process.execPath, [here('./gen_side.mjs'), ...passed], { MLX_NAPI_COMPILE_SAMPLER: '0' }],
  'mlx-napi-masked': () => [process.execPath, [here('./gen_side.mjs'), ...passed], { MLX_NAPI_PADDED_ATTENTION: '0' }],
  'mlx-lm': () => [a.python, [here('./peers/mlx_lm_side.py'), ...passed]],
}
const sides = ['mlx-napi', ...(a.peer === 'none' ? [] : [a.peer])]
for (const s of sides) if (!SIDES[s]) throw new Error(`--peer: mlx-lm, mlx-napi-eager, mlx-napi-masked or none, got ${s}`)

const exitDeaths = []
/** Runs one side in a fresh process; resolves with its JSON line. */
function runSide(side, env = {}) {
  const [cmd, args, sideEnv = {}] = SIDES[side]()
  const t0 = Date.now()
  const extra = a.mode === 'first-token' ? ['--t0', String(t0)] : []
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args, ...extra], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, PYTHONUNBUFFERED: '1', ...sideEnv, ...env },
    })
    let stdout = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop()
      // A process that printed its result and then died by a signal at exit
      // (seen: MLX CUDA teardown) still measured; the death is counted and
      // reported below the table instead of discarding the round.
      if (signal && line) {
        process.stderr.write(`gen.mjs: ${side} printed its result, then died by ${signal} at exit\n`)
        exitDeaths.push({ side, signal })
        return resolve(JSON.parse(line))
      }
      if (code !== 0 || !line) return reject(new Error(`${side} exited with ${code ?? signal}: ${stdout.slice(-500)}`))
      resolve(JSON.parse(line))
    })
  })
}

/** `n` alternating rounds (ours first in even rounds); per side, the replies. */
async function alternate(n, envOf = () => ({})) {
  const bySide = Object.fromEntries(sides.map((s) => [s, []]))
  for (let i = 0; i < n && withinBudget(); i++) {
    const order = i % 2 === 0 ? sides : [...sides].reverse()
    for (const s of order) bySide[s].push(await runSide(s, envOf(s, i)))
    process.stderr.write(`gen.mjs: ${a.mode} round ${i + 1}/${n} done\n`)
  }
  return bySide
}

const fmt = (s, digits = 1) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`
const rows = []
function row(label, bySide, pick, { digits = 1, higherIsBetter = true, extra, noRatio = false } = {}) {
  const stats = {}
  for (const s of sides) {
    const values = bySide[s].map(pick).filter((v) => Number.isFinite(v))
    if (values.length) stats[s] = summarize(values)
  }
  const ours = stats['mlx-napi']
  const peer = stats[sides[1]]
  const ratio = ours && peer && !noRatio
    ? (higherIsBetter ? ours.median / peer.median : peer.median / ours.median)
    : null
  const cells = sides.map((s) => (stats[s] ? `${fmt(stats[s], digits)} [${stats[s].runs}]` : '–'))
  if (sides.length > 1) cells.push(ratio ? `${ratio.toFixed(2)}×` : '–')
  if (extra !== undefined) cells.push(extra)
  console.log(`| ${label} | ${cells.join(' | ')} |`)
  rows.push({ label, stats, ratio, extra })
}

// What a generated checkpoint is (benchmark/models/make_random_mlx.py writes
// random_model.json), printed under the table's title: e.g. a depth cut.
const provenance = join(a.model, 'random_model.json')
const modelNote = existsSync(provenance) ? JSON.parse(readFileSync(provenance, 'utf8')).note : null

function header(extraColumn) {
  const cols = sides.map((s) => `${s} median (min–max) [runs]`)
  if (sides.length > 1) cols.push('ratio (> 1: mlx-napi faster)')
  if (extraColumn) cols.push(extraColumn)
  console.log(`\n${name} — ${a.mode}, each side alone in its own process, alternating\n`)
  if (modelNote) console.log(`Model: ${modelNote}.\n`)
  console.log(`| case | ${cols.join(' | ')} |`)
  console.log(`| --- |${' --- |'.repeat(cols.length)}`)
}

/** Bytes of the checkpoint's weight files (what a decode step reads at least once). */
function weightBytes(dir) {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .reduce((sum, f) => sum + statSync(join(dir, f)).size, 0)
}

/** Each tensor's bytes, from the safetensors headers (no tensor data read). */
function tensorBytes(dir) {
  const sizes = {}
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
    const fd = openSync(join(dir, f), 'r')
    try {
      const word = Buffer.alloc(8)
      readSync(fd, word, 0, 8, 0)
      const header = Buffer.alloc(Number(word.readBigUInt64LE()))
      readSync(fd, header, 0, header.length, 8)
      for (const [t, info] of Object.entries(JSON.parse(header.toString('utf8')))) {
        if (t !== '__metadata__') sizes[t] = info.data_offsets[1] - info.data_offsets[0]
      }
    } finally {
      closeSync(fd)
    }
  }
  return sizes
}

/** Bytes one batch-1 decode step reads (the roofline's divisor): the weight
 *  files, less what a step does not touch —
 *  - a mixture of experts runs each token through k of its E experts per
 *    layer (k distinct ones), so the expert tensors (`.switch_mlp.` /
 *    `.experts.`) count k/E;
 *  - a model with its own `lm_head` looks up one row of its input embedding
 *    table per token, so that table does not count (a tied table is the head,
 *    read whole, and counts).
 *  Everything else counts whole. */
function decodeBytes(dir) {
  const files = weightBytes(dir)
  const sizes = Object.entries(tensorBytes(dir))
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))
  const c = config.text_config ?? config
  const experts = c.num_experts ?? c.num_local_experts
  const k = c.num_experts_per_tok
  const moe = experts > 0 && k > 0
  const sum = (re) => sizes.filter(([t]) => re.test(t)).reduce((n, [, b]) => n + b, 0)
  const expertBytes = moe ? sum(/\.(switch_mlp|experts)\./) : 0
  const ownHead = sizes.some(([t]) => /(^|\.)lm_head\.weight$/.test(t))
  const embedBytes = ownHead ? sum(/(^|\.)embed_tokens\.(weight|scales|biases)$/) : 0
  const bytes = files - embedBytes - (moe ? expertBytes * (1 - k / experts) : 0)
  return { bytes, files, embedBytes, ...(moe ? { experts, k, expertBytes } : {}) }
}

let extraInfo = {}
if (a.mode === 'decode') {
  const bySide = await alternate(runs)
  const bw = a.bandwidth ? Number(a.bandwidth) * 1e9 : null
  const read = decodeBytes(a.model)
  const bytes = read.bytes
  const roofline = bw ? bw / bytes : null
  const gb = (n) => `${(n / 1e9).toFixed(2)} GB`
  header(roofline ? `mlx-napi % of roofline (${(bw / 1e12).toFixed(2)} TB/s ÷ ${gb(bytes)} read per token = ${roofline.toFixed(0)} tok/s)` : null)
  for (const setting of ['greedy', 'all filters']) {
    const ours = summarize(bySide['mlx-napi'].map((r) => r.decode_tps[setting]))
    row(`decode tok/s, ${setting}, ${a.tokens} tokens`, bySide, (r) => r.decode_tps[setting], {
      extra: roofline ? `${((100 * ours.median) / roofline).toFixed(1)} %` : undefined,
    })
  }
  // Full-sampling cost, per process (both settings ran in the same one).
  row('full-sampling cost vs greedy, % (lower is better)', bySide,
    (r) => 100 * (1 - r.decode_tps['all filters'] / r.decode_tps.greedy), { noRatio: true, extra: roofline ? '' : undefined })
  const reads = summarize(bySide['mlx-napi'].map((r) => r.host_reads_per_token.greedy))
  console.log(`\nhost reads per token (mlx-napi, greedy): ${reads.median.toFixed(3)}`)
  if (read.bytes !== read.files) {
    const parts = []
    if (read.experts) {
      parts.push(`${read.k}/${read.experts} of the expert weights (${gb(read.expertBytes)}): a token goes ` +
        `through ${read.k} of each layer's ${read.experts} experts`)
    }
    if (read.embedBytes) parts.push(`not the input embedding table (${gb(read.embedBytes)}): one row per token`)
    console.log(`\nBytes read per token: ${gb(bytes)} of the weight files' ${gb(read.files)} — ${parts.join('; ')}.`)
  }
  extraInfo = {
    bandwidth_bytes_per_s: bw,
    weight_bytes: read.files,
    decode_read_bytes: bytes,
    input_embedding_bytes_not_read: read.embedBytes,
    ...(read.experts ? { moe: { experts: read.experts, per_token: read.k, expert_bytes: read.expertBytes } } : {}),
    roofline_tps: roofline,
    model_note: modelNote,
    raw: bySide,
  }
} else if (a.mode === 'streams') {
  const bySide = await alternate(runs)
  header('mlx-napi aggregate ÷ its 1-stream rate')
  const counts = a.streams.split(',')
  const single = summarize(bySide['mlx-napi'].map((r) => r.aggregate_tps[counts[0]])).median
  for (const c of counts) {
    const ours = summarize(bySide['mlx-napi'].map((r) => r.aggregate_tps[c])).median
    row(`aggregate tok/s, ${c} concurrent streams × ${a['stream-tokens']} tokens`, bySide, (r) => r.aggregate_tps[c], {
      extra: `${(ours / single).toFixed(2)}×`,
    })
  }
  for (const c of counts) {
    row(`per-stream decode tok/s (median stream), ${c} streams`, bySide, (r) => r.per_stream_decode_tps[c], { extra: '' })
  }
  for (const c of counts) {
    row(`last stream's first token, ms, ${c} streams (lower is better)`, bySide,
      (r) => r.last_first_token_ms?.[c], { higherIsBetter: false, extra: '' })
  }
  extraInfo = { raw: bySide }
} else {
  // Cold: fresh empty caches per run and side. Warm: each side's own caches.
  const made = []
  const fresh = () => {
    made.push(mkdtempSync(join(tmpdir(), 'mlx-kcache-')))
    return made[made.length - 1]
  }
  const coldCaches = (side) => {
    const dir = fresh()
    return { MLX_PTX_CACHE_DIR: join(dir, 'ptx'), CUDA_CACHE_PATH: join(dir, 'nv') }
  }
  const warmDirs = Object.fromEntries(sides.map((s) => [s, coldCaches(s)]))
  const cold = await alternate(Number(a['cold-runs']), (s, i) => (i === 0 ? warmDirs[s] : coldCaches(s)))
  const warm = await alternate(runs, (s) => warmDirs[s])
  header()
  row('process start → first token, ms, cold kernel caches', cold, (r) => r.first_token_ms, { digits: 0, higherIsBetter: false })
  row('process start → first token, ms, warm kernel caches', warm, (r) => r.first_token_ms, { digits: 0, higherIsBetter: false })
  extraInfo = { raw: { cold, warm } }
  for (const dir of made) rmSync(dir, { recursive: true, force: true })
}

if (exitDeaths.length) {
  const bySide = {}
  for (const d of exitDeaths) (bySide[d.side] ??= []).push(d)
  for (const [side, ds] of Object.entries(bySide)) {
    console.log(`\n${side}: ${ds.length} process(es) died by ${[...new Set(ds.map((d) => d.signal))].join('/')} after printing their result (at exit)`)
  }
}
const out = {
  model: name,
  mode: a.mode,
  sides,
  date: new Date().toISOString(),
  args: a,
  rows,
  exit_deaths: exitDeaths,
  ...extraInfo,
}
if (a.json) writeFileSync(a.json, JSON.stringify(out, null, 2))
