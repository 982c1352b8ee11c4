// Structured output (responseFormat, grammar) through the JS API on the real
// SmolLM2-135M-Instruct 4-bit checkpoint, on the CPU. Sampling runs at
// temperature 1 over many seeds so that only the token mask can keep the
// output valid; every output is checked with a JSON-schema validator (ajv).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import Ajv from 'ajv'
import { sharedPath } from './shared.mjs'

const require = createRequire(import.meta.url)
const { loadLLM } = require('../index.js')

const modelDir = sharedPath('models/smollm2-135m-instruct-4bit')
const skip = !modelDir

// Nested objects, an array, an enum, integer bounds, a boolean.
const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer', minimum: 18, maximum: 99 },
    plan: { enum: ['free', 'pro', 'team'] },
    active: { type: 'boolean' },
    scores: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, minItems: 1, maxItems: 3 },
    home: {
      type: 'object',
      properties: {
        city: { type: 'string', maxLength: 10 },
        floor: { type: 'integer', minimum: -2, maximum: 40 },
      },
      required: ['city', 'floor'],
      additionalProperties: false,
    },
  },
  required: ['name', 'age', 'plan', 'active', 'scores', 'home'],
  additionalProperties: false,
}
const validate = new Ajv({ strict: true }).compile(schema)
// An empty system message: the template's default one would add 16 prompt tokens
// to each of the seven calls that ask this (a CPU prefills ~10 tokens/s).
const ask = [{ role: 'system', content: '' }, { role: 'user', content: 'Give me a customer record as JSON.' }]

let llm
before(async () => {
  if (!skip) llm = await loadLLM(modelDir)
})
after(async () => {
  await llm?.dispose()
})

function assertValid(text, why) {
  let value
  assert.doesNotThrow(() => (value = JSON.parse(text)), `${why}: not JSON: ${text}`)
  assert.ok(validate(value), `${why}: ${JSON.stringify(validate.errors)}: ${text}`)
}

test('json_schema: sampled outputs always validate, batched with free generations', { skip }, async () => {
  const responseFormat = { type: 'json_schema', schema }
  // Concurrent calls decode in one batch: constrained rows beside free ones.
  const constrained = Array.from({ length: 6 }, (_, seed) =>
    llm.generate(ask, { temperature: 1, seed, maxTokens: 160, responseFormat }),
  )
  const free = llm.generate('Once upon a time', { temperature: 1, seed: 1, maxTokens: 16, ignoreEos: true })
  for (const [i, r] of (await Promise.all(constrained)).entries()) {
    assert.equal(r.finishReason, 'stop', r.text)
    assertValid(r.text, `seed ${i}`)
    // One device→host read per generated token (EOS included when sampled).
    assert.ok(r.hostReads <= r.tokens.length + 1, `${r.hostReads} reads for ${r.tokens.length} tokens`)
  }
  const f = await free
  assert.equal(f.finishReason, 'length')
  assert.equal(f.usage.completionTokens, 16)
})

test('json_object in generateBatch, stream and a chat session', { skip }, async () => {
  const responseFormat = { type: 'json_object' }
  const results = await llm.generateBatch(['A JSON object:', 'Data:'], { temperature: 1, seed: 3, maxTokens: 40, responseFormat })
  for (const r of results) {
    if (r.finishReason === 'stop') assert.equal(typeof JSON.parse(r.text), 'object', r.text)
    else assert.ok(r.text.startsWith('{'), r.text)
  }

  let streamed = ''
  const s = llm.stream(ask, { temperature: 1, seed: 5, maxTokens: 160, responseFormat: { type: 'json_schema', schema } })
  let step = await s.next()
  for (; !step.done; step = await s.next()) streamed += step.value.text
  const r = step.value
  assert.equal(streamed, r.text)
  assertValid(r.text, 'stream')

  const chat = llm.chatSession()
  const yesNo = {
    type: 'object',
    properties: { answer: { enum: ['yes', 'no'] } },
    required: ['answer'],
    additionalProperties: false,
  }
  for (const q of ['Is water wet?', 'Is fire cold?']) {
    const reply = await chat.send(q, { temperature: 1, seed: 2, maxTokens: 30, responseFormat: { type: 'json_schema', schema: yesNo } })
    assert.ok(['yes', 'no'].includes(JSON.parse(reply.text).answer), reply.text)
  }
  assert.equal((await chat.history()).length, 4)
})

