'use strict'
// What `generate`, `chat` and `bench` share: sampling flags and loading an LLM.
const { loadLLM } = require('../../index.js')
const { resolveModel, expectKind } = require('./model.js')

/** Adds the sampling flags (names as the JS API's options, kebab-cased). */
function samplingOptions(command, cli) {
  const num = cli.number()
  const collect = (value, previous) => [...(previous ?? []), value]
  return command
    .option('-n, --max-tokens <n>', 'most tokens to generate', cli.number({ int: true, min: 1, max: 1e7 }), 256)
    .option('-t, --temperature <t>', 'sampling temperature (0 = greedy)', num)
    .option('--top-p <p>', 'nucleus sampling', num)
    .option('--top-k <k>', 'top-k sampling', cli.number({ int: true, min: 0, max: 1e7 }))
    .option('--min-p <p>', 'min-p sampling', num)
    .option('--repetition-penalty <x>', 'penalize recent tokens', num)
    .option('--presence-penalty <x>', 'penalize tokens already present', num)
    .option('--frequency-penalty <x>', 'penalize tokens by their count', num)
    .option('--seed <n>', 'sampling seed', cli.number({ int: true, min: 0, max: Number.MAX_SAFE_INTEGER }))
    .option('--stop <text>', 'stop before this text (repeatable)', collect)
}

function samplingOf(opts) {
  const out = {}
  for (const key of ['maxTokens', 'temperature', 'topP', 'topK', 'minP', 'repetitionPenalty', 'presencePenalty',
    'frequencyPenalty', 'seed', 'stop']) {
    if (opts[key] !== undefined) out[key] = opts[key]
  }
  return out
}

async function openLlm(opts, progress, signal, command) {
  const model = await resolveModel(opts, progress, signal)
  expectKind(model, 'llm', command)
  return loadLLM(model.path, { signal })
}

/** Whether the model has a chat template (else prompts go in as raw text). */
function hasChatTemplate(llm) {
  try {
    llm.applyChatTemplate([{ role: 'user', content: 'x' }])
    return true
  } catch {
    return false
  }
}

/** Streams a generation to stdout; resolves with the final result. */
async function streamTo(stream, out = process.stdout) {
  const it = stream[Symbol.asyncIterator]()
  for (;;) {
    const { done, value } = await it.next()
    if (done) return value
    out.write(value.text)
  }
}

function stats(result) {
  const t = result.timings
  return (
    `${result.usage.promptTokens} prompt tokens, ${result.usage.completionTokens} generated ` +
    `(${result.finishReason}); prefill ${t.prefillTokensPerSec.toFixed(1)} tok/s, ` +
    `decode ${t.decodeTokensPerSec.toFixed(1)} tok/s`
  )
}

module.exports = { samplingOptions, samplingOf, openLlm, hasChatTemplate, streamTo, stats }
