#!/usr/bin/env node
// Constrained vs unconstrained decode speed on one model, in one process:
// greedy, the same prompt and token count, the kinds taking turns in rounds
// (each round runs every kind once, in an order that rotates, so no kind is
// always first). Each constrained kind stays open for the whole run, so every
// step pays for a host mask (llguidance) and the split step (forward queued
// before the read, sampling after the mask):
//   regex      letters and spaces, open-ended (`[a-z ]+`);
//   regex{N}   the same with a counted repetition of far more characters than
//              the tokens can hold — llguidance's mask for it costs 0.3–0.5 ms
//              per token on a 49k vocabulary (measured on the CPU), so it shows
//              what a costly grammar does to a fast step;
//   json       a JSON schema's grammar (an array of objects too long to finish).
//
// The slowdown is reported two ways: from the kinds' medians, and as the
// median of the per-round ratios (a kind against the free run of its own
// round), which cancels the machine's drift between rounds — on a launch-bound
// 0.5B step the free rate alone moves ±6 % from pass to pass.
//
//   node benchmark/constrained.mjs --model DIR [--runs 5] [--tokens 128]
//        [--kinds free,regex,regex{N},json] [--json FILE]
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { median, summarize } from './stats.mjs'

const require = createRequire(import.meta.url)
const { loadLLM } = require('../index.js')

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    runs: { type: 'string', default: '5' },
    tokens: { type: 'string', default: '128' },
    kinds: { type: 'string', default: 'free,regex,regex{N},json' },
    json: { type: 'string' },
  },
})
if (!a.model) throw new Error('--model DIR is required')
const runs = Number(a.runs)
const tokens = Number(a.tokens)

const llm = await loadLLM(a.model)
const prompt = 'Write a long story about the sea:'
const all = {
  free: { ignoreEos: true },
  regex: { grammar: { type: 'regex', source: '[a-z ]+' } },
  'regex{N}': { grammar: { type: 'regex', source: `[a-z ]{${tokens * 40}}` } },
  // An array too long to finish: the JSON grammar's mask at every step.
  json: { responseFormat: { type: 'json_schema', schema: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' }, name: { type: 'string' } }, required: ['id', 'name'] }, minItems: 100000 } } },
}
const names = a.kinds.split(',')
for (const k of names) if (!all[k]) throw new Error(`unknown kind ${k} (${Object.keys(all).join(', ')})`)
if (!names.includes('free')) names.unshift('free')
// A short warm-up of every kind (kernels compile, grammars build).
for (const k of names) await llm.generate(prompt, { maxTokens: 8, ...all[k] })
// An open-ended grammar may end early (EOS is allowed once it accepts): such a
// run still times its steps; a very short one would time mostly the first
// steps and is left out.
const shortest = Math.min(tokens, 64)
const rounds = []
for (let i = 0; i < runs; i++) {
  const order = names.map((_, j) => names[(i + j) % names.length])
  const round = {}
  for (const kind of order) {
    const r = await llm.generate(prompt, { maxTokens: tokens, ...all[kind] })
    round[kind] = { tokens: r.usage.completionTokens, rate: r.timings.decodeTokensPerSec }
  }
  rounds.push(round)
}
await llm.dispose()

const label = (k) => (k === 'regex{N}' ? `regex{${tokens * 40}}` : k)
const timed = (k) => rounds.filter((r) => r[k].tokens >= shortest)
const pct = (x) => `${x >= 0 ? '' : '+'}${Math.abs(x * 100).toFixed(1)} %`
const free = median(rounds.map((r) => r.free.rate))
const report = { model: a.model, tokens, runs, kinds: {} }
for (const k of names) {
  const rs = timed(k)
  const ls = rounds.map((r) => r[k].tokens)
  if (!rs.length) {
    console.log(`${label(k).padEnd(12)} no run reached ${shortest} tokens (${ls.join(', ')}): not timed`)
    continue
  }
  const rates = summarize(rs.map((r) => r[k].rate))
  // Slowdown per round: 1 − rate ÷ the same round's free rate.
  const slow = summarize(rs.map((r) => 1 - r[k].rate / r.free.rate))
  report.kinds[label(k)] = { rates, slowdownPerRound: slow, tokens: ls }
  const line = `${label(k).padEnd(12)} median ${rates.median.toFixed(1)} tok/s (min ${rates.min.toFixed(1)}, max ${rates.max.toFixed(1)}) [${rates.runs} runs; ${Math.min(...ls)}–${Math.max(...ls)} tokens]`
  console.log(k === 'free' ? line : `${line}; ${pct((free - rates.median) / free)} slower than free by medians, ${pct(slow.median)} per round (${pct(slow.min)} – ${pct(slow.max)})`)
}
if (a.json) writeFileSync(a.json, JSON.stringify({ ...report, rounds }, null, 1))
