#!/usr/bin/env node
// Where a Whisper configuration loses words: transcribes one file with each
// batch size given, then prints WER, every run of ≥ --min consecutive reference
// words missing from the transcript (a minimum-edit alignment, the rules of
// wer.mjs), the lost words, and the segments around each run (start/end,
// text). For issue #9's investigations; not a speed benchmark.
//
//   node benchmark/whisper_lost_runs.mjs --model DIR --audio F.wav --reference F.txt
//        [--batch 1,16] [--min 8] [--language en] [--json OUT.json]
import { createRequire } from 'node:module'
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { deletionRuns, normalize, wordErrorRate } from './wer.mjs'

const require = createRequire(import.meta.url)
const { loadWhisper } = require('../index.js')
const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    audio: { type: 'string' },
    reference: { type: 'string' },
    batch: { type: 'string', default: '1,16' },
    min: { type: 'string', default: '8' },
    language: { type: 'string', default: 'en' },
    json: { type: 'string' },
  },
})
if (!a.model || !a.audio || !a.reference) throw new Error('usage: --model DIR --audio F --reference F.txt (see the header)')

const reference = readFileSync(a.reference, 'utf8')
const r = normalize(reference)
const model = await loadWhisper(a.model)
const report = []
for (const batchSize of a.batch.split(',').map(Number)) {
  const t0 = performance.now()
  const result = await model.transcribe(a.audio, { batchSize, language: a.language })
  const seconds = (performance.now() - t0) / 1e3
  const segments = result.segments.map((s) => ({ start: s.start, end: s.end, text: s.text }))
  // Hypothesis word index → segment, to place each run in time.
  const owner = []
  segments.forEach((s, k) => normalize(s.text).forEach(() => owner.push(k)))
  const runs = deletionRuns(reference, result.text, Number(a.min)).map((run) => {
    const at = owner[Math.min(run.hyp, owner.length - 1)] ?? 0
    return {
      ...run,
      lost: r.slice(run.ref, run.ref + run.length).join(' '),
      segments: segments.slice(Math.max(0, at - 2), at + 3),
    }
  })
  const { wer } = wordErrorRate(reference, result.text)
  console.log(`\n## batch ${batchSize}: WER ${wer.toFixed(2)} %, ${seconds.toFixed(1)} s, ${segments.length} segments, ${runs.length} run(s) of ≥ ${a.min} lost words`)
  for (const run of runs) {
    console.log(`\n- ${run.length} words lost after reference word ${run.ref}: "${run.lost}"`)
    for (const s of run.segments) console.log(`    [${s.start.toFixed(2)}–${s.end.toFixed(2)}]${s.text}`)
  }
  report.push({ batchSize, wer, seconds, runs, segments })
}
if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 1))
