#!/usr/bin/env node
// Whisper transcription benchmark: mlx-napi vs mlx-whisper on the same MLX
// build, same machine, same weights, same audio, alternating runs.
//
//   node benchmark/whisper.mjs --model HF_DIR --peer-model MLX_DIR [--name N]
//        [--random] [--lengths 600,1800] [--rounds 5] [--long-rounds 3]
//        [--batch 1,8,16] [--sample-len 64] [--dtype float16] [--json out.json]
//
// --model is the Hugging Face layout our addon loads; --peer-model the same
// weights in mlx-whisper's layout (benchmark/models/make_random_whisper.py
// writes both, and converts real checkpoints). Inputs are built from the real
// 16 kHz clips in ../shared/audio (jfk.wav + librivox/*.wav, repeated with
// 0.4 s pauses) and written as WAV files to a temp folder; both sides get the
// file and decode it themselves (counted in their time).
//
// Rows: model load; speed (× real time = audio seconds / wall seconds) at each
// length for our batch sizes vs mlx-whisper's sequential decode; our per-stage
// split (WAV decode, mel, encoder, decoder) and mlx-whisper's (separate
// evaluated run); language-detection cost (multilingual models: a 30 s input
// transcribed with the language left to detection minus with it given).
//
// --random: random weights never stop on their own and emit garbage
// timestamps, so both sides are forced to identical work: greedy at one
// temperature (no fallback re-decodes), timestamps off, no conditioning on
// previous text, every id ≥ <|endoftext|> suppressed (no end of text, no
// timestamps, no special tokens), so every 30 s window decodes exactly
// --sample-len tokens. Decoded token counts are printed to show it.
import { mkdtempSync, readdirSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Peer } from './peer.mjs'
import { median, summarize } from './stats.mjs'
import { readWav, writeWav, concatenateClips } from './wav.mjs'

const scriptStart = performance.now()
const require = createRequire(import.meta.url)
// MLX_NAPI_MODULE: another build of the addon (default: this checkout's).
const mlx = require(process.env.MLX_NAPI_MODULE ?? '../index.js')

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    'peer-model': { type: 'string' },
    name: { type: 'string' },
    random: { type: 'boolean', default: false },
    audio: { type: 'string', default: process.env.MLX_TEST_SHARED ? join(process.env.MLX_TEST_SHARED, 'audio') : fileURLToPath(new URL('../../shared/audio', import.meta.url)) },
    lengths: { type: 'string', default: '600,1800' },
    rounds: { type: 'string', default: '5' },
    'long-rounds': { type: 'string', default: '3' },
    'long-from': { type: 'string', default: '1200' },
    batch: { type: 'string', default: '1,8,16' },
    'sample-len': { type: 'string', default: '64' },
    'lang-rounds': { type: 'string', default: '7' },
    'load-rounds': { type: 'string', default: '3' },
    dtype: { type: 'string', default: 'float16' },
    json: { type: 'string' },
    'no-peer': { type: 'boolean', default: false },
    'hf-peer': { type: 'boolean', default: false },
    'hf-batch': { type: 'string', default: '16' },
    // Wall-clock budget for the whole script (e.g. a device call's limit):
    // rounds are cut, longest input first, to fit, and the table says so.
    'budget-s': { type: 'string' },
  },
})
if (!a.model) throw new Error('--model DIR (Hugging Face layout) is required')
if (!a['no-peer'] && !a['peer-model']) throw new Error('--peer-model DIR (mlx-whisper layout) is required, or --no-peer')
const name = a.name ?? a.model.split('/').filter(Boolean).pop()
const lengths = a.lengths.split(',').map(Number)
const batchSizes = a.batch.split(',').map(Number)
const sampleLen = Number(a['sample-len'])
const roundsFor = (seconds) => Number(seconds >= Number(a['long-from']) ? a['long-rounds'] : a.rounds)

const config = JSON.parse(readFileSync(join(a.model, 'config.json'), 'utf8'))
const vocabSize = config.vocab_size
const multilingual = vocabSize >= 51865
// <|endoftext|>: 50256 in English-only vocabularies, 50257 in multilingual ones.
const eot = multilingual ? 50257 : 50256

