// The OpenAI-compatible server's own logic, over stand-in models (no MLX, no
// ../shared): which options reach the model, the error table (500 / 503 /
// context length), errors in the middle of a stream, the bounded queue and a
// client leaving it, translation on a multilingual model, timestamp
// granularities, auth. The real models are exercised in serve.test.mjs.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import OpenAI from 'openai'

const require = createRequire(import.meta.url)
const { createServer } = require('../lib/server/index.js')
const { temperatureOf } = require('../lib/server/routes/audio.js')

const KEY = 'stub-key'
/** Options GenerateOptions documents (index.d.ts); nothing else may reach the model. */
const GENERATE_KEYS = new Set(['maxTokens', 'temperature', 'topP', 'topK', 'minP', 'repetitionPenalty',
  'repetitionContextSize', 'presencePenalty', 'frequencyPenalty', 'logitBias', 'seed', 'stop', 'ignoreEos',
  'prefillChunkSize', 'skipSpecialTokens', 'signal', 'responseFormat', 'grammar', 'tools', 'toolChoice'])
const TRANSCRIBE_KEYS = new Set(['language', 'task', 'temperature', 'initialPrompt', 'wordTimestamps', 'signal'])

const coded = (code, message) => Object.assign(new Error(message), { code })

/** A stand-in LLM: answers `echo:<last message>`, or does what `behaviour` says. */
class StubLLM {
  constructor() {
    this.calls = []
    this.behaviour = null
    this.tokenizer = { decode: (ids) => ids.map((i) => `<${i}>`).join('') }
  }
  applyChatTemplate() {
    return 'x'
  }
  #text(input) {
    return typeof input === 'string' ? `echo:${input}` : `echo:${input.at(-1).content}`
  }
  async generate(input, options) {
    this.calls.push({ input, options })
    if (this.behaviour) return this.behaviour(input, options)
    const text = this.#text(input)
    return { text, finishReason: 'stop', usage: { promptTokens: 3, prefilledTokens: 3, completionTokens: 2 } }
  }
  stream(input, options) {
    this.calls.push({ input, options })
    const pieces = [...this.#text(input)]
    const behaviour = this.behaviour
    let i = 0
    return {
      async next() {
        if (behaviour) return behaviour(i++)
        if (i < pieces.length) return { done: false, value: { text: pieces[i], tokenId: i, index: i++ } }
        return { done: true, value: { text: pieces.join(''), finishReason: 'length', usage: { promptTokens: 3, prefilledTokens: 3, completionTokens: pieces.length } } }
      },
    }
  }
}

class StubWhisper {
  constructor() {
    this.multilingual = true
    this.languages = ['en', 'de', 'fr']
    this.calls = []
  }
  async transcribe(audio, options) {
    this.calls.push({ audio, options })
    const words = options.wordTimestamps ? [{ word: ' Hallo', start: 0, end: 0.5, probability: 0.9 }, { word: ' Welt.', start: 0.5, end: 1, probability: 0.8 }] : undefined
    return {
      text: ' Hallo Welt.',
      language: options.language ?? 'de',
      languageProbability: 0.9,
      duration: 1.2,
      segments: [{ id: 0, seek: 0, start: 0, end: 1, text: ' Hallo Welt.', tokens: [1, 2], avgLogprob: -0.1, compressionRatio: 1, noSpeechProb: 0.01, temperature: 0, words }],
      timings: {},
    }
  }
}

let llm, whisper, server, url, client

before(async () => {
  llm = new StubLLM()
  whisper = new StubWhisper()
  server = createServer({
    llms: [{ id: 'stub-llm', model: llm }],
    whispers: [{ id: 'stub-whisper', model: whisper }],
    apiKey: KEY,
    maxQueue: 1,
  })
  url = await server.listen({ port: 0 })
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0 })
})
after(() => server.close())

/** The status / OpenAI error of a call that must fail. */
async function failure(promise) {
  try {
    await promise
  } catch (err) {
    return err
  }
  assert.fail('the request succeeded')
}

