// LLM engine through the JS API, on the real SmolLM2-135M-Instruct 4-bit
// checkpoint. CPU runs use float32 (the default there), so token ids are
// compared within each prompt's stable prefix (see shared/reference/README.md).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { readSharedJson, sharedPath } from './shared.mjs'

const require = createRequire(import.meta.url)
const { loadLLM } = require('../index.js')

const modelDir = sharedPath('models/smollm2-135m-instruct-4bit')
const greedy = readSharedJson('reference/smollm2-greedy.json')
const tokenizerRef = readSharedJson('reference/smollm2-tokenizer.json')
const skip = !modelDir || !greedy || !tokenizerRef
const ref = (id) => greedy.prompts.find((p) => p.id === id)

let llm
before(async () => {
  if (!skip) llm = await loadLLM(modelDir)
})
after(async () => {
  await llm?.dispose()
})

test('tokenizer ids and decoding match the tokenizers reference', { skip }, () => {
  for (const c of tokenizerRef.cases) {
    assert.deepEqual(llm.tokenizer.encode(c.text, false), c.ids, c.name)
    assert.equal(llm.tokenizer.decode(c.ids), c.decoded, c.name)
  }
})

test('chat template renders the prompt mlx-lm used', { skip }, () => {
  const chat = ref('chat_capital')
  assert.equal(llm.applyChatTemplate(chat.messages), chat.prompt)
  assert.deepEqual(llm.tokenizer.encode(chat.prompt, false), chat.prompt_token_ids)
})

test('greedy generation reproduces mlx-lm within the stable prefix', { skip }, async () => {
  for (const id of ['raw_capital', 'chat_capital']) {
    const p = ref(id)
    const n = Math.min(p.stable_prefix_len, 6)
    const prompt = p.messages ?? p.prompt
    const r = await llm.generate(prompt, { maxTokens: n })
    assert.deepEqual(r.tokens, p.generated_token_ids.slice(0, n), id)
    assert.equal(r.finishReason, 'length')
    assert.equal(r.usage.promptTokens, p.prompt_token_ids.length)
    assert.equal(r.usage.completionTokens, n)
    // One device→host read per generated token, never logits.
    assert.equal(r.hostReads, n)
    assert.ok(r.timings.ttftMs > 0 && r.timings.totalMs >= r.timings.ttftMs)
  }
})

test('stream yields the same text as generate, then the result', { skip }, async () => {
  const prompt = ref('raw_capital').prompt
  const whole = await llm.generate(prompt, { maxTokens: 5 })
  const stream = llm.stream(prompt, { maxTokens: 5 })
  let text = ''
  const indices = []
  for await (const chunk of stream) {
    text += chunk.text
    indices.push(chunk.index)
  }
  assert.equal(text, whole.text)
  assert.deepEqual(indices, [...indices].sort((a, b) => a - b))
  // Manual iteration: the final step carries the GenerationResult.
  const s2 = llm.stream(prompt, { maxTokens: 2 })
  let step
  while (!(step = await s2.next()).done);
  assert.deepEqual(step.value.tokens, whole.tokens.slice(0, 2))
})

test('breaking out of for-await stops the generation', { skip }, async () => {
  const stream = llm.stream(ref('raw_fibonacci').prompt, { maxTokens: 200, ignoreEos: true })
  let n = 0
  for await (const _ of stream) if (++n === 2) break
  const after = await stream.next()
  assert.equal(after.done, true)
  assert.equal(after.value?.finishReason ?? 'abort', 'abort')
})

test('AbortSignal: already aborted rejects, aborting mid-way finishes with "abort"', { skip }, async () => {
  const ac = new AbortController()
  ac.abort()
  await assert.rejects(llm.generate('Hi', { signal: ac.signal }), (e) => {
    assert.equal(e.name, 'AbortError')
    assert.equal(e.code, 'ABORT_ERR')
    return true
  })
  const live = new AbortController()
  const pending = llm.generate(ref('raw_fibonacci').prompt, { maxTokens: 5000, ignoreEos: true, signal: live.signal })
  setTimeout(() => live.abort(), 300)
  const r = await pending
  assert.equal(r.finishReason, 'abort')
  assert.ok(r.tokens.length < 5000)
})

