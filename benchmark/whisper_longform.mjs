// Long-form Whisper quality and speed: WER beside × real time for each of our
// modes and mlx-whisper, on one long file with a known transcript.
//
//   node benchmark/whisper_longform.mjs --model HF_DIR --peer-model MLX_DIR \
//        --audio LONG.wav --reference LONG.txt [--configs b1,b8,b16,b16+vad,mlx-whisper]
//        [--runs 7] [--dtype float16] [--budget-s 520] [--json out.json]
//
// Method: every run is its own process (ours: a node child; mlx-whisper: a
// Python peer process), alone on the machine, the configurations alternating
// round by round. Each process loads the model, warms up (ours: `warmup()` at
// the configuration's batch size, since 2026-11-25; both: a transcription of
// the first 30 s; MLX compiles kernels and sizes buffers on first use) and then times one transcription of the
// whole file; load and warm-up are not in the time. Both sides use their
// defaults (greedy with temperature fallback, timestamps, English).
// LONG.wav/.txt: `cargo run --release -p mlx-napi-core --example longform_eval --
// write LONG.wav LONG.txt 6` (≈ 21 min of real and synthetic speech).
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'
import { Peer } from './peer.mjs'
import { summarize } from './stats.mjs'
import { readWav, writeWav } from './wav.mjs'
import { longestDeletionRun, wordErrorRate } from './wer.mjs'

const { values: a } = parseArgs({
  options: {
    child: { type: 'string' },
    model: { type: 'string' },
    'peer-model': { type: 'string' },
    audio: { type: 'string' },
    warm: { type: 'string' },
    reference: { type: 'string' },
    configs: { type: 'string', default: 'b1,b8,b16,mlx-whisper' },
    runs: { type: 'string', default: '7' },
    dtype: { type: 'string', default: 'float16' },
    'budget-s': { type: 'string' },
    json: { type: 'string' },
  },
})

// ---- one timed run of ours, in this (child) process ------------------------------
if (a.child) {
  const require = createRequire(import.meta.url)
  const { loadWhisper } = require('../index.js')
  const [, batch, vad] = /^b(\d+)(\+vad)?$/.exec(a.child)
  const options = { language: 'en', batchSize: Number(batch), ...(vad ? { vad: true } : {}) }
  const t0 = performance.now()
  const w = await loadWhisper(a.model, { dtype: a.dtype })
  const loadMs = performance.now() - t0
  await w.warmup({ batchSize: options.batchSize })
  await w.transcribe(a.warm, options)
  const t = performance.now()
  const r = await w.transcribe(a.audio, options)
  const wallMs = performance.now() - t
  process.stdout.write(JSON.stringify({ load_ms: loadMs, wall_ms: wallMs, duration: r.duration, text: r.text, segments: r.segments.length }) + '\n')
  process.exit(0)
}

function runChild(config) {
  return new Promise((resolve, reject) => {
    const args = [new URL(import.meta.url).pathname, '--child', config, '--model', a.model, '--audio', a.audio, '--warm', warmPath, '--dtype', a.dtype]
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (d) => (out += d))
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`${config}: exit ${code}`))))
  })
}

async function runPeer() {
  const peer = new Peer(new URL('./peers/mlx_whisper_peer.py', import.meta.url).pathname)
  try {
    const load = await peer.request({ op: 'load', model: a['peer-model'], dtype: a.dtype })
    const options = { language: 'en' }
    await peer.request({ op: 'transcribe', audio: warmPath, options })
    const r = await peer.request({ op: 'transcribe', audio: a.audio, options })
    return { load_ms: load.load_ms, wall_ms: r.total_ms, duration: r.duration, text: r.text, segments: r.segments }
  } finally {
    await peer.close()
  }
}

const reference = readFileSync(a.reference, 'utf8')
const wav = readWav(a.audio)
const warmPath = join(mkdtempSync(join(tmpdir(), 'lf-')), 'warm-30s.wav')
writeWav(warmPath, wav.samples.subarray(0, 30 * 16000), 16000)
const configs = a.configs.split(',')
const runs = Object.fromEntries(configs.map((c) => [c, []]))
const start = performance.now()
let roundMs = 0
for (let i = 0; i < Number(a.runs); i++) {
  const roundStart = performance.now()
  if (a['budget-s'] && i > 0 && performance.now() - start + roundMs > Number(a['budget-s']) * 1e3 - 10e3) {
    console.error(`budget: stopping after ${i} rounds`)
    break
  }
  const order = i % 2 ? [...configs].reverse() : configs
  for (const c of order) {
    const r = c === 'mlx-whisper' ? await runPeer() : await runChild(c)
    r.speed = r.duration / (r.wall_ms / 1e3)
    r.wer = wordErrorRate(reference, r.text)
    r.longest_deleted_run = longestDeletionRun(reference, r.text)
    runs[c].push(r)
    console.error(`round ${i + 1} ${c}: ${(r.wall_ms / 1e3).toFixed(2)} s, ${r.speed.toFixed(1)}× real time, WER ${r.wer.wer.toFixed(2)} %`)
  }
  roundMs = Math.max(roundMs, performance.now() - roundStart)
}

const peerSpeed = runs['mlx-whisper']?.length ? summarize(runs['mlx-whisper'].map((r) => r.speed)).median : null
const fmt = (s, d = 1) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`
console.log(`Audio: ${a.audio}, ${(wav.samples.length / 16000 / 60).toFixed(1)} min; runs per configuration: ${runs[configs[0]].length}`)
console.log('| configuration | WER % | longest run of lost words | × real time, median (min–max) | vs mlx-whisper |')
console.log('| --- | --- | --- | --- | --- |')
for (const c of configs) {
  if (!runs[c].length) continue
  const speed = summarize(runs[c].map((r) => r.speed))
  const wers = [...new Set(runs[c].map((r) => r.wer.wer.toFixed(2)))].join(' / ')
  const ratio = peerSpeed ? `${(speed.median / peerSpeed).toFixed(2)}×` : '–'
  const lost = Math.max(...runs[c].map((r) => r.longest_deleted_run))
  console.log(`| ${c} | ${wers} | ${lost} | ${fmt(speed)} | ${ratio} |`)
}
if (a.json) writeFileSync(a.json, JSON.stringify({ audio: a.audio, configs, runs }, null, 1))
