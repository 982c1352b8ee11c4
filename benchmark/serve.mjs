#!/usr/bin/env node
// The OpenAI-compatible server under load: requests/s and generated tokens/s
// with 1, 4 and 16 concurrent clients (the official `openai` client, in this
// process, over loopback HTTP) on one LLM; optionally transcriptions/s on a
// Whisper model. Until batched decoding lands the server runs one request per
// model at a time, so throughput should stay flat and latency grow with the
// number of clients: this measures that, and the HTTP/JSON/SSE overhead.
//
//   node benchmark/serve.mjs --llm DIR [--whisper DIR --audio FILE] [--clients 1,4,16]
//        [--requests 32] [--tokens 128] [--stream] [--json out.json]
//
// Each client sends its share of --requests back to back (chat, greedy, distinct
// prompts, end-of-sequence banned through logit_bias so every request generates
// exactly --tokens). Rows: wall time, requests/s, completion tokens/s, latency
// median and p90 (and time to first token with --stream).
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import OpenAI from 'openai'
import { median } from './stats.mjs'

const require = createRequire(import.meta.url)
const mlx = require('../index.js')
const { createServer } = require('../lib/server/index.js')

const { values: a } = parseArgs({
  options: {
    llm: { type: 'string' },
    whisper: { type: 'string' },
    audio: { type: 'string' },
    clients: { type: 'string', default: '1,4,16' },
    requests: { type: 'string', default: '32' },
    'audio-requests': { type: 'string', default: '16' },
    tokens: { type: 'string', default: '128' },
    stream: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
})
if (!a.llm && !a.whisper) throw new Error('--llm DIR and/or --whisper DIR (with --audio FILE) is required')
if (a.whisper && !a.audio) throw new Error('--whisper needs --audio FILE')
const clientCounts = a.clients.split(',').map(Number)
const tokens = Number(a.tokens)

const p90 = (xs) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(0.9 * xs.length))]

/** Runs `total` requests spread over `clients` concurrent loops; `one(i)` makes request i. */
async function load(clients, total, one) {
  let next = 0
  const latencies = []
  const results = []
  const start = performance.now()
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < total) {
        const i = next++
        const t = performance.now()
        results[i] = await one(i)
        latencies.push(performance.now() - t)
      }
    }),
  )
  return { wallMs: performance.now() - start, latencies, results }
}

const llms = []
const whispers = []
if (a.llm) llms.push({ id: 'llm', model: await mlx.loadLLM(a.llm) })
if (a.whisper) whispers.push({ id: 'whisper', model: await mlx.loadWhisper(a.whisper) })
for (const m of [...llms, ...whispers]) await m.model.warmup()
const server = createServer({ llms, whispers, maxQueue: 1024 })
const url = await server.listen({ port: 0 })
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 3_600_000 })
const info = mlx.backendInfo()
const report = { date: new Date().toISOString(), backend: info, node: process.version, tokens, stream: a.stream, llm: [], whisper: [] }
const lines = [`# server load: ${info.backend} ${info.deviceName ?? ''}, MLX ${info.mlxVersion}, Node ${process.version}`]

if (a.llm) {
  const llm = llms[0].model
  const noEos = Object.fromEntries(llm.eosTokenIds.map((id) => [id, -100]))
  const ask = async (i) => {
    const body = {
      model: 'llm',
      messages: [{ role: 'user', content: `Request ${i}: write about the number ${i}.` }],
      max_tokens: tokens,
      temperature: 0,
      logit_bias: noEos,
    }
    if (!a.stream) {
      const r = await client.chat.completions.create(body)
      return { completion: r.usage.completion_tokens }
    }
    const t = performance.now()
    let ttft = null
    let usage = null
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } })
    for await (const c of stream) {
      if (ttft === null && c.choices[0]?.delta?.content) ttft = performance.now() - t
      if (c.usage) usage = c.usage
    }
    return { completion: usage.completion_tokens, ttft }
  }
  await ask(-1) // warm the HTTP path
  lines.push('', `LLM ${a.llm}: chat, ${tokens} tokens per request${a.stream ? ', streamed' : ''}`, '')
  lines.push('| clients | requests | wall s | requests/s | tokens/s | latency median s | latency p90 s |' + (a.stream ? ' TTFT median s |' : ''))
  lines.push('| --- | --- | --- | --- | --- | --- | --- |' + (a.stream ? ' --- |' : ''))
  for (const clients of clientCounts) {
    const total = Math.max(Number(a.requests), clients)
    const r = await load(clients, total, ask)
    const generated = r.results.reduce((s, x) => s + x.completion, 0)
    if (generated !== total * tokens) throw new Error(`expected ${total * tokens} tokens, got ${generated}`)
    const row = {
      clients,
      requests: total,
      wallS: r.wallMs / 1000,
      requestsPerS: total / (r.wallMs / 1000),
      tokensPerS: generated / (r.wallMs / 1000),
      latencyMedianS: median(r.latencies) / 1000,
      latencyP90S: p90(r.latencies) / 1000,
      ttftMedianS: a.stream ? median(r.results.map((x) => x.ttft)) / 1000 : undefined,
    }
    report.llm.push(row)
    const f = (x, d = 2) => x.toFixed(d)
    lines.push(`| ${clients} | ${total} | ${f(row.wallS, 1)} | ${f(row.requestsPerS)} | ${f(row.tokensPerS, 1)} | ${f(row.latencyMedianS)} | ${f(row.latencyP90S)} |` + (a.stream ? ` ${f(row.ttftMedianS)} |` : ''))
    console.error(lines.at(-1))
  }
}

if (a.whisper) {
  const audio = readFileSync(a.audio)
  const transcribe = async () => {
    const r = await client.audio.transcriptions.create({ model: 'whisper', file: await OpenAI.toFile(audio, 'audio.wav'), response_format: 'verbose_json' })
    return { seconds: r.duration }
  }
  await transcribe()
  lines.push('', `Whisper ${a.whisper}: ${a.audio}`, '')
  lines.push('| clients | requests | wall s | requests/s | audio s per s | latency median s | latency p90 s |')
  lines.push('| --- | --- | --- | --- | --- | --- | --- |')
  for (const clients of clientCounts) {
    const total = Math.max(Number(a['audio-requests']), clients)
    const r = await load(clients, total, transcribe)
    const seconds = r.results.reduce((s, x) => s + x.seconds, 0)
    const row = {
      clients,
      requests: total,
      wallS: r.wallMs / 1000,
      requestsPerS: total / (r.wallMs / 1000),
      audioSecondsPerS: seconds / (r.wallMs / 1000),
      latencyMedianS: median(r.latencies) / 1000,
      latencyP90S: p90(r.latencies) / 1000,
    }
    report.whisper.push(row)
    const f = (x, d = 2) => x.toFixed(d)
    lines.push(`| ${clients} | ${total} | ${f(row.wallS, 1)} | ${f(row.requestsPerS)} | ${f(row.audioSecondsPerS, 1)} | ${f(row.latencyMedianS)} | ${f(row.latencyP90S)} |`)
    console.error(lines.at(-1))
  }
}

await server.close()
for (const m of [...llms, ...whispers]) await m.model.dispose()
console.log(lines.join('\n'))
if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 2) + '\n')
