// The OpenAI-compatible server with the real models of ../shared, driven by
// the official `openai` client (and raw HTTP where a client cannot go wrong
// enough): chat (plain, streamed with usage), completions, the five
// transcription formats and word timestamps, translation on an English-only
// model, every error class, 16 concurrent chats, client disconnects, the
// README's client snippet and the `mlx-napi serve` command itself.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import OpenAI from 'openai'
import { multilingualFixture, sharedPath } from './shared.mjs'

const require = createRequire(import.meta.url)
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { loadLLM, loadWhisper } = require('../index.js')
const { createServer } = require('../lib/server/index.js')

const llmDir = sharedPath('models/smollm2-135m-instruct-4bit')
const whisperDir = sharedPath('models/whisper-tiny.en')
const jfk = sharedPath('audio/jfk.wav')
const skip = !llmDir || !whisperDir || !jfk ? 'needs ../shared (models/smollm2-135m-instruct-4bit, models/whisper-tiny.en, audio/jfk.wav)' : false

// The ids `mlx-napi serve` gives these folders (their names); the README snippet uses them.
const LLM_ID = 'smollm2-135m-instruct-4bit'
const WHISPER_ID = 'whisper-tiny.en'
const KEY = 'test-key'
const JFK = /ask not what your country can do for you,? ask what you can do for your country/i
const T = { timeout: 600_000 }

let llm, llmOne, whisper, server, url, client, limited, limitedUrl

/** The first `name` event of `srv` for which `pred` holds. */
function nextEvent(srv, name, pred = () => true) {
  return new Promise((resolve) => {
    const on = (e) => {
      if (!pred(e)) return
      srv.off(name, on)
      resolve(e)
    }
    srv.on(name, on)
  })
}

/** The error a call that must fail throws. */
async function failure(promise) {
  try {
    await promise
  } catch (err) {
    return err
  }
  assert.fail('the request succeeded')
}

