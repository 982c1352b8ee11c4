#!/usr/bin/env node
// Constrained vs unconstrained decode speed on one model, in one process,
// the kinds alternating: greedy, the same prompt and token count. Each
// constrained kind stays open for the whole run, so every step pays for a
// host mask (llguidance) and the split step (forward queued before the read,
// sampling after the mask):
//   regex      letters and spaces, open-ended (`[a-z ]+`);
//   regex{N}   the same with a counted repetition of far more characters than
//              the tokens can hold — llguidance's mask for it costs 0.3–0.5 ms
//              per token on a 49k vocabulary (measured on the CPU), so it shows
//              what a costly grammar does to a fast step;
//   json       a JSON schema's grammar (an array of objects too long to finish).
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
  regex: { grammar: { type: 'regex', source: '[a-z ]+' } },
  [`regex{${tokens * 40}}`]: { grammar: { type: 'regex', source: `[a-z ]{${tokens * 40}}` } },
  // An array too long to finish: the JSON grammar's mask at every step.
  json: { responseFormat: { type: 'json_schema', schema: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' }, name: { type: 'string' } }, required: ['id', 'name'] }, minItems: 100000 } } },
}
await llm.generate(prompt, { maxTokens: 8 })
const rates = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]))
const lengths = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]))
for (let i = 0; i < runs; i++) {
  for (const [kind, extra] of Object.entries(kinds)) {
    const r = await llm.generate(prompt, { maxTokens: tokens, ...extra })
    // An open-ended grammar may end early (EOS is allowed once it accepts):
    // such a run still times its steps; a very short one would time mostly
    // the first steps and is left out.
    const n = r.usage.completionTokens
    lengths[kind].push(n)
    if (n >= Math.min(tokens, 64)) rates[kind].push(r.timings.decodeTokensPerSec)
  }
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
const free = median(rates.free)
for (const [kind, xs] of Object.entries(rates)) {
  const ls = lengths[kind]
  if (!xs.length) {
    console.log(`${kind.padEnd(12)} no run reached ${Math.min(tokens, 64)} tokens (${ls.join(', ')}): not timed`)
    continue
  }
  const m = median(xs)
  console.log(`${kind.padEnd(12)} median ${m.toFixed(1)} tok/s (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}) [${xs.length} runs; ${Math.min(...ls)}–${Math.max(...ls)} tokens]; ${(((free - m) / free) * 100).toFixed(1)} % slower than free`)
}
await llm.dispose()
