// Batched decoding of concurrent calls (continuous batching), generateBatch,
// log-probs and the maxBatchSize option, on the real SmolLM2 checkpoint
// (CPU, float32). At temperature 0 every batched sequence must give exactly
// the tokens it gives alone. No timing assertions: "joins the running batch"
// and "not starved" are checked by results and by the order of settlement.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { sharedPath } from './shared.mjs'

const require = createRequire(import.meta.url)
const { loadLLM } = require('../index.js')

const modelDir = sharedPath('models/smollm2-135m-instruct-4bit')
const skip = !modelDir

// The chat prompts bring an empty system message: the template's default one would
// add 16 prompt tokens to every run of them (a CPU prefills ~10 tokens/s).
const PROMPTS = [
  'The capital of France is',
  [{ role: 'system', content: '' }, { role: 'user', content: 'Write a haiku about the sea.' }],
  'def fibonacci(n):',
  [{ role: 'system', content: '' }, { role: 'user', content: 'What is the capital of France?' }],
  'One, two, three,',
  'Roses are red,',
]

/** Settles to its name in `order` when done. */
const track = (promise, order, name) =>
  promise.then(
    (v) => { order.push(name); return v },
    (e) => { order.push(name); throw e },
  )

let llm
const alone = []
before(async () => {
  if (skip) return
  llm = await loadLLM(modelDir, { maxBatchSize: 4 })
  for (const p of PROMPTS) alone.push(await llm.generate(p, { maxTokens: 10 }))
})
after(async () => {
  await llm?.dispose()
})

