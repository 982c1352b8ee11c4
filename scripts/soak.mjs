#!/usr/bin/env node
// Memory soak (issue #10): N generations and M transcriptions in one process,
// then load/dispose cycles. Prints RSS and MLX active memory after warm-up and
// at the end, and their growth in percent (target: < 5 %), and checks that
// dispose() returns MLX's active memory to its baseline.
//
//   node scripts/soak.mjs [generations=1000] [transcriptions=200] [cycles=20]
//
// Run it on an idle machine; it takes long on a CPU (it is not part of CI).
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const { loadLLM, loadWhisper, memoryStats } = require(join(root, 'index.js'))
const shared = process.env.MLX_TEST_SHARED ?? join(root, '..', 'shared')
const [generations = 1000, transcriptions = 200, cycles = 20] = process.argv.slice(2).map(Number)

const mb = (b) => (b / 1048576).toFixed(1)
const snapshot = () => ({ rss: process.memoryUsage().rss, active: memoryStats().active })
const growth = (a, b) => ((100 * (b - a)) / a).toFixed(2)
function report(name, base, end) {
  console.log(`${name}: RSS ${mb(base.rss)} → ${mb(end.rss)} MB (${growth(base.rss, end.rss)} %), ` +
    `MLX active ${mb(base.active)} → ${mb(end.active)} MB (${growth(base.active || 1, end.active || 1)} %)`)
}

function readWav(path) {
  const b = readFileSync(path)
  const data = b.indexOf('data') + 8
  const samples = new Float32Array((b.length - data) >> 1)
  for (let i = 0; i < samples.length; i++) samples[i] = b.readInt16LE(data + 2 * i) / 32768
  return samples
}

const start = snapshot()
const llm = await loadLLM(join(shared, 'models/smollm2-135m-instruct-4bit'))
const warm = Math.min(50, generations / 10)
for (let i = 0; i < warm; i++) await llm.generate(`Item ${i}:`, { maxTokens: 8 })
const llmBase = snapshot()
for (let i = 0; i < generations; i++) {
  await llm.generate(`Item ${i}:`, { maxTokens: 8, temperature: i % 2 ? 0.7 : 0, seed: i })
}
report(`${generations} generations`, llmBase, snapshot())

const whisper = await loadWhisper(join(shared, 'models/whisper-tiny.en'))
const jfk = readWav(join(shared, 'audio/jfk.wav')).subarray(0, 16000 * 4)
for (let i = 0; i < 5; i++) await whisper.transcribe(jfk, { sampleRate: 16000, temperature: 0 })
const whisperBase = snapshot()
for (let i = 0; i < transcriptions; i++) await whisper.transcribe(jfk, { sampleRate: 16000, temperature: 0 })
report(`${transcriptions} transcriptions`, whisperBase, snapshot())

await llm.dispose()
await whisper.dispose()
const cycleBase = snapshot()
for (let i = 0; i < cycles; i++) {
  const m = await loadLLM(join(shared, 'models/smollm2-135m-instruct-4bit'))
  await m.generate('Hi', { maxTokens: 2 })
  await m.dispose()
}
report(`${cycles} LLM load/dispose cycles`, cycleBase, snapshot())
const end = snapshot()
console.log(`MLX active after dispose: ${mb(end.active)} MB (process start: ${mb(start.active)} MB)`)