/** A raw request: { status, body (parsed when JSON) }. */
async function raw(path, { method = 'POST', headers = {}, body, base = url } = {}) {
  const r = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${KEY}`, ...headers }, body })
  const text = await r.text()
  let parsed = text
  try {
    parsed = JSON.parse(text)
  } catch {}
  return { status: r.status, body: parsed, type: r.headers.get('content-type') }
}

const ask = (messages, extra = {}, opts) =>
  client.chat.completions.create({ model: LLM_ID, messages, temperature: 0, max_tokens: 8, ...extra }, opts)

before(async () => {
  if (skip) return
  llm = await loadLLM(llmDir)
  whisper = await loadWhisper(whisperDir)
  const models = { llms: [{ id: LLM_ID, model: llm }], whispers: [{ id: WHISPER_ID, model: whisper }] }
  server = createServer({ ...models, apiKey: KEY, maxQueue: 15 })
  url = await server.listen({ port: 0 })
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 600_000 })
  // A second server with tight limits: 64 KiB bodies, one waiting request, and
  // the same LLM loaded to decode one request at a time (maxBatchSize 1), so
  // that a second request waits instead of joining the first one's batch.
  llmOne = await loadLLM(llmDir, { maxBatchSize: 1 })
  limited = createServer({
    llms: [{ id: LLM_ID, model: llmOne }],
    whispers: models.whispers,
    apiKey: KEY,
    maxQueue: 1,
    maxAudioBytes: 64 * 1024,
    maxBodyBytes: 64 * 1024,
  })
  limitedUrl = await limited.listen({ port: 0 })
})

after(async () => {
  await server?.close()
  await limited?.close()
  await llm?.dispose()
  await llmOne?.dispose()
  await whisper?.dispose()
})

test('models, health and auth', { skip, ...T }, async () => {
  const list = await client.models.list()
  assert.deepEqual(list.data.map((m) => [m.id, m.object]), [[LLM_ID, 'model'], [WHISPER_ID, 'model']])
  assert.equal((await client.models.retrieve(WHISPER_ID)).id, WHISPER_ID)
  const health = await fetch(`${url}/health`)
  assert.equal(health.status, 200)
  assert.deepEqual((await health.json()).models.map((m) => m.id), [LLM_ID, WHISPER_ID])
  const noKey = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong', maxRetries: 0 })
  const denied = await failure(noKey.chat.completions.create({ model: LLM_ID, messages: [{ role: 'user', content: 'x' }] }))
  assert.equal(denied.status, 401)
  assert.equal(denied.code, 'invalid_api_key')
  const unknown = await raw('/v1/embeddings', { headers: { 'content-type': 'application/json' }, body: '{}' })
  assert.equal(unknown.status, 404)
  assert.equal(unknown.body.error.code, 'unknown_url')
  const missing = await failure(client.models.retrieve('no-such-model'))
  assert.equal(missing.status, 404)
})

const CAPITAL = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is the capital of France?' }]
/** CAPITAL's greedy 8-token answer from the JS API, computed once for the tests that compare with it. */
let capitalGreedy
const greedyCapital = () => (capitalGreedy ??= llm.generate(CAPITAL, { maxTokens: 8, temperature: 0 }))

test('chat: plain and streamed answers equal the JS API, with usage', { skip, ...T }, async () => {
  const direct = await greedyCapital()
  assert.ok(direct.text.length > 0)
  const r = await ask(CAPITAL)
  assert.equal(r.object, 'chat.completion')
  assert.equal(r.model, LLM_ID)
  assert.match(r.id, /^chatcmpl-/)
  assert.equal(r.choices.length, 1)
  assert.equal(r.choices[0].message.role, 'assistant')
  assert.equal(r.choices[0].message.content, direct.text)
  assert.equal(r.choices[0].finish_reason, direct.finishReason)
  assert.deepEqual(r.usage, {
    prompt_tokens: direct.usage.promptTokens,
    completion_tokens: direct.usage.completionTokens,
    total_tokens: direct.usage.promptTokens + direct.usage.completionTokens,
  })

  const stream = await ask(CAPITAL, { stream: true, stream_options: { include_usage: true } })
  const chunks = []
  for await (const chunk of stream) chunks.push(chunk)
  assert.equal(chunks[0].choices[0].delta.role, 'assistant')
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id))
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')
  assert.equal(text, direct.text)
  const usageChunk = chunks.at(-1)
  assert.deepEqual(usageChunk.choices, [])
  assert.deepEqual(usageChunk.usage, r.usage)
  assert.equal(chunks.at(-2).choices[0].finish_reason, direct.finishReason)
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === null))
})

test('completions: plain, echo, and the raw SSE stream ending in [DONE]', { skip, ...T }, async () => {
  const prompt = 'The capital of France is'
  const direct = await llm.generate(prompt, { maxTokens: 6, temperature: 0 })
  const r = await client.completions.create({ model: LLM_ID, prompt, max_tokens: 6, temperature: 0, echo: true })
  assert.equal(r.object, 'text_completion')
  assert.equal(r.choices[0].text, prompt + direct.text)
  assert.equal(r.usage.completion_tokens, direct.usage.completionTokens)

  const res = await raw('/v1/completions', {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: LLM_ID, prompt, max_tokens: 6, temperature: 0, stream: true }),
  })
  assert.equal(res.status, 200)
  assert.match(res.type, /^text\/event-stream/)
  assert.ok(res.body.endsWith('data: [DONE]\n\n'), res.body.slice(-200))
  const events = res.body.split('\n\n').filter(Boolean)
  assert.ok(events.every((e) => e.startsWith('data: ')))
  const pieces = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)))
  assert.equal(pieces.map((p) => p.choices[0].text).join(''), direct.text)
  assert.equal(pieces.at(-1).choices[0].finish_reason, direct.finishReason)
})

test('sampling fields reach the model: seed, stop, logit_bias', { skip, ...T }, async () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Tell me about cats.' }]
  const sampled = { temperature: 1, seed: 11, max_tokens: 6 }
  const a = await ask(messages, sampled)
  const direct = await llm.generate(messages, { temperature: 1, seed: 11, maxTokens: 6 })
  assert.equal(a.choices[0].message.content, direct.text)

  const greedy = await greedyCapital()
  const words = greedy.text.split(' ').filter(Boolean)
  assert.ok(words.length >= 3, greedy.text)
  const stopAt = words[2]
  const stopped = await ask(CAPITAL, { stop: [stopAt] })
  assert.equal(stopped.choices[0].message.content, greedy.text.slice(0, greedy.text.indexOf(stopAt)))
  assert.equal(stopped.choices[0].finish_reason, 'stop')

  const [id] = llm.tokenizer.encode(' banana', false)
  const biased = await ask(CAPITAL, { logit_bias: { [id]: 100 }, max_tokens: 2 })
  assert.equal(biased.choices[0].message.content, llm.tokenizer.decode([id, id]))
})

test('16 concurrent chat requests each get their own answer, as when alone', { skip, ...T }, async () => {
  // 32 prefills on the CPU (16 alone, 16 together), so the prompts are short: one
  // word each, and an empty system message instead of the template's default one
  // (about 17 prompt tokens a request instead of 22 with "Be brief." and "One fact about …").
  const questions = ['Apples?', 'The moon?', 'Rain?', 'Cats?', 'Music?', 'Rivers?', 'Bread?', 'Winter?', 'Trains?', 'Bees?',
    'Chess?', 'Coffee?', 'Volcanoes?', 'Owls?', 'Glass?', 'Tea?']
  const requests = questions.map((q) => [{ role: 'system', content: '' }, { role: 'user', content: q }])
  const alone = []
  for (const messages of requests) alone.push((await ask(messages, { max_tokens: 4 })).choices[0].message.content)
  assert.ok(new Set(alone).size >= 12, `answers too alike to tell apart: ${JSON.stringify(alone)}`)
  let mostWaiting = 0
  const onQueued = (e) => (mostWaiting = Math.max(mostWaiting, e.queued))
  server.on('jobQueued', onQueued)
  const together = await Promise.all(requests.map((messages) => ask(messages, { max_tokens: 4 })))
  server.off('jobQueued', onQueued)
  assert.deepEqual(together.map((r) => r.choices[0].message.content), alone)
  assert.ok(mostWaiting >= 8, `the requests did not overlap (at most ${mostWaiting} in line)`)
})

test('structured output and tool calls through the openai client (JSON and streamed)', { skip, ...T }, async () => {
  const messages = [{ role: 'user', content: 'Describe a cat as JSON.' }]
  const schema = {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 10 }, legs: { type: 'integer', minimum: 0, maximum: 4 } },
    required: ['name', 'legs'],
    additionalProperties: false,
  }
  const r = await client.chat.completions.create({
    model: LLM_ID, messages, temperature: 1, seed: 3, max_tokens: 60,
    response_format: { type: 'json_schema', json_schema: { name: 'cat', schema, strict: true } },
  })
  const cat = JSON.parse(r.choices[0].message.content)
  assert.deepEqual(Object.keys(cat).sort(), ['legs', 'name'])
  assert.ok(Number.isInteger(cat.legs) && cat.legs >= 0 && cat.legs <= 4, r.choices[0].message.content)
  const bad = await failure(client.chat.completions.create({
    model: LLM_ID, messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'wat' } } },
  }))
  assert.equal(bad.status, 400)
  // The grammar extension (llama.cpp's field) on completions: GBNF.
  const yesNo = await client.completions.create({ model: LLM_ID, prompt: 'Is water wet? Answer:', temperature: 1, seed: 5, max_tokens: 4, grammar: 'root ::= " yes" | " no"' })
  assert.match(yesNo.choices[0].text, /^ (yes|no)$/)
  const badGrammar = await failure(client.completions.create({ model: LLM_ID, prompt: 'x', grammar: 'root ::= (' }))
  assert.equal(badGrammar.status, 400)

  const tools = [{
    type: 'function',
    function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 20 } }, required: ['city'], additionalProperties: false } },
  }]
  const ask = [{ role: 'user', content: 'Weather in Rome?' }]
  const called = await client.chat.completions.create({ model: LLM_ID, messages: ask, tools, tool_choice: 'required', temperature: 0, max_tokens: 40 })
  const choice = called.choices[0]
  assert.equal(choice.finish_reason, 'tool_calls')
  const [call] = choice.message.tool_calls
  assert.equal(call.function.name, 'get_weather')
  assert.equal(typeof JSON.parse(call.function.arguments).city, 'string')

  const stream = await client.chat.completions.create({ model: LLM_ID, messages: ask, tools, tool_choice: 'required', temperature: 0, max_tokens: 40, stream: true })
  const deltas = []
  let reason
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.tool_calls) deltas.push(...chunk.choices[0].delta.tool_calls)
    reason = chunk.choices[0]?.finish_reason ?? reason
  }
  assert.equal(reason, 'tool_calls')
  assert.deepEqual(deltas.map((d) => [d.index, d.id, d.function.name, d.function.arguments]), [[0, call.id, call.function.name, call.function.arguments]])

  // The tool's answer goes back as a `tool` message.
  const answer = await client.chat.completions.create({
    model: LLM_ID,
    messages: [...ask, choice.message, { role: 'tool', tool_call_id: call.id, content: '{"celsius": 24}' }],
    tools, tool_choice: 'none', max_tokens: 8,
  })
  assert.equal(typeof answer.choices[0].message.content, 'string')
})

test('transcription in all five formats, and word timestamps', { skip, ...T }, async () => {
  const file = () => OpenAI.toFile(readFileSync(jfk), 'jfk.wav')
  const create = async (params) => client.audio.transcriptions.create({ model: WHISPER_ID, file: await file(), ...params })
  const json = await create({})
  assert.match(json.text, JFK)
  assert.equal(json.text, json.text.trim())
  const text = await create({ response_format: 'text' })
  assert.equal(text, `${json.text}\n`)
  const srt = await create({ response_format: 'srt' })
  assert.match(srt, /^1\n00:00:00,000 --> 00:00:\d\d,\d{3}\n\S/)
  const vtt = await create({ response_format: 'vtt' })
  assert.match(vtt, /^WEBVTT\n\n(\d+\n)?00:00:00\.000 --> 00:00:\d\d\.\d{3}\n\S/)
  const verbose = await create({ response_format: 'verbose_json', timestamp_granularities: ['word', 'segment'] })
  assert.equal(verbose.task, 'transcribe')
  assert.equal(verbose.language, 'english')
  assert.ok(Math.abs(verbose.duration - 11) < 0.1, `duration ${verbose.duration}`)
  assert.equal(verbose.text, json.text)
  assert.ok(verbose.segments.length >= 1)
  for (const s of verbose.segments) {
    assert.ok(srt.includes(s.text.trim()) && vtt.includes(s.text.trim()), s.text)
    assert.ok(s.end > s.start)
    for (const k of ['id', 'seek', 'tokens', 'temperature', 'avg_logprob', 'compression_ratio', 'no_speech_prob']) assert.ok(k in s, k)
  }
  const words = verbose.words
  assert.ok(words.length >= 20, `${words.length} words`)
  assert.equal(words.map((w) => w.word).join(' '), json.text)
  for (let i = 0; i < words.length; i++) {
    assert.ok(words[i].end >= words[i].start)
    if (i) assert.ok(words[i].start >= words[i - 1].start)
  }
  assert.ok(words.at(-1).end <= verbose.duration + 0.01)
})

test('translation: an English-only model refuses with a clear 400', { skip, ...T }, async () => {
  const file = await OpenAI.toFile(readFileSync(jfk), 'jfk.wav')
  const err = await failure(client.audio.translations.create({ model: WHISPER_ID, file }))
  assert.equal(err.status, 400)
  assert.equal(err.code, 'model_not_multilingual')
  assert.equal(err.param, 'model')
  assert.match(err.message, /English-only/)
  const lang = await failure(client.audio.transcriptions.create({ model: WHISPER_ID, file: await OpenAI.toFile(readFileSync(jfk), 'jfk.wav'), language: 'de' }))
  assert.equal(lang.status, 400)
  assert.equal(lang.param, 'language')
})

/** A multipart body whose closing boundary never comes (the client stopped mid-file). */
function truncatedMultipart(base) {
  return new Promise((resolve, reject) => {
    const boundary = '----mlxnapitest'
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n${WHISPER_ID}\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`),
      readFileSync(jfk).subarray(0, 1000),
    ])
    const req = httpRequest(`${base}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length, authorization: `Bearer ${KEY}` },
    })
    req.on('response', (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

test('bad requests get OpenAI error bodies (400, 404, 413, 415) and the server keeps serving', { skip, ...T }, async () => {
  const json = { 'content-type': 'application/json' }
  const malformed = await raw('/v1/chat/completions', { headers: json, body: '{"model": "x", "messages": [' })
  assert.equal(malformed.status, 400)
  assert.equal(malformed.body.error.type, 'invalid_request_error')
  assert.equal(malformed.body.error.code, 'invalid_json')
  const wrongType = await raw('/v1/chat/completions', { headers: { 'content-type': 'text/plain' }, body: 'hello' })
  assert.equal(wrongType.status, 415)
  assert.ok(wrongType.body.error.message)
  const notMultipart = await raw('/v1/audio/transcriptions', { headers: json, body: '{}' })
  assert.equal(notMultipart.status, 400)
  assert.equal(notMultipart.body.error.param, 'file')
  const badAudio = await failure(client.audio.transcriptions.create({ model: WHISPER_ID, file: await OpenAI.toFile(Buffer.from('not audio at all, just text'), 'a.wav') }))
  assert.equal(badAudio.status, 400)
  assert.match(badAudio.message, /ERR_AUDIO_/)
  const truncated = await truncatedMultipart(url)
  assert.equal(truncated.status, 400)
  assert.equal(truncated.body.error.code, 'invalid_multipart')

  const badParam = await failure(ask(CAPITAL, { temperature: -1 }))
  assert.equal(badParam.status, 400)
  assert.equal(badParam.param, 'temperature')
  const badModel = await failure(client.chat.completions.create({ model: 'gpt-4o', messages: CAPITAL }))
  assert.equal(badModel.status, 404)
  assert.equal(badModel.code, 'model_not_found')
  const wrongKind = await failure(client.chat.completions.create({ model: WHISPER_ID, messages: CAPITAL }))
  assert.equal(wrongKind.status, 400)

  const small = new OpenAI({ baseURL: `${limitedUrl}/v1`, apiKey: KEY, maxRetries: 0 })
  const bigJson = await raw('/v1/chat/completions', {
    base: limitedUrl,
    headers: json,
    body: JSON.stringify({ model: LLM_ID, messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] }),
  })
  assert.equal(bigJson.status, 413)
  assert.equal(bigJson.body.error.code, 'request_too_large')
  const bigUpload = await failure(small.audio.transcriptions.create({ model: WHISPER_ID, file: await OpenAI.toFile(readFileSync(jfk), 'jfk.wav') }))
  assert.equal(bigUpload.status, 413)
  assert.equal(bigUpload.code, 'file_too_large')
  assert.equal(bigUpload.param, 'file')

  // Still serving, the model still answering.
  assert.equal((await fetch(`${url}/health`)).status, 200)
  assert.equal((await fetch(`${limitedUrl}/health`)).status, 200)
  const after = await ask(CAPITAL, { max_tokens: 2 })
  assert.equal(after.choices[0].message.content.length > 0, true)
})

test('a full queue is a 429; clients that leave abort their work', { skip, ...T }, async () => {
  const small = new OpenAI({ baseURL: `${limitedUrl}/v1`, apiKey: KEY, maxRetries: 0 })
  // End-of-sequence banned: these generations end only when their clients leave.
  const noEos = Object.fromEntries(llm.eosTokenIds.map((id) => [id, -100]))
  const long = { max_tokens: 5000, temperature: 0, logit_bias: noEos }
  // 1. A streamed generation that runs until its client leaves.
  const firstLeaves = new AbortController()
  const firstEnd = nextEvent(limited, 'jobEnd')
  const stream = await small.chat.completions.create(
    { model: LLM_ID, messages: CAPITAL, stream: true, ...long },
    { signal: firstLeaves.signal },
  )
  const it = stream[Symbol.asyncIterator]()
  await it.next()
  // 2. One request waiting behind it (the limit), 3. one too many.
  const queued = nextEvent(limited, 'jobQueued')
  const second = small.chat.completions.create({ model: LLM_ID, messages: CAPITAL, max_tokens: 1, temperature: 0 })
  await queued
  const full = await failure(small.chat.completions.create({ model: LLM_ID, messages: CAPITAL, max_tokens: 1 }))
  assert.equal(full.status, 429)
  assert.equal(full.code, 'queue_full')
  assert.equal(full.type, 'rate_limit_error')
  // The first client leaves: its generation stops long before 5000 tokens, the waiting one runs.
  firstLeaves.abort()
  const ended = await firstEnd
  assert.equal(ended.outcome, 'aborted')
  assert.ok(ended.usage.completionTokens < 5000, `${ended.usage.completionTokens} tokens`)
  assert.equal((await second).choices[0].finish_reason, 'length')

  // A non-streamed chat whose client leaves while it generates.
  const leaves = new AbortController()
  const started = nextEvent(server, 'jobStart')
  const end = nextEvent(server, 'jobEnd')
  const pending = ask(CAPITAL, long, { signal: leaves.signal })
  await started
  leaves.abort()
  await assert.rejects(pending, OpenAI.APIUserAbortError)
  const chatEnd = await end
  assert.equal(chatEnd.outcome, 'aborted')
  // Aborted while generating, the result has finishReason 'abort'; aborted before the model
  // thread got to it, the call rejects with ABORT_ERR (README, Errors). Timing decides which.
  assert.ok(chatEnd.finishReason === 'abort' || chatEnd.error?.code === 'ABORT_ERR', JSON.stringify(chatEnd))

  // A transcription whose client leaves: it rejects with ABORT_ERR on the model thread.
  const audioLeaves = new AbortController()
  const audioStarted = nextEvent(server, 'jobStart', (e) => e.kind === 'whisper')
  const audioEnd = nextEvent(server, 'jobEnd', (e) => e.kind === 'whisper')
  const transcription = client.audio.transcriptions.create(
    { model: WHISPER_ID, file: await OpenAI.toFile(readFileSync(jfk), 'jfk.wav') },
    { signal: audioLeaves.signal },
  )
  await audioStarted
  audioLeaves.abort()
  await assert.rejects(transcription, OpenAI.APIUserAbortError)
  const whisperEnd = await audioEnd
  assert.equal(whisperEnd.outcome, 'aborted')
  assert.equal(whisperEnd.error.code, 'ABORT_ERR')
  assert.deepEqual(server.status().map((m) => [m.busy, m.queued]), [[false, 0], [false, 0]])
})

test("the README's client snippet runs against the server", { skip, ...T }, async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Server'))
  const snippet = /```javascript\n([\s\S]*?)```/.exec(section)[1]
  assert.ok(snippet.includes("'http://127.0.0.1:8080/v1'") && snippet.includes("'jfk.wav'"))
  const dir = mkdtempSync(join(tmpdir(), 'mlx-napi-serve-readme-'))
  try {
    const file = join(dir, 'client.js')
    writeFileSync(file, snippet.replace("'http://127.0.0.1:8080/v1'", JSON.stringify(`${url}/v1`)).replace("'jfk.wav'", JSON.stringify(jfk)))
    // Not spawnSync: the server runs in this process and must keep serving.
    const child = spawn(process.execPath, [file], {
      cwd: dir,
      env: { ...process.env, MLX_NAPI_API_KEY: KEY, NODE_PATH: join(root, 'node_modules') },
    })
    const r = { stdout: '', stderr: '' }
    child.stdout.on('data', (d) => (r.stdout += d))
    child.stderr.on('data', (d) => (r.stderr += d))
    r.status = await new Promise((resolve) => child.on('exit', resolve))
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /Paris/)
    assert.match(r.stdout, JFK)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('mlx-napi serve: listens on the printed URL, serves, stops on SIGTERM', { skip, ...T }, async () => {
  const usageError = spawnSync(process.execPath, [join(root, 'bin', 'mlx-napi.js'), 'serve'], { encoding: 'utf8' })
  assert.equal(usageError.status, 2)
  assert.match(usageError.stderr, /^ERR_USAGE: give at least one model/)

  const child = spawn(process.execPath, [join(root, 'bin', 'mlx-napi.js'), 'serve', '--llm', llmDir, '--whisper', `whisper-1=${whisperDir}`,
    '--port', '0', '--no-warmup'], { env: { ...process.env, MLX_NAPI_API_KEY: 'cli-key' } })
  let stderr = ''
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  try {
    const base = await new Promise((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr)
        if (m) resolve(m[1])
      })
      child.on('exit', () => reject(new Error(`serve exited:\n${stderr}`)))
    })
    const models = await fetch(`${base}/v1/models`, { headers: { authorization: 'Bearer cli-key' } })
    assert.deepEqual((await models.json()).data.map((m) => m.id), [LLM_ID, 'whisper-1'])
    assert.equal((await fetch(`${base}/v1/models`)).status, 401)
    const cliClient = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'cli-key', maxRetries: 0 })
    const r = await cliClient.completions.create({ model: LLM_ID, prompt: 'The capital of France is', max_tokens: 2, temperature: 0 })
    assert.equal(r.choices[0].text, (await llm.generate('The capital of France is', { maxTokens: 2, temperature: 0 })).text)
  } finally {
    child.kill('SIGTERM')
  }
  const { code } = await exited
  assert.equal(code, 0, stderr)
  assert.match(stderr, /stopping/)
})

test('translation through the real engine on a multilingual model (random weights): the openai client gets task translate', { skip, timeout: 120_000 }, async () => {
  const { loadWhisper } = require('../index.js')
  const dir = multilingualFixture()
  const multi = await loadWhisper(dir, { tokenizerDir: whisperDir })
  const local = createServer({ whispers: [{ id: 'multi', model: multi }] })
  try {
    const base = await local.listen({ port: 0 })
    const c = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused' })
    const file = new File([readFileSync(jfk)], 'jfk.wav')
    // temperature 1: one sampling pass. OpenAI's 0 means the fallback sequence 0, 0.2, … 1,
    // and random weights fail its thresholds at every step (six decodes, up to 224 tokens each).
    const verbose = await c.audio.translations.create({ file, model: 'multi', response_format: 'verbose_json', temperature: 1 })
    assert.equal(verbose.task, 'translate')
    assert.equal(typeof verbose.text, 'string')
    assert.ok(verbose.duration > 10 && verbose.duration < 12, String(verbose.duration))
    // A language name, as OpenAI reports it (random weights pick some language).
    assert.match(verbose.language, /^[a-z ]+$/)
    const text = await c.audio.translations.create({ file, model: 'multi', response_format: 'text', temperature: 1 })
    assert.equal(typeof text, 'string')
  } finally {
    await local.close()
    await multi.dispose()
    rmSync(dir, { recursive: true, force: true })
  }
})