test('OpenAI fields are mapped by name to documented options, nothing else passes', { timeout: 30_000 }, async () => {
  llm.calls.length = 0
  const r = await client.chat.completions.create({
    model: 'stub-llm',
    messages: [{ role: 'developer', content: 'sys' }, { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }],
    max_completion_tokens: 7,
    temperature: 0.5,
    top_p: 0.9,
    seed: 42,
    stop: 'END',
    presence_penalty: 0.1,
    frequency_penalty: -0.2,
    logit_bias: { 17: -100 },
    user: 'someone',
    // Extensions and fields a client may add that the server ignores.
    top_k: 40,
    min_p: 0.05,
    repetition_penalty: 1.1,
    metadata: { a: 'b' },
    store: false,
  })
  assert.equal(r.choices[0].message.content, 'echo:ab')
  const { input, options } = llm.calls[0]
  assert.deepEqual(input, [{ role: 'system', content: 'sys' }, { role: 'user', content: 'ab' }])
  for (const key of Object.keys(options)) assert.ok(GENERATE_KEYS.has(key), `unexpected option ${key}`)
  const { signal, ...rest } = options
  assert.ok(signal instanceof AbortSignal)
  assert.deepEqual(rest, {
    maxTokens: 7, temperature: 0.5, topP: 0.9, seed: 42, stop: ['END'], presencePenalty: 0.1,
    frequencyPenalty: -0.2, logitBias: { 17: -100 }, topK: 40, minP: 0.05, repetitionPenalty: 1.1,
  })
  // Defaults: OpenAI's temperature 1; the server's max_tokens for chat, 16 for completions.
  await client.chat.completions.create({ model: 'stub-llm', messages: [{ role: 'user', content: 'x' }] })
  assert.equal(llm.calls[1].options.temperature, 1)
  assert.equal(llm.calls[1].options.maxTokens, 4096)
  await client.completions.create({ model: 'stub-llm', prompt: [1, 2, 3], echo: true })
  assert.deepEqual([...llm.calls[2].input], [1, 2, 3])
  assert.equal(llm.calls[2].options.maxTokens, 16)
  // The grammar extension (llama.cpp's field), a string or { type, source }, on both routes.
  const gbnf = 'root ::= "yes" | "no"'
  await client.completions.create({ model: 'stub-llm', prompt: 'x', grammar: gbnf })
  assert.equal(llm.calls[3].options.grammar, gbnf)
  await client.chat.completions.create({ model: 'stub-llm', messages: [{ role: 'user', content: 'x' }], grammar: { type: 'regex', source: '[0-9]+', extra: 1 } })
  assert.deepEqual(llm.calls[4].options.grammar, { type: 'regex', source: '[0-9]+' })
})