// ---- inputs ------------------------------------------------------------------
const clipPaths = [join(a.audio, 'jfk.wav'), ...readdirSync(join(a.audio, 'librivox')).filter((f) => f.endsWith('.wav')).sort().map((f) => join(a.audio, 'librivox', f))]
const clips = clipPaths.map((p) => {
  const w = readWav(p)
  if (w.sampleRate !== 16000 || w.channels !== 1) throw new Error(`${p}: expected 16 kHz mono`)
  return w.samples
})
const tmp = mkdtempSync(join(tmpdir(), 'whisper-bench-'))
const inputs = {}
for (const seconds of [30, ...lengths]) {
  const path = join(tmp, `speech-${seconds}s.wav`)
  writeWav(path, concatenateClips(clips, seconds), 16000)
  inputs[seconds] = path
}
console.error(`inputs: ${Object.values(inputs).join(', ')} (from ${clipPaths.length} clips)`)

// ---- options: the same decoding on both sides ---------------------------------
// Ours (camelCase, binding) and mlx-whisper's (transcribe() keyword arguments).
function sharedOptions({ language }) {
  if (!a.random) {
    // Real weights: both libraries' defaults (greedy with temperature fallback,
    // timestamps, conditioning on previous text), language given.
    return { ours: { language }, peer: { language } }
  }
  const suppress = Array.from({ length: vocabSize - eot }, (_, i) => eot + i)
  return {
    ours: {
      language,
      temperature: 0,
      timestamps: false,
      conditionOnPreviousText: false,
      sampleLen,
      suppressTokens: suppress,
      // null = never: no window is skipped as silence or re-decoded.
      noSpeechThreshold: null,
      compressionRatioThreshold: null,
      logprobThreshold: null,
    },
    peer: {
      language,
      temperature: 0.0,
      without_timestamps: true,
      condition_on_previous_text: false,
      sample_len: sampleLen,
      suppress_tokens: suppress,
      no_speech_threshold: null,
      compression_ratio_threshold: null,
      logprob_threshold: null,
    },
  }
}
const fixedLanguage = 'en'
const opts = sharedOptions({ language: fixedLanguage })
// transformers' pipeline (--hf-peer): fp16, SDPA, batches of 30 s chunks.
// Random weights: non-overlapping chunks (stride 0) so it decodes the same
// windows as the others, and the same forced tokens; real weights: its default
// overlapping chunks (5 s each side), as a user would run it.
const hfOptions = a.random
  ? {
      batch_size: Number(a['hf-batch']),
      chunk_length_s: 30,
      stride_length_s: 0,
      generate_kwargs: {
        language: fixedLanguage,
        task: 'transcribe',
        max_new_tokens: sampleLen,
        suppress_tokens: opts.ours.suppressTokens,
        num_beams: 1,
        do_sample: false,
      },
    }
  : { batch_size: Number(a['hf-batch']), chunk_length_s: 30, generate_kwargs: multilingual ? { language: fixedLanguage } : {} }

// ---- load (alternating, each timed; the last load of each is kept) -------------
// A peer that fails (an option it rejects, a crash) is dropped with its error
// noted above the table, so that the other numbers of a GPU run still come out.
class PeerSlot {
  constructor(label, script) {
    this.label = label
    this.proc = script ? new Peer(fileURLToPath(new URL(script, import.meta.url))) : null
    this.proc?.proc.stdin.on('error', () => {}) // EPIPE after a crash: reported by request()
    this.error = null
  }

  get active() {
    return this.proc !== null && this.error === null
  }

  async request(req) {
    if (!this.active) return null
    try {
      const r = await this.proc.request(req)
      if (r.error) throw new Error(r.error)
      return r
    } catch (e) {
      this.error = `${req.op}: ${e.message}`
      console.error(`${this.label} peer dropped: ${this.error}`)
      return null
    }
  }

  async close() {
    if (!this.proc) return
    if (this.error) this.proc.proc.kill()
    else await this.proc.close()
  }
}
const peer = new PeerSlot('mlx-whisper', a['no-peer'] ? null : './peers/mlx_whisper_peer.py')
const hf = new PeerSlot('transformers', a['hf-peer'] ? './peers/hf_whisper_peer.py' : null)
const loadOurs = []
const loadPeer = []
const loadHf = []
let w = null
for (let i = 0; i < Number(a['load-rounds']); i++) {
  if (w) await w.dispose?.()
  const t = performance.now()
  w = await mlx.loadWhisper(a.model, { dtype: a.dtype })
  loadOurs.push(performance.now() - t)
  const p = await peer.request({ op: 'load', model: a['peer-model'], dtype: a.dtype })
  if (p) loadPeer.push(p.load_ms)
  const h = await hf.request({ op: 'load', model: a.model, dtype: a.dtype })
  if (h) loadHf.push(h.load_ms)
}

