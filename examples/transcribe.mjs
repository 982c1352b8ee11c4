#!/usr/bin/env node
// Transcribes an audio file with a Whisper model, printing segments as they
// are decoded, and optionally writes SubRip / WebVTT / JSON files.
//
//   node examples/transcribe.mjs <model dir or repo id> <audio file>
//        [--srt out.srt] [--vtt out.vtt] [--json out.json]
//        [--language en|auto] [--task transcribe|translate]
//        [--batch-size N] [--beam-size N] [--tokenizer-dir DIR] [--no-warmup]
//
// Ctrl-C aborts the transcription (the promise rejects with an AbortError).
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { loadWhisper, toSRT, toVTT, toJSON } = require('../index.js')

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    srt: { type: 'string' },
    vtt: { type: 'string' },
    json: { type: 'string' },
    language: { type: 'string' },
    task: { type: 'string' },
    'batch-size': { type: 'string' },
    'beam-size': { type: 'string' },
    'tokenizer-dir': { type: 'string' },
    'no-warmup': { type: 'boolean' },
  },
})
if (positionals.length !== 2) {
  console.error(
    'usage: node examples/transcribe.mjs <model> <audio> [--srt out.srt] [--vtt out.vtt] ' +
      '[--json out.json] [--language en] [--task translate] [--batch-size N] [--beam-size N]',
  )
  process.exit(2)
}
const [model, audio] = positionals
const number = (flag) => (opts[flag] === undefined ? undefined : Number(opts[flag]))

const clock = (s) => {
  const m = Math.floor(s / 60)
  return `${String(m).padStart(2, '0')}:${(s - 60 * m).toFixed(2).padStart(5, '0')}`
}

try {
  const whisper = await loadWhisper(model, { tokenizerDir: opts['tokenizer-dir'] })
  if (!opts['no-warmup']) await whisper.warmup()
  const controller = new AbortController()
  process.once('SIGINT', () => controller.abort())

  const result = await whisper.transcribe(audio, {
    language: opts.language,
    task: opts.task,
    batchSize: number('batch-size'),
    beamSize: number('beam-size'),
    signal: controller.signal,
    onSegment: (s) => console.log(`[${clock(s.start)} → ${clock(s.end)}]${s.text}`),
    onProgress: (p) => {
      if (process.stderr.isTTY) {
        process.stderr.write(`  ${((100 * p.secondsDone) / p.secondsTotal).toFixed(0)}%\r`)
      }
    },
  })
  if (process.stderr.isTTY) process.stderr.write('\x1b[K')
  await whisper.dispose()

  const t = result.timings
  console.error(
    `${result.duration.toFixed(1)} s of audio (${result.language}) in ` +
      `${(t.totalMs / 1000).toFixed(2)} s: real-time factor ${t.realTimeFactor.toFixed(3)} ` +
      `(encode ${t.encodeMs.toFixed(0)} ms, decode ${t.decodeMs.toFixed(0)} ms)`,
  )
  for (const [flag, format] of [
    ['srt', toSRT],
    ['vtt', toVTT],
    ['json', toJSON],
  ]) {
    if (opts[flag]) {
      writeFileSync(opts[flag], format(result))
      console.error(`wrote ${opts[flag]}`)
    }
  }
} catch (err) {
  console.error(`${err.code ?? err.name}: ${err.message}`)
  process.exitCode = err.name === 'AbortError' ? 130 : 1
}
