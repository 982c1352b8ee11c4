'use strict'
// A Transcription → the body of each OpenAI `response_format`.
const { toSRT, toVTT } = require('../../index.js')
const { languageName } = require('./languages.js')

const FORMATS = ['json', 'text', 'srt', 'verbose_json', 'vtt']

/** OpenAI bills audio by the second; clients read `usage.seconds`. */
const usageOf = (t) => ({ type: 'duration', seconds: Math.ceil(t.duration) })

function verboseSegment(s) {
  return {
    id: s.id,
    seek: s.seek,
    start: s.start,
    end: s.end,
    text: s.text,
    tokens: s.tokens,
    temperature: s.temperature,
    avg_logprob: s.avgLogprob,
    compression_ratio: s.compressionRatio,
    no_speech_prob: s.noSpeechProb,
  }
}

/**
 * @param {import('../../index').Transcription} t
 * @param {string} format one of FORMATS
 * @param {{ task: 'transcribe' | 'translate', words: boolean, segments: boolean }} detail
 * @returns {{ type: string, body: string | object }}
 */
function formatTranscription(t, format, { task, words, segments }) {
  const text = t.text.trim()
  switch (format) {
    case 'text':
      return { type: 'text/plain; charset=utf-8', body: `${text}\n` }
    case 'srt':
      return { type: 'text/plain; charset=utf-8', body: toSRT(t) }
    case 'vtt':
      return { type: 'text/vtt; charset=utf-8', body: toVTT(t) }
    case 'verbose_json': {
      const body = { task, language: languageName(t.language), duration: t.duration, text }
      if (segments) body.segments = t.segments.map(verboseSegment)
      if (words) {
        body.words = t.segments.flatMap((s) =>
          (s.words ?? []).map((w) => ({ word: w.word.trim(), start: w.start, end: w.end, probability: w.probability })),
        )
      }
      body.usage = usageOf(t)
      return { type: 'application/json; charset=utf-8', body }
    }
    default:
      return { type: 'application/json; charset=utf-8', body: { text, usage: usageOf(t) } }
  }
}

module.exports = { FORMATS, formatTranscription }