// ---- runs -----------------------------------------------------------------------
function countTokens(segments) {
  return segments.reduce((n, s) => n + (s.tokens?.length ?? NaN), 0)
}
async function ours(path, options, batchSize) {
  const t = performance.now()
  const r = await w.transcribe(path, { ...options, batchSize })
  const wallMs = performance.now() - t
  return {
    wall_ms: wallMs,
    speed: r.duration / (wallMs / 1e3),
    timings: r.timings,
    segments: r.segments.length,
    windows: new Set(r.segments.map((s) => s.seek)).size,
    tokens: countTokens(r.segments),
    language: r.language,
    text_head: r.text.slice(0, 80),
  }
}
async function mlxWhisper(path, options, stages = false) {
  const r = await peer.request({ op: 'transcribe', audio: path, options, stages })
  if (!r) return null
  return { ...r, wall_ms: r.total_ms, speed: r.duration / (r.total_ms / 1e3), text_head: r.text.slice(0, 80), text: undefined }
}
async function transformers(path) {
  const r = await hf.request({ op: 'transcribe', audio: path, options: hfOptions })
  if (!r) return null
  return { ...r, wall_ms: r.total_ms, speed: r.duration / (r.total_ms / 1e3), text_head: r.text.slice(0, 80), text: undefined }
}

// Warm-up: MLX compiles kernels on first use (seconds on CUDA), per shape, so
// every configuration sees every input length once before timing.
await w.warmup()
const roundMs = {} // one warm-up round per length: an (over-)estimate of a timed round
const peerMs = {}
for (const seconds of lengths) {
  const t = performance.now()
  for (const b of batchSizes) await ours(inputs[seconds], opts.ours, b)
  const p = performance.now()
  await mlxWhisper(inputs[seconds], opts.peer)
  peerMs[seconds] = performance.now() - p
  await transformers(inputs[seconds])
  roundMs[seconds] = performance.now() - t
  console.error(`warm-up ${seconds} s: ${(roundMs[seconds] / 1e3).toFixed(1)} s for one run of each`)
}

// Rounds per length, cut to the budget if one is given (longest input first,
// never below 1); the language-detection runs are budgeted at 4 × 30 s each.
const plannedRounds = Object.fromEntries(lengths.map((s) => [s, roundsFor(s)]))
let langRounds = multilingual ? Number(a['lang-rounds']) : 0
let budgetNote = ''
if (a['budget-s']) {
  const left = Number(a['budget-s']) * 1e3 - (performance.now() - scriptStart) - 15e3 // margin: report, exit
  const shortest = Math.min(...lengths)
  const langRoundMs = (4 * roundMs[shortest] * 30) / shortest / (batchSizes.length + 1)
  const cost = () =>
    lengths.reduce((sum, s) => sum + plannedRounds[s] * roundMs[s] + (peer.active ? peerMs[s] : 0), 0) + langRounds * langRoundMs
  const byLength = [...lengths].sort((x, y) => y - x)
  while (cost() > left) {
    const s = byLength.find((l) => plannedRounds[l] > 1)
    if (s !== undefined) plannedRounds[s]--
    else if (langRounds > 1) langRounds--
    else break
  }
  const cut = lengths.filter((s) => plannedRounds[s] < roundsFor(s))
  if (cut.length || langRounds < Number(a['lang-rounds'])) {
    budgetNote = `Runs cut to fit the ${a['budget-s']} s budget: ${lengths.map((s) => `${s / 60} min ${plannedRounds[s]}`).join(', ')}; language detection ${langRounds}.`
  }
  console.error(`budget: ${(left / 1e3).toFixed(0)} s left after warm-up; rounds ${JSON.stringify(plannedRounds)}, language rounds ${langRounds}`)
}

