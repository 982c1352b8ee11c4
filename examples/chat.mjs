#!/usr/bin/env node
// Streams a chat reply, then a follow-up turn that reuses the session's KV cache.
//
//   node examples/chat.mjs [model dir] ["your question"]
//
// Defaults to the SmolLM2-135M-Instruct 4-bit checkpoint in ../shared/models.
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { loadLLM, backendInfo } = require('../index.js')

const model = process.argv[2] ?? fileURLToPath(new URL('../../shared/models/smollm2-135m-instruct-4bit', import.meta.url))
const question = process.argv[3] ?? 'What is the capital of France?'

const info = backendInfo()
console.error(`MLX ${info.mlxVersion} on ${info.backend} (${info.deviceName ?? info.device})`)
const llm = await loadLLM(model, {
  onProgress: (p) => console.error(`loading ${p.stage} ${p.done}/${p.total}`),
})
const chat = llm.chatSession({ system: 'You are a concise assistant.' })

async function turn(text) {
  console.log(`\n> ${text}`)
  const stream = chat.stream(text, { maxTokens: 128, temperature: 0.7, topP: 0.9, seed: 1 })
  for await (const chunk of stream) process.stdout.write(chunk.text)
  process.stdout.write('\n')
}

await turn(question)
await turn('And what is it famous for?')
console.error((await chat.history()).length, 'messages in the session')
await llm.dispose()
