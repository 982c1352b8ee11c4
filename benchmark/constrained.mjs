#!/usr/bin/env node
// Constrained vs unconstrained decode speed on one model, in one process,
// the two kinds alternating: greedy, the same prompt and token count. The
// constrained run uses a regex that stays open for the whole run (letters and
// spaces, far more characters than the tokens can hold), so every step pays
// for a host mask (llguidance) and the split step (forward queued before the
// read, sampling after the mask); the JSON run does the same with a JSON
// schema's grammar (an array of objects too long to finish).
//
//   node benchmark/constrained.mjs --model DIR [--runs 5] [--tokens 128]
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { loadLLM } = require('../index.js')

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    runs: { type: 'string', default: '5' },
    tokens: { type: 'string', default: '128' },
  },
})
if (!a.model) throw new Error('--model DIR is required')
const runs = Number(a.runs)
const tokens = Number(a.tokens)

const llm = await loadLLM(a.model)
const prompt = 'Write a long story about the sea:'
const kinds = {
  free: { ignoreEos: true },
  regex: { grammar: { type: 'regex', source: `[a-z ]{${tokens * 40}}` } },
  // An array too long to finish: the JSON grammar's mask at every step.
  json: { responseFormat: { type: 'json_schema', schema: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' }, name: { type: 'string' } }, required: ['id', 'name'] }, minItems: 100000 } } },
}
await llm.generate(prompt, { maxTokens: 8 })
const rates = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]))
for (let i = 0; i < runs; i++) {
  for (const [kind, extra] of Object.entries(kinds)) {
    const r = await llm.generate(prompt, { maxTokens: tokens, ...extra })
    if (r.usage.completionTokens !== tokens) throw new Error(`${kind}: ${r.usage.completionTokens} tokens`)
    rates[kind].push(r.timings.decodeTokensPerSec)
  }
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
const free = median(rates.free)
for (const [kind, xs] of Object.entries(rates)) {
  const m = median(xs)
  console.log(`${kind.padEnd(6)} median ${m.toFixed(1)} tok/s (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}); ${(((free - m) / free) * 100).toFixed(1)} % slower than free`)
}
await llm.dispose()