const results = { speed: {}, stages: {}, language_detection: null }
for (const seconds of lengths) {
  const rounds = plannedRounds[seconds]
  const runs = { peer: [], hf: [], ...Object.fromEntries(batchSizes.map((b) => [`b${b}`, []])) }
  for (let i = 0; i < rounds; i++) {
    // Alternate who goes first, so neither always runs on a just-warmed GPU.
    const order = [...batchSizes.map((b) => `b${b}`), ...(peer.active ? ['peer'] : []), ...(hf.active ? ['hf'] : [])]
    if (i % 2) order.reverse()
    for (const who of order) {
      if (who === 'peer') runs.peer.push(await mlxWhisper(inputs[seconds], opts.peer))
      else if (who === 'hf') runs.hf.push(await transformers(inputs[seconds]))
      else runs[who].push(await ours(inputs[seconds], opts.ours, Number(who.slice(1))))
    }
  }
  runs.peer = runs.peer.filter(Boolean) // a dropped peer's failed call
  runs.hf = runs.hf.filter(Boolean)
  results.speed[seconds] = { rounds, runs }
  const med = (xs) => (xs.length ? median(xs).toFixed(1) : '–')
  console.error(`${seconds} s: × real time ${batchSizes.map((b) => `b${b} ${med(runs[`b${b}`].map((r) => r.speed))}`).join(', ')}, mlx-whisper ${med(runs.peer.map((r) => r.speed))}${a['hf-peer'] ? `, transformers ${med(runs.hf.map((r) => r.speed))}` : ''}`)
  // mlx-whisper's stage split needs forced evaluation: one extra, untimed run.
  const staged = await mlxWhisper(inputs[seconds], opts.peer, true)
  if (staged) results.stages[seconds] = { peer: staged }
}

// Language detection: a 30 s input (one window), language given vs detected.
if (langRounds > 0) {
  const detect = sharedOptions({ language: undefined })
  delete detect.ours.language
  detect.peer.language = null
  const runs = { ours_fixed: [], ours_auto: [], peer_fixed: [], peer_auto: [] }
  for (const o of [opts, detect]) {
    await ours(inputs[30], o.ours, 1)
    await mlxWhisper(inputs[30], o.peer)
  }
  for (let i = 0; i < langRounds; i++) {
    runs.ours_fixed.push(await ours(inputs[30], opts.ours, 1))
    runs.ours_auto.push(await ours(inputs[30], detect.ours, 1))
    const fixed = await mlxWhisper(inputs[30], opts.peer)
    const auto = await mlxWhisper(inputs[30], detect.peer)
    if (fixed && auto) {
      runs.peer_fixed.push(fixed)
      runs.peer_auto.push(auto)
    }
  }
  results.language_detection = runs
}

