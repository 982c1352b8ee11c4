// Whisper engine through the JS API, on the real tiny.en checkpoint. Every
// 30 s window costs one encoder pass (seconds on the MLX CPU backend), so the
// tests share one model and as few windows as they can.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { multilingualFixture, readSharedJson, sharedPath } from './shared.mjs'

const require = createRequire(import.meta.url)
const { backendInfo, loadWhisper, toSRT, toVTT, toJSON } = require('../index.js')

const modelDir = sharedPath('models/whisper-tiny.en')
const jfkWav = sharedPath('audio/jfk.wav')
const jfkMp3 = sharedPath('audio/jfk.mp3')
const reference = readSharedJson('reference/whisper-tiny.en-faster-whisper.json')
const skip = !modelDir || !jfkWav || !jfkMp3 || !reference
const jfkRef = reference?.results.find((r) => r.file === 'audio/jfk.wav').greedy

/** faster-whisper's text up to case, hyphens, punctuation and spacing. */
const normalize = (text) =>
  text
    .toLowerCase()
    .replace(/-/g, ' ')
    .replace(/[^\p{L}\p{N}\s']/gu, '')
    .replace(/\s+/g, ' ')
    .trim()

/** Mono 16-bit PCM WAV → { samples: Float32Array, sampleRate }. */
function readWav(path) {
  const bytes = readFileSync(path)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  assert.equal(bytes.toString('ascii', 0, 4), 'RIFF')
  assert.equal(bytes.toString('ascii', 8, 12), 'WAVE')
  let format
  for (let at = 12; at + 8 <= bytes.length; ) {
    const id = bytes.toString('ascii', at, at + 4)
    const size = view.getUint32(at + 4, true)
    const body = at + 8
    if (id === 'fmt ') {
      format = {
        tag: view.getUint16(body, true),
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        bits: view.getUint16(body + 14, true),
      }
    } else if (id === 'data') {
      assert.deepEqual([format.tag, format.channels, format.bits], [1, 1, 16], path)
      const samples = new Float32Array(size / 2)
      for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(body + 2 * i, true) / 32768
      return { samples, sampleRate: format.sampleRate }
    }
    at = body + size + (size & 1)
  }
  throw new Error(`no data chunk in ${path}`)
}

const isInvalidArgType = (e) => {
  assert.equal(e.code, 'ERR_INVALID_ARG_TYPE', e.message)
  assert.ok(e instanceof TypeError, e.message)
  return true
}
const isInvalidArg = (e) => {
  assert.equal(e.code, 'ERR_INVALID_ARG', e.message)
  assert.ok(e instanceof RangeError, e.message)
  return true
}

let whisper
let fromFile // jfk.wav transcribed from its path, shared by several tests
const seen = { segments: [], progress: [] }

before(async () => {
  if (skip) return
  const loadEvents = []
  whisper = await loadWhisper(modelDir, { onProgress: (p) => loadEvents.push(p) })
  assert.ok(loadEvents.length > 0, 'load progress reported')
  fromFile = await whisper.transcribe(jfkWav, {
    onSegment: (s) => seen.segments.push(s),
    onProgress: (p) => seen.progress.push(p),
  })
})
after(async () => {
  await whisper?.dispose()
})

test('model facts', { skip }, () => {
  assert.equal(whisper.nMels, 80)
  assert.equal(whisper.multilingual, false)
  assert.deepEqual(whisper.languages, [])
  // 'auto' is float32 on the CPU backend (float16 is emulated there), the
  // checkpoint's float16 on a GPU.
  assert.equal(whisper.dtype, backendInfo().device === 'cpu' ? 'float32' : 'float16')
})

test('jfk.wav (path) matches faster-whisper: text and segment times', { skip }, () => {
  const t = fromFile
  assert.equal(normalize(t.text), normalize(jfkRef.text))
  assert.equal(t.language, 'en')
  assert.equal(t.duration, 11)
  assert.equal(t.segments.length, jfkRef.segments.length)
  t.segments.forEach((s, i) => {
    const r = jfkRef.segments[i]
    assert.equal(s.id, i)
    assert.equal(normalize(s.text), normalize(r.text))
    assert.ok(Math.abs(s.start - r.start) <= 0.5, `segment ${i} start ${s.start} vs ${r.start}`)
    assert.ok(Math.abs(s.end - r.end) <= 0.5, `segment ${i} end ${s.end} vs ${r.end}`)
    assert.ok(s.avgLogprob < 0 && s.avgLogprob > -1, `avgLogprob ${s.avgLogprob}`)
    assert.ok(s.noSpeechProb >= 0 && s.noSpeechProb < 0.6)
    assert.ok(s.compressionRatio > 0)
    assert.equal(s.temperature, 0)
    assert.ok(s.tokens.length > 2)
  })
  const tm = t.timings
  for (const k of ['decodeAudioMs', 'melMs', 'encodeMs', 'decodeMs']) assert.ok(tm[k] >= 0, k)
  assert.ok(tm.encodeMs > 0 && tm.decodeMs > 0)
  assert.ok(tm.totalMs >= tm.encodeMs + tm.decodeMs)
  assert.ok(Math.abs(tm.realTimeFactor - tm.totalMs / 1000 / t.duration) < 1e-6)
})

test('onSegment and onProgress run before the promise settles', { skip }, () => {
  assert.deepEqual(seen.segments, fromFile.segments)
  assert.ok(seen.progress.length >= 1)
  const last = seen.progress.at(-1)
  assert.equal(last.secondsTotal, 11)
  assert.equal(last.secondsDone, 11)
  for (let i = 1; i < seen.progress.length; i++) {
    assert.ok(seen.progress[i].secondsDone >= seen.progress[i - 1].secondsDone)
  }
})

test('toSRT, toVTT and toJSON', { skip }, () => {
  const srt = toSRT(fromFile)
  const blocks = srt.trimEnd().split('\n\n')
  assert.equal(blocks.length, fromFile.segments.length)
  blocks.forEach((block, i) => {
    const [n, times, ...text] = block.split('\n')
    assert.equal(n, String(i + 1))
    assert.match(times, /^\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}$/)
    assert.equal(text.join(' '), fromFile.segments[i].text.trim())
  })
  assert.ok(srt.startsWith('1\n00:00:00,000 --> 00:00:07,'))
  const vtt = toVTT(fromFile)
  assert.ok(vtt.startsWith('WEBVTT\n\n00:00:00.000 --> 00:00:07.'))
  assert.equal(vtt.split(' --> ').length - 1, fromFile.segments.length)
  // Formatting is exact for hand-made input, hours included.
  const cues = { segments: [{ start: 3723.5, end: 3725.0004, text: ' Hello, world. ' }] }
  assert.equal(toSRT(cues), '1\n01:02:03,500 --> 01:02:05,000\nHello, world.\n\n')
  assert.equal(toVTT(cues), 'WEBVTT\n\n01:02:03.500 --> 01:02:05.000\nHello, world.\n\n')
  assert.deepEqual(JSON.parse(toJSON(fromFile)), fromFile)
})

// faster-whisper's word timings (scripts/fixtures/gen_word_timestamps.py).
const wordOracle = JSON.parse(
  readFileSync(
    resolve(dirname(fileURLToPath(import.meta.url)), '../crates/mlx-napi-core/tests/fixtures/whisper-word-timestamps/faster-whisper.json'),
    'utf8',
  ),
).results.find((r) => r.file === 'jfk.wav')

test('wordTimestamps: words match faster-whisper within 0.1 s; word-level SRT/VTT; toJSON keeps words', { skip }, async () => {
  const t = await whisper.transcribe(jfkWav, { wordTimestamps: true })
  const ours = t.segments.flatMap((s) => s.words)
  const theirs = wordOracle.segments.flatMap((s) => s.words)
  assert.deepEqual(ours.map((w) => w.word), theirs.map((w) => w.word))
  ours.forEach((w, i) => {
    assert.ok(Math.abs(w.start - theirs[i].start) <= 0.1, `${w.word} start ${w.start} vs ${theirs[i].start}`)
    assert.ok(Math.abs(w.end - theirs[i].end) <= 0.1, `${w.word} end ${w.end} vs ${theirs[i].end}`)
    assert.ok(w.probability > 0 && w.probability <= 1)
    assert.ok(w.end >= w.start)
  })
  for (const s of t.segments) assert.equal(s.words.map((w) => w.word).join(''), s.text)
  // Without the option there are no words.
  assert.equal(fromFile.segments[0].words, undefined)
  assert.ok(t.timings.wordTimestampsMs > 0)
  assert.equal(fromFile.timings.wordTimestampsMs, 0)

  const srt = toSRT(t, { wordLevel: true })
  const blocks = srt.trimEnd().split('\n\n')
  assert.equal(blocks.length, ours.length)
  assert.equal(blocks[0], `1\n00:00:00,000 --> 00:00:00,${String(Math.round(ours[0].end * 1000)).padStart(3, '0')}\nAnd`)
  const vtt = toVTT(t, { wordLevel: true })
  assert.equal(vtt.split(' --> ').length - 1, ours.length)
  assert.equal(toSRT(t, { wordLevel: false }), toSRT(t))
  assert.throws(() => toSRT(fromFile, { wordLevel: true }), isInvalidArg)
  assert.throws(() => toVTT({ segments: [{ start: 0, end: 1, text: 'x' }] }, { wordLevel: true }), isInvalidArg)
  assert.equal(
    toVTT({ segments: [{ start: 0, end: 1, text: ' a b', words: [{ start: 0, end: 0.5, word: ' a' }, { start: 0.5, end: 1, word: ' b' }] }] }, { wordLevel: true }),
    'WEBVTT\n\n00:00:00.000 --> 00:00:00.500\na\n\n00:00:00.500 --> 00:00:01.000\nb\n\n',
  )
  assert.deepEqual(JSON.parse(toJSON(t)), t)
})

test('jfk.mp3 as a Buffer gives the same text (thresholds off: null)', { skip }, async () => {
  // null turns a threshold off (jfk passes them all at temperature 0 anyway).
  const off = { compressionRatioThreshold: null, logprobThreshold: null, noSpeechThreshold: null }
  const t = await whisper.transcribe(readFileSync(jfkMp3), off)
  assert.equal(normalize(t.text), normalize(jfkRef.text))
  assert.ok(t.timings.decodeAudioMs > 0)
})

test('Float32Array PCM, batched (batchSize 8), equals the unbatched file; a throwing callback rejects with its exception', { skip }, async () => {
  const { samples, sampleRate } = readWav(jfkWav)
  assert.equal(sampleRate, 16000)
  assert.equal(samples.length, 176000)
  // Segments arrive through onSegment; onProgress (after the batch) then throws,
  // which must reject the transcription with that very exception.
  const segments = []
  const thrown = new TypeError('thrown by onProgress')
  await assert.rejects(
    whisper.transcribe(samples, {
      sampleRate,
      batchSize: 8,
      onSegment: (s) => segments.push(s),
      onProgress: () => {
        throw thrown
      },
    }),
    (e) => e === thrown,
  )
  assert.equal(segments.map((s) => s.text).join(''), fromFile.text)
  assert.deepEqual(
    segments.map((s) => [s.start, s.end]),
    fromFile.segments.map((s) => [s.start, s.end]),
  )
})

test('abort: a pre-aborted signal rejects; aborting mid-way rejects at once', { skip }, async () => {
  const isAbort = (e) => {
    assert.equal(e.name, 'AbortError')
    assert.equal(e.code, 'ABORT_ERR')
    return true
  }
  await assert.rejects(whisper.transcribe(jfkWav, { signal: AbortSignal.abort() }), isAbort)
  // jfk, 19 s of silence, jfk again: two windows, the first one quick to decode.
  const jfk = readWav(jfkWav).samples
  const long = new Float32Array(jfk.length * 2 + 19 * 16000)
  long.set(jfk)
  long.set(jfk, long.length - jfk.length)

  const ac = new AbortController()
  const segments = []
  let abortedAt
  const pending = whisper.transcribe(long, {
    sampleRate: 16000,
    signal: ac.signal,
    onSegment: (s) => {
      segments.push(s)
      if (!abortedAt) {
        abortedAt = performance.now()
        ac.abort()
      }
    },
  })
  await assert.rejects(pending, isAbort)
  const latency = performance.now() - abortedAt
  // The model thread notices before its next decoding step or window.
  assert.ok(latency < 1000, `rejected ${latency.toFixed(0)} ms after abort()`)
  assert.ok(segments.every((s) => s.end <= 30), 'no second window was decoded')
})

test('warmup resolves with the time it took', { skip }, async () => {
  const ms = await whisper.warmup()
  assert.ok(ms > 0 && Number.isFinite(ms))
})

test('warmup({ batchSize }) readies a batch and changes no result; bad options are coded errors', { skip }, async () => {
  for (const [options, cls, code] of [
    [{ batchSize: 0 }, RangeError, 'ERR_INVALID_ARG'],
    [{ batchSize: 1.5 }, RangeError, 'ERR_INVALID_ARG'],
    [{ batchSize: 257 }, RangeError, 'ERR_INVALID_ARG'],
    [{ batchSize: '2' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ batchsize: 2 }, RangeError, 'ERR_INVALID_ARG'],
    ['fast', TypeError, 'ERR_INVALID_ARG_TYPE'],
  ]) {
    await assert.rejects(whisper.warmup(options), (e) => {
      assert.ok(e instanceof cls, `${JSON.stringify(options)}: ${e}`)
      assert.equal(e.code, code, e.message)
      return true
    })
  }
  // The batched warm-up on the small random-weight model (a real one takes
  // seconds on the CPU): it resolves, and a batched transcription after it
  // equals the one before it.
  const fixture = join(dirname(fileURLToPath(import.meta.url)), '..', 'crates/mlx-napi-core/tests/fixtures/whisper-random-80')
  const tiny = await loadWhisper(fixture, { tokenizerDir: modelDir })
  try {
    const clip = Float32Array.from({ length: 16000 * 40 }, (_, i) => 0.3 * Math.sin(i * 0.02) * (i % 16000 < 12000 ? 1 : 0))
    const opts = { sampleRate: 16000, temperature: 0, sampleLen: 8, batchSize: 2 }
    const before = JSON.stringify((await tiny.transcribe(clip, opts)).segments.map((s) => [s.start, s.end, s.text]))
    const ms = await tiny.warmup({ batchSize: 2 })
    assert.ok(ms > 0 && Number.isFinite(ms))
    const after = JSON.stringify((await tiny.transcribe(clip, opts)).segments.map((s) => [s.start, s.end, s.text]))
    assert.equal(after, before)
  } finally {
    await tiny.dispose()
  }
})

test('bad audio gives coded errors', { skip }, async () => {
  await assert.rejects(whisper.transcribe('/nonexistent/audio.wav'), { code: 'ERR_IO' })
  await assert.rejects(whisper.transcribe(Buffer.from('definitely not audio, just text')), {
    code: 'ERR_AUDIO_DECODE',
  })
  await assert.rejects(whisper.transcribe(new Uint8Array(0)), { code: 'ERR_AUDIO_DECODE' })
  const wav = readFileSync(jfkWav)
  await assert.rejects(whisper.transcribe(wav.subarray(0, 30)), { code: 'ERR_AUDIO_DECODE' })
  await assert.rejects(whisper.transcribe(new Float32Array(0), { sampleRate: 16000 }), {
    code: 'ERR_AUDIO_DECODE',
  })
  await assert.rejects(whisper.transcribe(new Float32Array([0, NaN]), { sampleRate: 16000 }), isInvalidArg)
})

test('invalid options and arguments are RangeErrors with ERR_INVALID_ARG', { skip }, async () => {
  const pcm = new Float32Array(1600)
  for (const bad of [
    { temperature: -0.5 },
    { temperature: [0, -1] },
    { temperature: [] },
    { temperature: NaN },
    { beamSize: 0 },
    { beamSize: 1.5 },
    { bestOf: 0 },
    { batchSize: 0 },
    { batchSize: 1000 },
    { patience: 0 },
    { sampleLen: 0 },
    { task: 'summarize' },
    { preset: 'fastest' },
    { language: 'klingon' },
    { language: '' },
    { compressionRatioThreshold: Infinity },
    { suppressTokens: [1.5] },
    { seed: -1 },
  ]) {
    await assert.rejects(whisper.transcribe(pcm, { sampleRate: 16000, ...bad }), isInvalidArg, JSON.stringify(bad))
  }
  // Wrong JS types are TypeErrors (ERR_INVALID_ARG_TYPE) naming the option.
  for (const bad of [{ temperature: 'hot' }, { batchSize: '8' }, { wordTimestamps: 'yes' }, { vad: 1 }, { vad: { threshold: 'high' } }]) {
    await assert.rejects(whisper.transcribe(pcm, { sampleRate: 16000, ...bad }), isInvalidArgType, JSON.stringify(bad))
  }
  // PCM needs its sample rate.
  await assert.rejects(whisper.transcribe(pcm), isInvalidArg)
  await assert.rejects(whisper.transcribe(pcm, { sampleRate: 0 }), isInvalidArg)
  // Audio of no supported kind.
  for (const audio of [42, null, {}, new Int16Array(10)]) {
    await assert.rejects(whisper.transcribe(audio), isInvalidArgType)
  }
  // An English-only model cannot translate or detect a language.
  await assert.rejects(whisper.transcribe(pcm, { sampleRate: 16000, task: 'translate' }), isInvalidArg)
  await assert.rejects(whisper.detectLanguage(pcm, { sampleRate: 16000 }), isInvalidArg)
  await assert.rejects(loadWhisper(modelDir, { dtype: 'float64' }), isInvalidArg)
  await assert.rejects(loadWhisper(modelDir, { quantize: { bits: 7 } }), isInvalidArg)
})

test('bad model folders give coded errors', { skip }, async () => {
  await assert.rejects(loadWhisper('/nonexistent/model'), { code: 'ERR_MODEL_NOT_FOUND' })
  await assert.rejects(loadWhisper(dirname(jfkWav)), { code: 'ERR_MODEL_NOT_FOUND' })
})

test('a disposed model rejects with ERR_DISPOSED', { skip }, async () => {
  const other = await loadWhisper(modelDir)
  // A call already running when dispose() came still runs (here: fails on
  // the audio); one still queued rejects with ERR_DISPOSED (issue #10).
  const queued = assert.rejects(other.transcribe(Buffer.from('not audio')), (e) =>
    ['ERR_AUDIO_DECODE', 'ERR_DISPOSED'].includes(e.code))
  await other.dispose()
  await queued
  await assert.rejects(other.transcribe(jfkWav), { code: 'ERR_DISPOSED' })
  await assert.rejects(other.warmup(), { code: 'ERR_DISPOSED' })
  await other.dispose() // twice is fine
})

// ---- multilingual paths, on the core's random-weight fixture (d_model 8: cheap)


test('multilingual model: tokenizerDir, languages, detectLanguage, language and task options', { skip }, async () => {
  const dir = multilingualFixture()
  let m
  try {
    await assert.rejects(loadWhisper(dir), { code: 'ERR_MODEL_NOT_FOUND' }) // no tokenizer.json
    m = await loadWhisper(dir, { tokenizerDir: modelDir })
    assert.equal(m.multilingual, true)
    assert.equal(m.languages.length, 99)
    assert.equal(m.languages[0], 'en')
    assert.equal(m.vocabSize, 51865)
    const pcm = new Float32Array(3 * 16000).map((_, i) => 0.3 * Math.sin(i * 0.05) * Math.cos(i * 0.0003))
    const keep = { sampleRate: 16000, temperature: 0, sampleLen: 8, compressionRatioThreshold: null, logprobThreshold: null, noSpeechThreshold: null }

    const ranked = await m.detectLanguage(pcm, { sampleRate: 16000 })
    assert.equal(ranked.length, 99)
    for (let i = 1; i < ranked.length; i++) assert.ok(ranked[i - 1].probability >= ranked[i].probability)
    const sum = ranked.reduce((n, r) => n + r.probability, 0)
    assert.ok(Math.abs(sum - 1) < 1e-3, `probabilities sum to ${sum}`)
    assert.ok(m.languages.includes(ranked[0].language))

    const detected = await m.transcribe(pcm, keep)
    assert.equal(detected.language, ranked[0].language)
    assert.ok(Math.abs(detected.languageProbability - ranked[0].probability) < 1e-5)
    const given = await m.transcribe(pcm, { ...keep, language: 'german' })
    assert.deepEqual([given.language, given.languageProbability], ['de', 1])
    const translated = await m.transcribe(pcm, { ...keep, language: 'de', task: 'translate' })
    assert.equal(translated.language, 'de')

    await assert.rejects(m.transcribe(pcm, { ...keep, language: 'xx' }), isInvalidArg)
    await assert.rejects(m.detectLanguage(pcm), isInvalidArg) // PCM without sampleRate
    await assert.rejects(m.detectLanguage(pcm, { sampleRate: 16000, signal: AbortSignal.abort() }), {
      name: 'AbortError',
      code: 'ABORT_ERR',
    })
    await assert.rejects(m.detectLanguage(Buffer.from('not audio')), { code: 'ERR_AUDIO_DECODE' })
  } finally {
    await m?.dispose()
    rmSync(dir, { recursive: true, force: true })
  }
})
