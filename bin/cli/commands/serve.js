'use strict'
// `mlx-napi serve`: loads the models, then runs the OpenAI-compatible server
// (lib/server) until Ctrl-C or SIGTERM.
const { existsSync, statSync } = require('node:fs')
const { basename, resolve } = require('node:path')
const { Option } = require('commander')
const { loadLLM, loadWhisper } = require('../../../index.js')
const { resolveModel, expectKind } = require('../model.js')
const { usage } = require('../errors.js')

const MB = 1024 * 1024
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost'])

/** `[id=]source` → { id, source }: the id defaults to the repo id or the folder's name. */
function parseModelSpec(spec) {
  const eq = spec.indexOf('=')
  // An id has no slash, so `a/b=c` (a path or repo id containing "=") stays whole.
  if (eq > 0 && !spec.slice(0, eq).includes('/')) return { id: spec.slice(0, eq), source: spec.slice(eq + 1) }
  const folder = existsSync(spec) && statSync(spec).isDirectory()
  return { id: folder ? basename(resolve(spec)) : spec.replace(/@.*$/, ''), source: spec }
}

async function loadAll(opts, progress, signal) {
  const specs = [
    ...(opts.llm ?? []).map((s) => ({ kind: 'llm', ...parseModelSpec(s) })),
    ...(opts.whisper ?? []).map((s) => ({ kind: 'whisper', ...parseModelSpec(s) })),
  ]
  if (specs.length === 0) throw usage('give at least one model: --llm <model> and/or --whisper <model>')
  const ids = new Set()
  for (const { id } of specs) {
    if (!id) throw usage('a model id before "=" must not be empty')
    if (ids.has(id)) throw usage(`two models would be served as ${JSON.stringify(id)}; name them: --llm name=<model>`)
    ids.add(id)
  }
  const loaded = { llms: [], whispers: [] }
  try {
    for (const spec of specs) {
      const model = await resolveModel({ model: spec.source, offline: opts.offline }, progress, signal)
      expectKind(model, spec.kind, `--${spec.kind}`)
      const instance = spec.kind === 'llm' ? await loadLLM(model.path, { signal, ...(opts.maxBatchSize ? { maxBatchSize: opts.maxBatchSize } : {}) }) : await loadWhisper(model.path, { signal })
      ;(spec.kind === 'llm' ? loaded.llms : loaded.whispers).push({ id: spec.id, model: instance })
      progress.note(`loaded ${spec.kind === 'llm' ? 'LLM' : 'Whisper model'} ${spec.id} (${model.path})`)
      if (opts.warmup) {
        const ms = await instance.warmup()
        progress.note(`warmed up ${spec.id} in ${(ms / 1000).toFixed(1)} s`)
      }
    }
  } catch (err) {
    await disposeAll(loaded)
    throw err
  }
  return loaded
}

async function disposeAll({ llms, whispers }) {
  await Promise.allSettled([...llms, ...whispers].map(({ model }) => model.dispose()))
}

function register(program, cli) {
  const collect = (value, previous) => [...(previous ?? []), value]
  program
    .command('serve')
    .description('serve the models over an OpenAI-compatible HTTP API (chat, completions, audio)')
    .option('--llm <model>', 'LLM to serve: folder or repo id, optionally named: id=<model> (repeatable)', collect)
    .option('--whisper <model>', 'Whisper model to serve, as --llm (repeatable)', collect)
    .option('--host <host>', 'address to listen on (anything but loopback exposes the models)', '127.0.0.1')
    .option('--port <n>', 'port (0: any free port)', cli.number({ int: true, min: 0, max: 65535 }), 8080)
    .addOption(new Option('--api-key <key>', 'require `Authorization: Bearer <key>` (all routes but /health)').env('MLX_NAPI_API_KEY'))
    .option('--max-audio-mb <n>', 'largest audio upload, MiB', cli.number({ min: 0.001, max: 4096 }), 25)
    .option('--max-body-mb <n>', 'largest JSON request body, MiB', cli.number({ min: 0.001, max: 4096 }), 8)
    .option('--max-batch-size <n>', 'LLM requests decoded together per model (default: 32 on a GPU, 8 on the CPU)', cli.number({ int: true, min: 1, max: 1024 }))
    .option('--max-queue <n>', 'requests that may wait per model (more: 429)', cli.number({ int: true, min: 0, max: 100000 }), 32)
    .option('--default-max-tokens <n>', 'chat max_tokens when a request gives none', cli.number({ int: true, min: 1, max: 1e7 }), 4096)
    .option('--offline', 'use the local Hub cache only (like HF_HUB_OFFLINE=1)')
    .option('--no-warmup', 'skip compiling GPU kernels before listening')
    .addHelpText(
      'after',
      `
Routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions,
POST /v1/audio/transcriptions, POST /v1/audio/translations, GET /health.
Concurrent requests to one LLM decode together (up to --max-batch-size); Whisper
requests run one at a time, in order.

Examples:
  mlx-napi serve --llm mlx-community/SmolLM2-135M-Instruct-4bit --whisper openai/whisper-tiny.en
  mlx-napi serve --whisper whisper-1=openai/whisper-small --port 9000 --api-key secret`,
    )
    .action(
      cli.action(async (opts) => {
        const { createServer } = require('../../../lib/server/index.js')
        const progress = cli.progress(opts)
        const signal = cli.interruptSignal()
        const loaded = await loadAll(opts, progress, signal)
        let server
        try {
          server = createServer({
            ...loaded,
            apiKey: opts.apiKey,
            maxAudioBytes: Math.round(opts.maxAudioMb * MB),
            maxBodyBytes: Math.round(opts.maxBodyMb * MB),
            maxQueue: opts.maxQueue,
            defaultMaxTokens: opts.defaultMaxTokens,
          })
          server.on('requestError', ({ route, error }) => {
            const line = `${error?.code ?? 'ERROR'}: ${String(error?.message ?? error).replace(/\s*\n\s*/g, ' ')} (${route})`
            process.stderr.write(`${line}\n`)
          })
          if (signal.aborted) throw signal.reason
          const url = await server.listen({ host: opts.host, port: opts.port })
          if (!LOOPBACK.has(opts.host) && !opts.apiKey) {
            progress.note(`warning: listening on ${opts.host} without --api-key: anyone who can reach this port can use the models`)
          }
          progress.note(`listening on ${url} (OpenAI base URL ${url}/v1); Ctrl-C stops`)
        } catch (err) {
          await server?.close()
          await disposeAll(loaded)
          throw err
        }
        // Until Ctrl-C (the CLI's interrupt signal) or SIGTERM.
        await new Promise((done) => {
          signal.addEventListener('abort', done, { once: true })
          process.once('SIGTERM', done)
        })
        progress.note('stopping: aborting running requests')
        await server.close()
        await disposeAll(loaded)
      }),
    )
}

module.exports = { register, parseModelSpec }