test('maxBatchSize: getter, default, type and range checks', { skip }, async () => {
  assert.equal(llm.maxBatchSize, 4)
  await assert.rejects(loadLLM(modelDir, { maxBatchSize: '4' }), (e) =>
    e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE' && /options\.maxBatchSize/.test(e.message))
  for (const bad of [0, 1.5, 100000]) {
    await assert.rejects(loadLLM(modelDir, { maxBatchSize: bad }), (e) =>
      e instanceof RangeError && e.code === 'ERR_INVALID_ARG' && /maxBatchSize/.test(e.message))
  }
  const defaults = await loadLLM(modelDir)
  assert.equal(defaults.maxBatchSize, 8, 'CPU default')
  await defaults.dispose()
})

test('concurrent generate and stream calls decode together and equal their solo runs', { skip }, async () => {
  // 6 calls, 4 slots: rows leave (EOS, length) and waiting calls take their place.
  const calls = PROMPTS.map((p, i) => {
    if (i % 2 === 0) return llm.generate(p, { maxTokens: 10 })
    return (async () => {
      let text = ''
      const stream = llm.stream(p, { maxTokens: 10 })
      for await (const chunk of stream) text += chunk.text
      return text
    })()
  })
  const results = await Promise.all(calls)
  results.forEach((r, i) => {
    if (i % 2 === 0) {
      assert.deepEqual(r.tokens, alone[i].tokens, `call ${i}`)
      assert.equal(r.text, alone[i].text, `call ${i}`)
      assert.equal(r.finishReason, alone[i].finishReason, `call ${i}`)
    } else {
      assert.equal(r, alone[i].text, `stream ${i}`)
    }
  })
  // The same prompt five times over four slots.
  const same = await Promise.all([0, 1, 2, 3, 4].map(() => llm.generate(PROMPTS[0], { maxTokens: 3 })))
  for (const r of same) {
    assert.deepEqual(r.tokens, alone[0].tokens.slice(0, 3))
    assert.equal(typeof r.timings.queueMs, 'number')
  }
})

test('a call arriving while others decode joins them with its own options', { skip }, async () => {
  const long = llm.generate('Count from one to fifty:', { maxTokens: 40, ignoreEos: true })
  const second = new Promise((resolve) => setTimeout(resolve, 50)).then(() =>
    llm.generate(PROMPTS[2], { maxTokens: 10, stop: '\n' }))
  const seeded = llm.generate('Once upon a time', { maxTokens: 6, temperature: 0.8, topK: 20, seed: 5 })
  const [l, s, r] = await Promise.all([long, second, seeded])
  assert.equal(l.tokens.length, 40)
  const soloSecond = await llm.generate(PROMPTS[2], { maxTokens: 10, stop: '\n' })
  assert.deepEqual(s.tokens, soloSecond.tokens)
  assert.equal(s.text, soloSecond.text)
  const soloSeeded = await llm.generate('Once upon a time', { maxTokens: 6, temperature: 0.8, topK: 20, seed: 5 })
  assert.deepEqual(r.tokens, soloSeeded.tokens)
})

test('generateBatch returns results in prompt order, equal to solo runs', { skip }, async () => {
  const results = await llm.generateBatch(PROMPTS, { maxTokens: 10 })
  assert.equal(results.length, PROMPTS.length)
  results.forEach((r, i) => {
    assert.deepEqual(r.tokens, alone[i].tokens, `prompt ${i}`)
    assert.equal(r.text, alone[i].text, `prompt ${i}`)
  })
  assert.deepEqual(await llm.generateBatch([]), [])
  await assert.rejects(llm.generateBatch('not an array'), (e) =>
    e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE' && /prompts/.test(e.message))
  await assert.rejects(llm.generateBatch(['Hi', 42]), (e) => e instanceof TypeError && /prompt/.test(e.message))
  // One bad prompt rejects the whole call; the model serves on.
  await assert.rejects(llm.generateBatch(['Hi', new Uint32Array([999999])], { maxTokens: 2 }), { code: 'ERR_INVALID_ARG' })
  await assert.rejects(llm.generateBatch(['Hi'], { maxTokens: 0 }), { code: 'ERR_INVALID_ARG' })
  const aborted = new AbortController()
  aborted.abort()
  await assert.rejects(llm.generateBatch(['Hi'], { signal: aborted.signal }), { code: 'ABORT_ERR' })
  assert.equal((await llm.generate('Hi', { maxTokens: 2 })).tokens.length, 2)
})

test('log-probs: one entry per token, alternatives sorted, in results and stream chunks', { skip }, async () => {
  const r = await llm.generate(PROMPTS[0], { maxTokens: 5, logprobs: true, topLogprobs: 3 })
  assert.deepEqual(r.tokens, alone[0].tokens.slice(0, 5))
  assert.equal(r.logprobs.length, r.tokens.length)
  assert.equal(r.hostReads, 5, 'still one host read per token')
  r.logprobs.forEach((lp, i) => {
    assert.equal(lp.token, r.tokens[i])
    assert.ok(lp.logprob <= 0)
    assert.equal(lp.topLogprobs.length, 3)
    const values = lp.topLogprobs.map((t) => t.logprob)
    assert.deepEqual(values, [...values].sort((a, b) => b - a))
    assert.equal(lp.topLogprobs[0].token, lp.token, 'greedy picks the most likely')
  })
  // Without topLogprobs: the token's own log-probability only; without logprobs: none.
  const own = await llm.generate(PROMPTS[0], { maxTokens: 5, logprobs: true })
  own.logprobs.forEach((lp, i) => {
    assert.deepEqual(lp.topLogprobs, [])
    assert.ok(Math.abs(lp.logprob - r.logprobs[i].logprob) < 1e-4)
  })
  assert.equal(alone[0].logprobs, undefined)
  // topLogprobs alone implies logprobs.
  assert.equal((await llm.generate(PROMPTS[0], { maxTokens: 2, topLogprobs: 2 })).logprobs.length, 2)
  // Streams: every token gives a chunk carrying its log-probability.
  const chunks = []
  for await (const c of llm.stream(PROMPTS[0], { maxTokens: 5, logprobs: true, topLogprobs: 3 })) chunks.push(c)
  const withLogprob = chunks.filter((c) => c.logprob)
  assert.equal(withLogprob.length, 5)
  withLogprob.forEach((c, i) => {
    assert.equal(c.index, i)
    assert.equal(c.logprob.token, c.tokenId)
    assert.ok(Math.abs(c.logprob.logprob - r.logprobs[i].logprob) < 1e-4)
  })
  // Batched rows report what they report alone.
  const [b] = await llm.generateBatch([PROMPTS[0], 'Hello'], { maxTokens: 5, logprobs: true, topLogprobs: 3 })
  b.logprobs.forEach((lp, i) => assert.ok(Math.abs(lp.logprob - r.logprobs[i].logprob) < 1e-3))
  // Option checks.
  await assert.rejects(llm.generate('Hi', { logprobs: false, topLogprobs: 2 }), { code: 'ERR_INVALID_ARG' })
  await assert.rejects(llm.generate('Hi', { topLogprobs: 101 }), (e) => e instanceof RangeError && /topLogprobs/.test(e.message))
  await assert.rejects(llm.generate('Hi', { topLogprobs: 1.5 }), { code: 'ERR_INVALID_ARG' })
  await assert.rejects(llm.generate('Hi', { logprobs: 'yes' }), (e) =>
    e instanceof TypeError && /options\.logprobs/.test(e.message))
})

test('a chat turn queued behind a busy batch runs before calls made after it', { skip }, async () => {
  const order = []
  const busy = Array.from({ length: 4 }, (_, i) =>
    track(llm.generate(PROMPTS[i], { maxTokens: 4, ignoreEos: true }), order, `busy${i}`))
  const session = llm.chatSession()
  const turn = track(session.send('Hi!', { maxTokens: 2 }), order, 'chat')
  const later = track(llm.generate('Hello', { maxTokens: 2 }), order, 'later')
  await Promise.all([...busy, turn, later])
  assert.ok(order.indexOf('chat') < order.indexOf('later'), order.join(' '))
})

test('aborting one batched call ends it with "abort"; the others finish', { skip }, async () => {
  const ac = new AbortController()
  const victim = llm.generate('Count from one to a hundred:', { maxTokens: 400, ignoreEos: true, signal: ac.signal })
  const other = llm.generate(PROMPTS[4], { maxTokens: 10 })
  setTimeout(() => ac.abort(), 300)
  const [v, o] = await Promise.all([victim, other])
  assert.equal(v.finishReason, 'abort')
  assert.ok(v.tokens.length < 400)
  assert.deepEqual(o.tokens, alone[4].tokens)
})
