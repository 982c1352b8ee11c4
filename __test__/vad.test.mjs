// transcribe(audio, { vad }) on Whisper tiny.en: Silero VAD drops non-speech
// before decoding, times stay on the original timeline.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { readSharedJson, sharedPath } from './shared.mjs'

const require = createRequire(import.meta.url)
const { loadWhisper } = require('../index.js')

const modelDir = sharedPath('models/whisper-tiny.en')
const jfkWav = sharedPath('audio/jfk.wav')
const noiseWav = sharedPath('audio/Noise.wav')
const reference = readSharedJson('reference/whisper-tiny.en-faster-whisper.json')
const skip = !modelDir || !jfkWav || !noiseWav || !reference
const jfkRef = reference?.results.find((r) => r.file === 'audio/jfk.wav').greedy

const normalize = (text) =>
  text
    .toLowerCase()
    .replace(/-/g, ' ')
    .replace(/[^\p{L}\p{N}\s']/gu, '')
    .replace(/\s+/g, ' ')
    .trim()

let whisper
before(async () => {
  if (skip) return
  whisper = await loadWhisper(modelDir)
})
after(async () => {
  await whisper?.dispose()
})

test('vad: true on noise gives no segments and keeps the duration', { skip }, async () => {
  const progress = []
  const r = await whisper.transcribe(noiseWav, { vad: true, onProgress: (p) => progress.push(p) })
  assert.deepEqual(r.segments, [])
  assert.equal(r.text, '')
  assert.ok(Math.abs(r.duration - 1.408) < 0.01, String(r.duration))
  assert.equal(progress.at(-1).secondsDone, r.duration)
})

test('vad: true on jfk.wav gives faster-whisper\'s text', { skip }, async () => {
  const r = await whisper.transcribe(jfkWav, { vad: true })
  assert.equal(normalize(r.text), normalize(jfkRef.text))
  assert.equal(r.duration, 11)
  for (const s of r.segments) assert.ok(s.start >= 0 && s.start <= s.end && s.end <= 11.02, JSON.stringify(s))
})

test('tight VAD settings cut the pauses; segment times map back to the original audio', { skip }, async () => {
  const seen = []
  const r = await whisper.transcribe(jfkWav, {
    vad: { minSilenceMs: 100, speechPadMs: 30, minSpeechMs: 250, threshold: 0.5 },
    onSegment: (s) => seen.push(s),
  })
  assert.deepEqual(seen, r.segments)
  // Silero finds the first speech at 0.29 s (faster-whisper's VAD, same
  // settings): 0 s of the speech-only audio is ~0.26 s of the original.
  assert.ok(r.segments[0].start >= 0.25, JSON.stringify(r.segments[0]))
  assert.ok(r.segments.at(-1).end <= 11.02 && r.segments.at(-1).end > 9, JSON.stringify(r.segments.at(-1)))
  assert.ok(normalize(r.text).includes('ask what you can do for your country'), r.text)
})

test('bad vad options are RangeErrors (ERR_INVALID_ARG) or TypeErrors (ERR_INVALID_ARG_TYPE)', { skip }, async () => {
  const pcm = new Float32Array(16000)
  for (const vad of [
    { threshold: 1.5 },
    { threshold: 0 },
    { negThreshold: 0.9 },
    { minSilenceMs: -1 },
    { speechPadMs: NaN },
    { maxSpeechS: 0.1 },
    { minSpeechMS: 250 }, // misspelt: unknown names are rejected
  ]) {
    await assert.rejects(
      whisper.transcribe(pcm, { sampleRate: 16000, vad }),
      (e) => e.code === 'ERR_INVALID_ARG' && e instanceof RangeError,
      JSON.stringify(vad),
    )
  }
  // Wrong JS types are TypeErrors naming the option.
  for (const vad of ['yes', 1, [], { threshold: 'high' }]) {
    await assert.rejects(
      whisper.transcribe(pcm, { sampleRate: 16000, vad }),
      (e) => e.code === 'ERR_INVALID_ARG_TYPE' && e instanceof TypeError && /options\.vad/.test(e.message),
      JSON.stringify(vad),
    )
  }
  // The model is still usable, and silence is no speech.
  const r = await whisper.transcribe(pcm, { sampleRate: 16000, vad: {} })
  assert.deepEqual(r.segments, [])
})