test('unsupported request features are 400s that name the parameter', { timeout: 30_000 }, async () => {
  const cases = [
    [{ n: 2 }, 'n'],
    [{ tools: [{ type: 'function' }] }, 'tools[0].function'],
    [{ response_format: { type: 'xml' } }, 'response_format.type'],
    [{ grammar: { type: 'ebnf', source: 'x' } }, 'grammar.type'],
    [{ grammar: 42 }, 'grammar'],
    [{ response_format: { type: 'json_schema', json_schema: { name: 'x' } } }, 'response_format'],
    [{ logprobs: true }, 'logprobs'],
    [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].tool_call_id'],
    [{ messages: [{ role: 'function', content: 'x', name: 'f' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content[0]'],
    [{ temperature: 2.5 }, 'temperature'],
    [{ top_p: 0 }, 'top_p'],
    [{ messages: [] }, 'messages'],
    [{ messages: [{ role: 'user' }] }, 'messages[0].content'],
    [{ logit_bias: { abc: 1 } }, 'logit_bias'],
    [{ stop: [''] }, 'stop[0]'],
  ]
  for (const [patch, param] of cases) {
    const err = await failure(client.chat.completions.create({ model: 'stub-llm', messages: [{ role: 'user', content: 'x' }], ...patch }))
    assert.equal(err.status, 400, `${JSON.stringify(patch)}: ${err.message}`)
    assert.equal(err.param, param, `${JSON.stringify(patch)}: ${err.message}`)
    assert.equal(err.type, 'invalid_request_error')
  }
  const many = await failure(client.completions.create({ model: 'stub-llm', prompt: ['a', 'b'] }))
  assert.equal(many.status, 400)
  assert.equal(many.param, 'prompt')
})

test('response_format, tools and tool messages reach the addon; tool calls come back (JSON and SSE)', { timeout: 30_000 }, async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]
  const schema = { type: 'object', properties: { a: { type: 'integer' } } }
  await client.chat.completions.create({
    model: 'stub-llm',
    messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { name: 'thing', schema, strict: true } },
  })
  assert.deepEqual(llm.calls.at(-1).options.responseFormat, { type: 'json_schema', schema })
  await client.chat.completions.create({ model: 'stub-llm', messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' } })
  assert.deepEqual(llm.calls.at(-1).options.responseFormat, { type: 'json_object' })

  const call = { id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }
  llm.behaviour = () => ({ text: '<tool_call>…</tool_call>', content: '', toolCalls: [call], finishReason: 'stop', usage: { promptTokens: 3, prefilledTokens: 3, completionTokens: 9 } })
  const messages = [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: null, tool_calls: [call] },
    { role: 'tool', tool_call_id: 'call_0', content: '{"temp":21}' },
  ]
  const r = await client.chat.completions.create({ model: 'stub-llm', messages, tools, tool_choice: 'required' })
  const { input, options } = llm.calls.at(-1)
  assert.deepEqual(options.tools, tools)
  assert.equal(options.toolChoice, 'required')
  assert.deepEqual(input, [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: '', tool_calls: [call] },
    { role: 'tool', content: '{"temp":21}', tool_call_id: 'call_0' },
  ])
  assert.equal(r.choices[0].finish_reason, 'tool_calls')
  assert.equal(r.choices[0].message.content, null)
  assert.deepEqual(r.choices[0].message.tool_calls, [call])
  llm.behaviour = null

  // Streamed: the reply is held back and its calls sent as tool_calls deltas.
  const pieces = ['<tool', '_call>', '…']
  llm.behaviour = (i) =>
    i < pieces.length
      ? { done: false, value: { text: pieces[i], tokenId: i, index: i } }
      : { done: true, value: { text: pieces.join(''), content: '', toolCalls: [call], finishReason: 'stop', usage: { promptTokens: 3, prefilledTokens: 3, completionTokens: 3 } } }
  const stream = await client.chat.completions.create({ model: 'stub-llm', messages, tools, stream: true })
  const deltas = []
  const reasons = []
  for await (const chunk of stream) {
    deltas.push(chunk.choices[0]?.delta)
    reasons.push(chunk.choices[0]?.finish_reason)
  }
  llm.behaviour = null
  assert.ok(!deltas.some((d) => d?.content?.includes('tool')), JSON.stringify(deltas))
  const calls = deltas.flatMap((d) => d?.tool_calls ?? [])
  assert.deepEqual(calls, [{ index: 0, ...call }])
  assert.equal(reasons.at(-1), 'tool_calls')
})

test('addon error codes map to HTTP statuses through one table', { timeout: 30_000 }, async () => {
  const cases = [
    [coded('ERR_INVALID_ARG', 'topK out of range'), 400, 'invalid_request_error'],
    [coded('ERR_INVALID_ARG_TYPE', 'options.maxTokens must be a number'), 400, 'invalid_request_error'],
    [coded('ERR_PROMPT_TOO_LONG', 'prompt of 9000 tokens'), 400, 'invalid_request_error', 'context_length_exceeded'],
    [coded('ERR_INVALID_SCHEMA', 'invalid responseFormat'), 400, 'invalid_request_error'],
    [coded('ERR_INVALID_GRAMMAR', 'invalid grammar'), 400, 'invalid_request_error'],
    [coded('ERR_TOKENIZER', 'template error'), 400, 'invalid_request_error'],
    [coded('ERR_DISPOSED', 'disposed'), 503, 'server_error'],
    [coded('ERR_MLX', 'out of memory'), 500, 'server_error'],
    [coded('ERR_INTERNAL', 'panic'), 500, 'server_error'],
    [new Error('no code at all'), 500, 'server_error'],
  ]
  const errors = []
  server.on('requestError', (e) => errors.push(e))
  try {
    for (const [error, status, type, code] of cases) {
      llm.behaviour = () => Promise.reject(error)
      const err = await failure(client.chat.completions.create({ model: 'stub-llm', messages: [{ role: 'user', content: 'x' }] }))
      assert.equal(err.status, status, error.message)
      assert.equal(err.type, type)
      assert.match(err.message, new RegExp(error.message))
      if (code) assert.equal(err.code, code)
    }
  } finally {
    llm.behaviour = null
  }
  // Server-side failures (5xx) are reported for logging; client errors are not.
  assert.deepEqual(errors.map((e) => e.error.code ?? null), ['ERR_DISPOSED', 'ERR_MLX', 'ERR_INTERNAL', null])
})

test('an error before the first token is a status; after it, an error event ends the stream', { timeout: 30_000 }, async () => {
  llm.behaviour = () => Promise.reject(coded('ERR_PROMPT_TOO_LONG', 'too long'))
  const early = await failure(client.chat.completions.create({ model: 'stub-llm', messages: [{ role: 'user', content: 'x' }], stream: true }))
  assert.equal(early.status, 400)
  llm.behaviour = (i) => (i === 0 ? Promise.resolve({ done: false, value: { text: 'Hel', tokenId: 1, index: 0 } }) : Promise.reject(coded('ERR_MLX', 'device lost')))
  const got = []
  const late = await failure(
    (async () => {
      const stream = await client.chat.completions.create({ model: 'stub-llm', messages: [{ role: 'user', content: 'x' }], stream: true })
      for await (const c of stream) got.push(c.choices[0]?.delta?.content ?? '')
    })(),
  )
  llm.behaviour = null
  assert.equal(got.join(''), 'Hel')
  assert.match(late.message, /device lost/)
})

test('the queue is bounded (429), and a client leaving the queue never reaches the model', { timeout: 30_000 }, async () => {
  let release
  const held = new Promise((r) => (release = r))
  llm.calls.length = 0
  llm.behaviour = async () => {
    await held
    return { text: 'done', finishReason: 'stop', usage: { promptTokens: 1, prefilledTokens: 1, completionTokens: 1 } }
  }
  const ask = (opts) => client.chat.completions.create({ model: 'stub-llm', messages: [{ role: 'user', content: 'x' }] }, opts)
  const started = new Promise((r) => server.once('jobStart', r))
  const first = ask()
  await started
  const queued = new Promise((r) => server.once('jobQueued', r))
  const leaving = new AbortController()
  const second = ask({ signal: leaving.signal })
  await queued
  const full = await failure(ask())
  assert.equal(full.status, 429)
  assert.equal(full.code, 'queue_full')
  leaving.abort()
  await assert.rejects(second, OpenAI.APIUserAbortError)
  // The server notices the client left and drops the request from the queue.
  while (server.status().find((m) => m.id === 'stub-llm').queued > 0) await new Promise((r) => setTimeout(r, 20))
  release()
  assert.equal((await first).choices[0].message.content, 'done')
  llm.behaviour = null
  assert.equal(llm.calls.length, 1, 'the request that left while queued reached the model')
})

test('translation on a multilingual model, language names, timestamp granularities', { timeout: 30_000 }, async () => {
  const file = new File([new Uint8Array(64)], 'a.wav')
  whisper.calls.length = 0
  const verbose = await client.audio.translations.create({ file, model: 'stub-whisper', response_format: 'verbose_json', prompt: 'Names', temperature: 0.5 })
  assert.equal(verbose.task, 'translate')
  assert.equal(verbose.language, 'german')
  assert.equal(verbose.text, 'Hallo Welt.')
  assert.equal(verbose.segments.length, 1)
  assert.equal(verbose.words, undefined)
  assert.deepEqual(whisper.calls[0].options.task, 'translate')
  assert.equal(whisper.calls[0].options.initialPrompt, 'Names')
  assert.deepEqual(whisper.calls[0].options.temperature, [0.5, 0.7, 0.9])
  for (const key of Object.keys(whisper.calls[0].options)) assert.ok(TRANSCRIBE_KEYS.has(key), `unexpected option ${key}`)

  const words = await client.audio.transcriptions.create({ file, model: 'stub-whisper', language: 'fr', response_format: 'verbose_json', timestamp_granularities: ['word'] })
  assert.equal(words.segments, undefined, 'word granularity alone leaves segments out')
  assert.deepEqual(words.words.map((w) => w.word), ['Hallo', 'Welt.'])
  assert.equal(words.language, 'french')
  assert.equal(whisper.calls[1].options.language, 'fr')
  assert.equal(whisper.calls[1].options.wordTimestamps, true)

  for (const [params, param] of [
    [{ response_format: 'json', timestamp_granularities: ['word'] }, 'timestamp_granularities'],
    [{ language: 'xx' }, 'language'],
    [{ response_format: 'mp3' }, 'response_format'],
    [{ temperature: 1.5 }, 'temperature'],
    [{ model: 'stub-llm' }, 'model'],
  ]) {
    const err = await failure(client.audio.transcriptions.create({ file, model: 'stub-whisper', ...params }))
    assert.equal(err.status, 400, err.message)
    assert.equal(err.param, param)
  }
  assert.deepEqual(temperatureOf('0'), undefined)
  assert.deepEqual(temperatureOf('1'), [1])
})

test('auth: every route but /health needs the bearer key', { timeout: 30_000 }, async () => {
  assert.equal((await fetch(`${url}/health`)).status, 200)
  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: KEY }]) {
    const r = await fetch(`${url}/v1/models`, { headers })
    assert.equal(r.status, 401)
    const body = await r.json()
    assert.equal(body.error.code, 'invalid_api_key')
  }
  const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'nope', maxRetries: 0 })
  assert.equal((await failure(bad.models.list())).status, 401)
  assert.deepEqual((await client.models.list()).data.map((m) => m.id), ['stub-llm', 'stub-whisper'])
})