test('invalid options are RangeErrors with ERR_INVALID_ARG', { skip }, async () => {
  for (const bad of [
    { maxTokens: 0 },
    { maxTokens: 1.5 },
    { temperature: -1 },
    { topP: 0 },
    { topP: 1.5 },
    { topK: 0 },
    { minP: 2 },
    { repetitionPenalty: 0 },
    { logitBias: { abc: 1 } },
    { logitBias: { 999999: 1 } },
    { stop: [''] },
  ]) {
    await assert.rejects(llm.generate('Hi', bad), (e) => {
      assert.ok(e instanceof RangeError, JSON.stringify(bad))
      assert.equal(e.code, 'ERR_INVALID_ARG', JSON.stringify(bad))
      return true
    })
  }
  await assert.rejects(llm.generate('', { maxTokens: 1 }), { code: 'ERR_INVALID_ARG' })
})

test('stop strings end generation without emitting them', { skip }, async () => {
  // Greedy continuation of the prompt is " Paris.\n\nThe city…".
  const r = await llm.generate(ref('raw_capital').prompt, { maxTokens: 8, stop: '.' })
  assert.equal(r.finishReason, 'stop')
  assert.equal(r.text, ' Paris')
})

test('seeded sampling is reproducible', { skip }, async () => {
  const opts = { maxTokens: 4, temperature: 0.9, topP: 0.95, seed: 1234 }
  const a = await llm.generate('Once upon a time', opts)
  const b = await llm.generate('Once upon a time', opts)
  assert.deepEqual(a.tokens, b.tokens)
})

test('a chat session reuses its KV cache across turns', { skip }, async () => {
  const session = llm.chatSession({ system: 'You are terse.' })
  const first = await session.send('Hi!', { maxTokens: 3 })
  assert.equal(first.usage.prefilledTokens, first.usage.promptTokens)
  const second = await session.send('And again?', { maxTokens: 3 })
  assert.ok(second.usage.prefilledTokens < second.usage.promptTokens, JSON.stringify(second.usage))
  const history = await session.history()
  assert.deepEqual(
    history.map((m) => m.role),
    ['system', 'user', 'assistant', 'user', 'assistant'],
  )
  // The same conversation from scratch gives the same reply.
  const fresh = await llm.generate(history.slice(0, 4), { maxTokens: 3 })
  assert.deepEqual(fresh.tokens, second.tokens)
  await session.clear()
  assert.deepEqual(await session.history(), [])
})

test('bad model folders give coded errors', { skip }, async () => {
  await assert.rejects(loadLLM('/nonexistent/model'), { code: 'ERR_MODEL_NOT_FOUND' })
  const dir = mkdtempSync(join(tmpdir(), 'mlx-napi-bad-'))
  try {
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
      copyFileSync(join(modelDir, f), join(dir, f))
    }
    const weights = readFileSync(join(modelDir, 'model.safetensors'))
    writeFileSync(join(dir, 'model.safetensors'), weights.subarray(0, weights.length >> 1))
    await assert.rejects(loadLLM(dir), { code: 'ERR_MODEL_FORMAT' })
    writeFileSync(join(dir, 'config.json'), '{"model_type": "no-such-arch"}')
    writeFileSync(join(dir, 'model.safetensors'), weights)
    await assert.rejects(loadLLM(dir), { code: 'ERR_UNSUPPORTED_MODEL' })
    writeFileSync(join(dir, 'config.json'), '{ not json')
    await assert.rejects(loadLLM(dir), { code: 'ERR_MODEL_FORMAT' })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  await assert.rejects(loadLLM(modelDir, { dtype: 'float64' }), { code: 'ERR_INVALID_ARG' })
})

test('a disposed model rejects with ERR_DISPOSED', { skip }, async () => {
  const other = await loadLLM(modelDir)
  const pending = other.generate('Hi', { maxTokens: 1 }).then((r) => r, (e) => e)
  await other.dispose()
  // A call already running when dispose() came completes; one still queued
  // rejects with ERR_DISPOSED (issue #10).
  const outcome = await pending
  if (outcome instanceof Error) assert.equal(outcome.code, 'ERR_DISPOSED')
  else assert.equal(outcome.tokens.length, 1)
  await assert.rejects(other.generate('Hi'), { code: 'ERR_DISPOSED' })
  await assert.rejects(other.stream('Hi').next(), { code: 'ERR_DISPOSED' })
})