test('grammar: Lark string, regex object', { skip }, async () => {
  const lark = 'start: size " " fruit\nsize: "small" | "big"\nfruit: "apple" | "pear"'
  const r = await llm.generate('Pick one:', { temperature: 1, seed: 9, maxTokens: 10, grammar: lark })
  assert.match(r.text, /^(small|big) (apple|pear)$/)
  assert.equal(r.finishReason, 'stop')
  const d = await llm.generate('A date:', { temperature: 1, seed: 4, maxTokens: 20, grammar: { type: 'regex', source: '20[0-9]{2}-(0[1-9]|1[0-2])' } })
  assert.match(d.text, /^20\d\d-(0[1-9]|1[0-2])$/)
})

test('grammar: GBNF, told from Lark by its ::= rules or named by type', { skip }, async () => {
  const gbnf = '# llama.cpp style\nroot ::= size " " fruit\nsize ::= "small" | "big"\nfruit ::= "apple"\n      | "pear"'
  for (const grammar of [gbnf, { type: 'gbnf', source: gbnf }]) {
    const r = await llm.generate('Pick one:', { temperature: 1, seed: 9, maxTokens: 10, grammar })
    assert.match(r.text, /^(small|big) (apple|pear)$/)
    assert.equal(r.finishReason, 'stop')
  }
  const words = await llm.generate('Words:', { temperature: 1, seed: 3, maxTokens: 40, grammar: 'root ::= [a-z]{2,6} ("," [a-z]{2,6}){2}' })
  assert.match(words.text, /^[a-z]{2,6}(,[a-z]{2,6}){2}$/)
})

test('invalid schemas and grammars are coded errors; the model stays usable', { skip }, async () => {
  const cases = [
    [{ responseFormat: { type: 'json_schema', schema: { type: 'wat' } } }, Error, 'ERR_INVALID_SCHEMA'],
    [{ responseFormat: { type: 'json_schema' } }, Error, 'ERR_INVALID_SCHEMA'],
    [{ responseFormat: { type: 'json_schema', schema: { type: 'integer', minimum: 3, maximum: 1 } } }, Error, 'ERR_INVALID_SCHEMA'],
    [{ grammar: 'start: (' }, Error, 'ERR_INVALID_GRAMMAR'],
    [{ grammar: { type: 'regex', source: 'a(' } }, Error, 'ERR_INVALID_GRAMMAR'],
    [{ grammar: '' }, Error, 'ERR_INVALID_GRAMMAR'],
    [{ grammar: 'root ::= "a' }, Error, 'ERR_INVALID_GRAMMAR'],
    [{ grammar: { type: 'gbnf', source: 'start: "a"' } }, Error, 'ERR_INVALID_GRAMMAR'],
    [{ responseFormat: { type: 'xml' } }, RangeError, 'ERR_INVALID_ARG'],
    [{ grammar: { type: 'ebnf', source: 'x' } }, RangeError, 'ERR_INVALID_ARG'],
    [{ grammar: 'start: "a"', responseFormat: { type: 'json_object' } }, RangeError, 'ERR_INVALID_ARG'],
    [{ responseFormat: { type: 'json_object' }, ignoreEos: true }, RangeError, 'ERR_INVALID_ARG'],
    [{ grammar: 42 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ responseFormat: 'json' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ]
  for (const [options, cls, code] of cases) {
    const what = JSON.stringify(options)
    await assert.rejects(llm.generate('Hi', { maxTokens: 4, ...options }), (e) => {
      assert.ok(e instanceof cls, `${what}: ${e}`)
      assert.equal(e.code, code, `${what}: ${e.message}`)
      return true
    })
    await assert.rejects(llm.generateBatch(['Hi'], { maxTokens: 4, ...options }), { code })
  }
  const ok = await llm.generate('Hi', { maxTokens: 5, grammar: { type: 'regex', source: '[a-z]{5}' } })
  assert.match(ok.text, /^[a-z]{5}$/)
  assert.equal((await llm.generate('Hi', { maxTokens: 3 })).usage.completionTokens, 3)
})

const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather in a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', maxLength: 20 }, unit: { enum: ['C', 'F'] } },
        required: ['city', 'unit'],
        additionalProperties: false,
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'add',
      parameters: {
        type: 'object',
        properties: { a: { type: 'integer', minimum: -100, maximum: 100 }, b: { type: 'integer', minimum: -100, maximum: 100 } },
        required: ['a', 'b'],
        additionalProperties: false,
      },
    },
  },
]
const argsValid = Object.fromEntries(tools.map((t) => [t.function.name, new Ajv().compile(t.function.parameters)]))

