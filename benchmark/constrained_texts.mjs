#!/usr/bin/env node
// Constrained outputs on a real model and a real device, for comparing two
// builds or settings of the mask (the CUDA allowed-token kernel on uploaded
// or mapped words, or MLX ops: MLX_NAPI_MASK_KERNEL=1 / mapped / 0): JSON schemas (nested objects, arrays,
// enums, integer bounds), any JSON object and a regex; greedy and sampled at
// temperature 1 with a seed; solo calls, then each in a batch of two. Every
// JSON output must parse and validate (ajv). Prints one
// JSON line per output (diff two runs' stdout) and exits 1 when an output
// breaks its constraint.
//
//   node benchmark/constrained_texts.mjs --model DIR [--tokens 96]
import { parseArgs } from 'node:util'
import Ajv from 'ajv'
import mlx from '../index.js'

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    tokens: { type: 'string', default: '96' },
  },
})
if (!a.model) throw new Error('--model DIR')

const person = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 20 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    role: { enum: ['admin', 'user', 'guest'] },
    tags: { type: 'array', items: { type: 'string', maxLength: 10 }, maxItems: 3 },
    address: { type: 'object', properties: { city: { type: 'string', maxLength: 20 } }, required: ['city'] },
  },
  required: ['name', 'age', 'role', 'tags', 'address'],
  additionalProperties: false,
}
const ajv = new Ajv()
const list = { type: 'array', items: { type: 'integer', minimum: -5, maximum: 5 }, minItems: 2, maxItems: 6 }
const kinds = [
  ['person', { responseFormat: { type: 'json_schema', schema: person } }],
  ['list', { responseFormat: { type: 'json_schema', schema: list } }],
  ['object', { responseFormat: { type: 'json_object' } }],
  ['regex', { grammar: { type: 'regex', source: '(yes|no), because [a-z ]{5,40}\\.' } }],
]
// What a whole output must satisfy, from the options that constrained it.
const valid = ({ responseFormat: f, grammar: g }) => {
  if (g) {
    const whole = new RegExp(`^(?:${g.source})$`)
    return (text) => whole.test(text)
  }
  const schema = f.type === 'json_object' ? { type: 'object' } : f.schema
  return (text) => {
    try {
      return ajv.validate(schema, JSON.parse(text))
    } catch {
      return false
    }
  }
}
const llm = await mlx.loadLLM(a.model, { maxBatchSize: 16 })
const prompt = [{ role: 'user', content: 'Describe a person who works in a library, as JSON.' }]
const calls = kinds.flatMap(([kind, extra]) =>
  [{ temperature: 0 }, { temperature: 1, seed: 11 }].map((s) => ({ kind, valid: valid(extra), options: { maxTokens: Number(a.tokens), ...s, ...extra } })),
)
let broken = 0
const check = (mode, call, r) => {
  // Cut by maxTokens, an output is a prefix, not a whole value.
  const ok = r.finishReason === 'length' || call.valid(r.text)
  if (!ok) broken++
  console.log(JSON.stringify({ mode, kind: call.kind, temperature: call.options.temperature, ok, finish: r.finishReason, text: r.text }))
}
for (const call of calls) check('solo', call, await llm.generate(prompt, call.options))
// Batched: each call's options for two prompts of different lengths at once
// (generateBatch prefills them together, so the batch is the same every run;
// concurrent calls would join in an order that depends on timing, and a
// near-tie in bf16 can then flip between runs).
const other = [{ role: 'user', content: 'Describe, as JSON, a person who repairs old clocks in a small town by the sea.' }]
for (const call of calls) {
  const rows = await llm.generateBatch([prompt, other], call.options)
  rows.forEach((r) => check('batch', call, r))
}
await llm.dispose()
console.error(`constrained_texts: ${calls.length * 3} outputs, ${broken} broken (MLX_NAPI_MASK_KERNEL=${process.env.MLX_NAPI_MASK_KERNEL ?? 'unset'})`)
process.exitCode = broken ? 1 : 0
