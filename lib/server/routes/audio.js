'use strict'
// POST /v1/audio/transcriptions and /v1/audio/translations (multipart).
const { ApiError, invalid, unsupported } = require('../errors.js')
const { FORMATS, formatTranscription } = require('../transcription-format.js')
const { LANGUAGES } = require('../languages.js')

const GRANULARITIES = ['word', 'segment']

/**
 * Reads the multipart body: the `file` part into memory (at most
 * maxAudioBytes, enforced by @fastify/multipart as it streams) and the text
 * fields, each as the list of its values.
 */
async function readUpload(request) {
  if (!request.isMultipart()) {
    throw invalid('expected a multipart/form-data body with a `file` field', 'file', 'invalid_content_type')
  }
  /** @type {Record<string, string[]>} */
  const fields = Object.create(null)
  let file = null
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        const data = await part.toBuffer()
        if (part.fieldname !== 'file') throw invalid(`unexpected file field ${JSON.stringify(part.fieldname)}; send the audio as \`file\``, part.fieldname)
        file = { name: part.filename, data }
      } else {
        if (part.valueTruncated) throw new ApiError(413, `the field \`${part.fieldname}\` is too long`, { param: part.fieldname, code: 'field_too_long' })
        const name = part.fieldname.endsWith('[]') ? part.fieldname.slice(0, -2) : part.fieldname
        ;(fields[name] ??= []).push(String(part.value))
      }
    }
  } catch (err) {
    if (err instanceof ApiError || Number.isInteger(err?.statusCode)) throw err
    if (err?.name === 'AbortError' || err?.code === 'ECONNRESET') throw err
    throw invalid(`malformed multipart body: ${err?.message ?? err}`, null, 'invalid_multipart')
  }
  if (!file) throw invalid('the audio file is missing: send it in the multipart field `file`', 'file', 'missing_required_parameter')
  if (file.data.length === 0) throw invalid('the audio file is empty', 'file')
  return { file, fields }
}

/** The one value of a text field (undefined when absent). */
function single(fields, name) {
  const values = fields[name]
  if (!values) return undefined
  if (values.length > 1) throw invalid(`\`${name}\` was sent ${values.length} times`, name)
  return values[0]
}

/**
 * OpenAI's `temperature` (0 = "let the model raise it as needed") → the
 * addon's fallback sequence: 0 keeps openai-whisper's default sequence
 * (0, 0.2, …, 1); t > 0 starts there and falls back in steps of 0.2 up to 1,
 * as openai-whisper's command line does.
 */
function temperatureOf(value) {
  if (value === undefined) return undefined
  const t = Number(value)
  if (value.trim() === '' || !Number.isFinite(t) || t < 0 || t > 1) {
    throw invalid(`\`temperature\` must be a number in [0, 1], got ${JSON.stringify(value)}`, 'temperature')
  }
  if (t === 0) return undefined
  const sequence = []
  for (let x = t; x <= 1 + 1e-9; x += 0.2) sequence.push(Math.round(Math.min(x, 1) * 1000) / 1000)
  return sequence
}

/** The `language` field, checked against the model (code or English name). */
function languageOf(value, entry) {
  if (value === undefined || value === '') return undefined
  const lang = value.trim().toLowerCase()
  if (!entry.model.multilingual) {
    if (lang !== 'en' && lang !== 'english') {
      throw invalid(`the model ${JSON.stringify(entry.id)} is English-only; \`language\` can only be "en"`, 'language', 'unsupported_language')
    }
    return 'en'
  }
  const known = entry.model.languages
  if (known.includes(lang)) return lang
  const code = Object.keys(LANGUAGES).find((c) => LANGUAGES[c] === lang && known.includes(c))
  if (code) return code
  throw invalid(`unknown language ${JSON.stringify(value)}: use an ISO-639-1 code the model knows (e.g. "en", "de")`, 'language', 'unsupported_language')
}

function audioRoute(task, ctx) {
  return async (request, reply) => {
    const { file, fields } = await readUpload(request)
    const entry = ctx.pick('whisper', single(fields, 'model'))
    if (task === 'translate' && !entry.model.multilingual) {
      throw invalid(
        `the model ${JSON.stringify(entry.id)} is English-only and cannot translate; serve a multilingual Whisper model ` +
          '(e.g. openai/whisper-small) for translations, or use /v1/audio/transcriptions for English speech',
        'model',
        'model_not_multilingual',
      )
    }
    if (['true', '1'].includes(single(fields, 'stream'))) throw unsupported('stream', 'streaming transcription (`stream`)')
    const format = single(fields, 'response_format') ?? 'json'
    if (!FORMATS.includes(format)) {
      throw invalid(`\`response_format\` must be one of ${FORMATS.join(', ')}; got ${JSON.stringify(format)}`, 'response_format')
    }
    const granularities = fields.timestamp_granularities ?? []
    for (const g of granularities) {
      if (!GRANULARITIES.includes(g)) {
        throw invalid(`\`timestamp_granularities\` entries are "word" or "segment", got ${JSON.stringify(g)}`, 'timestamp_granularities')
      }
    }
    if (granularities.length && format !== 'verbose_json') {
      throw invalid('`timestamp_granularities` needs `response_format` "verbose_json"', 'timestamp_granularities')
    }
    const words = granularities.includes('word')
    const segments = granularities.length === 0 || granularities.includes('segment')

    /** @type {import('../../../index').TranscribeOptions} */
    const options = { task }
    const language = languageOf(single(fields, 'language'), entry)
    if (language) options.language = language
    const prompt = single(fields, 'prompt')
    if (prompt) options.initialPrompt = prompt
    const temperature = temperatureOf(single(fields, 'temperature'))
    if (temperature) options.temperature = temperature
    if (words) options.wordTimestamps = true

    const signal = ctx.signalFor(reply)
    const route = task === 'translate' ? 'translations' : 'transcriptions'
    const result = await ctx.run(entry, route, signal, (jobSignal) =>
      entry.model.transcribe(file.data, { ...options, signal: jobSignal }),
    )
    const { type, body } = formatTranscription(result, format, { task, words, segments })
    return reply.type(type).send(body)
  }
}

function register(app, ctx) {
  app.post('/v1/audio/transcriptions', audioRoute('transcribe', ctx))
  app.post('/v1/audio/translations', audioRoute('translate', ctx))
}

module.exports = { register, temperatureOf }