test('tools: forced calls always parse and follow the parameter schema', { skip }, async () => {
  const messages = [{ role: 'user', content: 'What is the weather in Paris?' }]
  const forced = await Promise.all(
    Array.from({ length: 4 }, (_, seed) => llm.generate(messages, { tools, toolChoice: 'required', temperature: 1, seed, maxTokens: 80 })),
  )
  for (const r of forced) {
    assert.equal(r.toolCalls.length, 1, r.text)
    const [call] = r.toolCalls
    assert.equal(call.type, 'function')
    assert.equal(call.id, 'call_0')
    assert.ok(argsValid[call.function.name](JSON.parse(call.function.arguments)), `${r.text}: ${JSON.stringify(argsValid[call.function.name].errors)}`)
  }
  const named = await llm.generate(messages, { tools, toolChoice: { type: 'function', function: { name: 'add' } }, temperature: 1, seed: 1, maxTokens: 40 })
  assert.equal(named.toolCalls[0].function.name, 'add', named.text)
  assert.ok(argsValid.add(JSON.parse(named.toolCalls[0].function.arguments)))
  // 'none': the tools are hidden and nothing is parsed.
  const none = await llm.generate(messages, { tools, toolChoice: 'none', maxTokens: 2 })
  assert.equal(none.toolCalls, undefined)
})

test('tools: the template sees the tools; a tool result goes back in a chat session', { skip }, async () => {
  const chat = llm.chatSession()
  const first = await chat.send('Weather in Oslo?', { tools, toolChoice: { type: 'function', function: { name: 'get_weather' } }, maxTokens: 60 })
  const [call] = first.toolCalls
  assert.equal(call.function.name, 'get_weather')
  const history = await chat.history()
  assert.deepEqual(history.at(-1).tool_calls, first.toolCalls)
  const reply = await chat.send([{ role: 'tool', tool_call_id: call.id, content: '{"celsius": 21}' }], { tools, maxTokens: 4 })
  assert.equal(reply.usage.completionTokens > 0, true)
  // The earlier turns came from the session's cache.
  assert.ok(reply.usage.prefilledTokens < reply.usage.promptTokens, JSON.stringify(reply.usage))
  const all = await chat.history()
  assert.equal(all.at(-2).role, 'tool')
  assert.equal(all.at(-2).tool_call_id, call.id)
})

test('tools: bad tools and choices are coded errors', { skip }, async () => {
  const messages = [{ role: 'user', content: 'Hi' }]
  const cases = [
    [{ tools: [{ type: 'function' }] }, RangeError, 'ERR_INVALID_ARG'],
    [{ tools: [{ type: 'function', function: { name: 'a b' } }] }, RangeError, 'ERR_INVALID_ARG'],
    [{ tools: [tools[0], tools[0]] }, RangeError, 'ERR_INVALID_ARG'],
    [{ tools, toolChoice: 'always' }, RangeError, 'ERR_INVALID_ARG'],
    [{ tools, toolChoice: { type: 'function', function: { name: 'nope' } } }, RangeError, 'ERR_INVALID_ARG'],
    [{ toolChoice: 'required' }, RangeError, 'ERR_INVALID_ARG'],
    [{ tools, toolChoice: 'required', responseFormat: { type: 'json_object' } }, RangeError, 'ERR_INVALID_ARG'],
    [{ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'wat' } } }], toolChoice: 'required' }, Error, 'ERR_INVALID_SCHEMA'],
    [{ tools: 'get_weather' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ]
  for (const [options, cls, code] of cases) {
    const what = JSON.stringify(options)
    await assert.rejects(llm.generate(messages, { maxTokens: 4, ...options }), (e) => {
      assert.ok(e instanceof cls, `${what}: ${e}`)
      assert.equal(e.code, code, `${what}: ${e.message}`)
      return true
    })
  }
  assert.equal((await llm.generate(messages, { maxTokens: 2 })).usage.completionTokens, 2)
})