// ---- report -----------------------------------------------------------------------
const rows = []
const fmt = (s, digits = 2) => (s ? `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})` : '–')
function row(label, oursValues, peerValues, { higherIsBetter = true, digits = 2, note = '' } = {}) {
  const o = oursValues?.length ? summarize(oursValues) : null
  const p = peerValues?.length ? summarize(peerValues) : null
  // Ratio > 1 means mlx-napi is faster (speed: ours/peer; times: peer/ours).
  const ratio = o && p ? (higherIsBetter ? o.median / p.median : p.median / o.median) : null
  rows.push({ label, ours: o, peer: p, ratio, note })
  return `| ${label} | ${fmt(o, digits)} | ${fmt(p, digits)} | ${ratio ? ratio.toFixed(2) + '×' : '–'} |${note ? ' ' + note : ''}`
}
const lines = []
lines.push(row(`model load, ms (${a['load-rounds']} loads each)`, loadOurs, loadPeer, { higherIsBetter: false, digits: 0 }))
if (a['hf-peer']) lines.push(row(`model load, ms, vs transformers (from_pretrained + .to(cuda) + pipeline)`, loadOurs, loadHf, { higherIsBetter: false, digits: 0 }))
for (const seconds of lengths) {
  const { rounds, runs } = results.speed[seconds]
  const label = `${seconds / 60} min`
  for (const b of batchSizes) {
    lines.push(row(`× real time, ${label}, ours batch ${b} vs mlx-whisper (${rounds} runs)`, runs[`b${b}`].map((r) => r.speed), runs.peer.map((r) => r.speed)))
  }
  if (a['hf-peer']) {
    const chunks = `${hfOptions.batch_size} × 30 s chunks${a.random ? ', no overlap' : ', 5 s overlap'}`
    for (const b of batchSizes) {
      lines.push(row(`× real time, ${label}, ours batch ${b} vs transformers (fp16, SDPA, ${chunks}; ${rounds} runs)`, runs[`b${b}`].map((r) => r.speed), runs.hf.map((r) => r.speed)))
    }
  }
  const med = (xs) => (xs.length ? median(xs) : NaN)
  const work = batchSizes.map((b) => `b${b} ${med(runs[`b${b}`].map((r) => r.tokens))} tok/${med(runs[`b${b}`].map((r) => r.windows))} win`).join(', ')
  lines.push(`| decoded work, ${label} | ${work} | ${runs.peer.length ? `${med(runs.peer.map((r) => r.tokens))} tok/${med(runs.peer.map((r) => r.windows))} win` : '–'} | |`)
  for (const b of batchSizes) {
    const t = (k) => median(runs[`b${b}`].map((r) => r.timings[k]))
    const total = t('totalMs')
    const pct = (k) => `${t(k).toFixed(0)} ms (${((100 * t(k)) / total).toFixed(0)} %)`
    lines.push(`| stages, ${label}, ours batch ${b}: WAV decode / mel / encode / decode | ${pct('decodeAudioMs')} / ${pct('melMs')} / ${pct('encodeMs')} / ${pct('decodeMs')} of ${total.toFixed(0)} ms | | |`)
    rows.push({ label: `stages ${seconds}s b${b}`, ours: Object.fromEntries(['decodeAudioMs', 'melMs', 'encodeMs', 'decodeMs', 'totalMs'].map((k) => [k, t(k)])) })
  }
  const s = results.stages[seconds]?.peer
  if (s) {
    const rest = s.total_ms - s.decode_audio_ms - s.mel_ms - s.encode_ms
    const pct = (v) => `${v.toFixed(0)} ms (${((100 * v) / s.total_ms).toFixed(0)} %)`
    lines.push(`| stages, ${label}, mlx-whisper (1 evaluated run): WAV read / mel / encode (${s.encoder_calls} calls) / rest | | ${pct(s.decode_audio_ms)} / ${pct(s.mel_ms)} / ${pct(s.encode_ms)} / ${pct(rest)} of ${s.total_ms.toFixed(0)} ms | |`)
  }
}
if (results.language_detection) {
  const r = results.language_detection
  const cost = (auto, fixed) => (auto.length ? [median(auto.map((x) => x.wall_ms)) - median(fixed.map((x) => x.wall_ms))] : [])
  const ourCost = cost(r.ours_auto, r.ours_fixed)
  const peerCost = cost(r.peer_auto, r.peer_fixed)
  // A difference of medians: no spread and no meaningful ratio.
  const label = `language detection cost, ms (30 s input, median detected − median given, ${langRounds} runs each)`
  lines.push(`| ${label} | ${ourCost[0].toFixed(1)} | ${peerCost.length ? peerCost[0].toFixed(1) : '–'} | |`)
  rows.push({ label, ours: { median: ourCost[0] }, peer: peerCost.length ? { median: peerCost[0] } : null })
  const enc = median(r.ours_fixed.map((x) => x.timings.encodeMs))
  const peerEnc = results.stages[lengths[0]]?.peer
  lines.push(`| one encoder window, ms (reference for the row above) | ${enc.toFixed(1)} | ${peerEnc ? (peerEnc.encode_ms / peerEnc.encoder_calls).toFixed(1) : '–'} | |`)
  lines.push(`| detected language (random weights: arbitrary) | ${r.ours_auto[0]?.language ?? '–'} | ${r.peer_auto[0]?.language ?? '–'} | |`)
}

const info = mlx.backendInfo()
console.log(`\n### ${name} (${a.random ? 'random weights, forced equal work' : 'real weights'}), ${info.deviceName ?? info.device}, MLX ${info.mlxVersion}, dtype ${a.dtype}\n`)
if (a.random) {
  console.log(`Forced work: greedy at temperature 0 only, timestamps off, no conditioning on previous text, ids ≥ ${eot} suppressed (no end of text), so every window decodes exactly ${sampleLen} tokens on both sides.\n`)
}
if (budgetNote) console.log(budgetNote + '\n')
for (const p of [peer, hf]) {
  if (p.error) console.log(`**${p.label} peer dropped** (${p.error}): its cells are empty or partial.\n`)
}
console.log('| case | mlx-napi median (min–max) | peer median (min–max): mlx-whisper unless the row names another | ratio (> 1: mlx-napi faster) |')
console.log('| --- | --- | --- | --- |')
for (const l of lines) console.log(l)

const out = {
  model: name,
  random_weights: a.random,
  device: info.deviceName ?? info.device,
  backend: info.backend,
  mlx: info.mlxVersion,
  dtype: a.dtype,
  date: new Date().toISOString(),
  sample_len: a.random ? sampleLen : null,
  budget_note: budgetNote || null,
  peer_errors: { 'mlx-whisper': peer.error, transformers: hf.error },
  options: opts,
  load_ms: { ours: loadOurs, peer: loadPeer, transformers: loadHf },
  transformers_options: a['hf-peer'] ? hfOptions : null,
  rows,
  results,
}
if (a.json) writeFileSync(a.json, JSON.stringify(out, null, 2))
await w.dispose?.()
await peer.close()
await hf.close()
