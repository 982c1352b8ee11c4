// The Whisper benchmark's inputs: WAV round trip and clip concatenation
// (benchmark/wav.mjs). No addon needed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readWav, writeWav, concatenateClips } from '../benchmark/wav.mjs'
import { sharedPath } from './shared.mjs'

test('writeWav/readWav round-trip 16-bit mono PCM', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wav-'))
  try {
    const samples = Int16Array.from({ length: 1001 }, (_, i) => ((i * 7919) % 65536) - 32768)
    const path = join(dir, 'x.wav')
    writeWav(path, samples, 16000)
    const back = readWav(path)
    assert.equal(back.sampleRate, 16000)
    assert.equal(back.channels, 1)
    assert.deepEqual(back.samples, samples)
    assert.equal(readFileSync(path).length, 44 + 2 * samples.length)
    writeFileSync(path, Buffer.from('RIFF0000WAVEjunk'))
    assert.throws(() => readWav(path), /no data chunk|fmt/)
  } finally {
    rmSync(dir, { recursive: true })
  }
})

test('concatenateClips fills exactly the asked length with the clips and pauses', () => {
  const a = Int16Array.from([1, 2, 3])
  const b = Int16Array.from([4, 5])
  // 1 kHz, 2-sample pauses: 1 2 3 _ _ 4 5 _ _ 1 2 3 _ _ 4 …
  const out = concatenateClips([a, b], 0.015, 1000, 0.002)
  assert.deepEqual([...out], [1, 2, 3, 0, 0, 4, 5, 0, 0, 1, 2, 3, 0, 0, 4])
})

test('the real clips decode as 16 kHz mono speech (benchmark inputs)', () => {
  const jfk = sharedPath('audio/jfk.wav')
  if (!jfk) return
  const w = readWav(jfk)
  assert.equal(w.sampleRate, 16000)
  assert.equal(w.channels, 1)
  assert.equal(w.samples.length, 176000)
  const ten = concatenateClips([w.samples], 600)
  assert.equal(ten.length, 600 * 16000)
  assert.deepEqual(ten.subarray(0, 1000), w.samples.subarray(0, 1000))
})
