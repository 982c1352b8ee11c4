#!/usr/bin/env node
// Batched decoding against solo runs at temperature 0, on a real model and a
// real device (the CI test does the same on the CPU): prompts of different
// lengths, so that the batch cache is left-padded and a batch step's attention
// hides the padding (on CUDA: the padded-attention kernel; with
// MLX_NAPI_PADDED_ATTENTION=0, MLX's masked attention). Prints one JSON line
// and exits 1 when a row's tokens differ from its solo run.
//
//   node benchmark/batch_equals_solo.mjs --model DIR [--tokens 48]
import { parseArgs } from 'node:util'
import mlx from '../index.js'

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    tokens: { type: 'string', default: '48' },
  },
})
if (!a.model) throw new Error('--model DIR')

const questions = [
  'Name the capital of France.',
  'Write one sentence about the sea, then one about the mountains, and end with a question.',
  'List three colours.',
  'Explain in two sentences why the sky is blue, as if to a child who keeps asking why.',
  'Say hello.',
  'What is 12 times 12? Answer with the number and a short explanation of how you got it.',
  'Give a synonym for happy.',
  'Describe a cat.',
]
const prompts = questions.map((content) => [{ role: 'user', content }])
const maxTokens = Number(a.tokens)
const llm = await mlx.loadLLM(a.model, { maxBatchSize: prompts.length })
const options = { maxTokens, temperature: 0 }
const solo = []
for (const p of prompts) solo.push(await llm.generate(p, options))
// Concurrent calls join one after another (different paddings), generateBatch
// prefills them together: both paths.
const concurrent = await Promise.all(prompts.map((p) => llm.generate(p, options)))
const batch = await llm.generateBatch(prompts, options)
const same = (x, y) => x.tokens.length === y.tokens.length && x.tokens.every((t, i) => t === y.tokens[i])
const differs = (rows) => rows.flatMap((r, i) => (same(r, solo[i]) ? [] : [i]))
const report = {
  backend: mlx.backendInfo().backend,
  padded_attention: process.env.MLX_NAPI_PADDED_ATTENTION !== '0',
  prompts: prompts.length,
  tokens: solo.map((r) => r.tokens.length),
  concurrent_differs: differs(concurrent),
  batch_differs: differs(batch),
}
console.log(JSON.stringify(report))
await llm.dispose()
process.exitCode = report.concurrent_differs.length || report.batch_differs.length ? 1 : 0