test('createServer checks its options', { timeout: 30_000 }, () => {
  assert.throws(() => createServer({}), RangeError)
  assert.throws(() => createServer({ llms: [{ id: 'a', model: llm }, { id: 'a', model: llm }] }), RangeError)
  assert.throws(() => createServer({ llms: [{ id: '', model: llm }] }), TypeError)
  assert.throws(() => createServer({ llms: [{ id: 'a', model: llm }], maxQueue: -1 }), RangeError)
})

test('an LLM queue admits maxBatchSize requests at once (they decode in one batch); the rest wait in order', async () => {
  const { ModelQueue } = require('../lib/server/queue.js')
  const queue = new ModelQueue('m', 1, 3)
  const started = []
  const releases = []
  const task = (i) => () => {
    started.push(i)
    return new Promise((r) => releases.push(() => r(i)))
  }
  const signal = new AbortController().signal
  const runs = [0, 1, 2, 3].map((i) => queue.run(task(i), signal))
  await new Promise((r) => setImmediate(r))
  assert.deepEqual(started, [0, 1, 2], 'three run at once, the fourth waits')
  assert.equal(queue.queued, 1)
  assert.equal(queue.busy, true)
  const full = await queue.run(task(9), signal).catch((e) => e)
  assert.equal(full.status, 429, 'one waiting is the limit')
  releases[1]()
  await runs[1]
  await new Promise((r) => setImmediate(r))
  assert.deepEqual(started, [0, 1, 2, 3], 'a finished request hands its slot to the waiting one')
  for (const release of [releases[0], releases[2], releases[3]]) release()
  assert.deepEqual(await Promise.all(runs), [0, 1, 2, 3])
  assert.equal(queue.busy, false)
  assert.equal(queue.queued, 0)
})
