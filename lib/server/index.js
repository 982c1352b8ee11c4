'use strict'
// The OpenAI-compatible HTTP server (`mlx-napi serve`), usable on its own:
//
//   const { createServer } = require('mlx-napi/lib/server')
//   const server = createServer({ llms: [{ id: 'smollm2', model: llm }] })
//   const url = await server.listen({ port: 8080 })   // http://127.0.0.1:8080
//
// fastify does HTTP, JSON-schema validation and body limits; @fastify/multipart
// parses uploads. This module wires the models, their queues, auth and the
// error shape together; routes/ holds one file per group of endpoints.
const { EventEmitter } = require('node:events')
const { createHash, randomUUID, timingSafeEqual } = require('node:crypto')
const { ApiError, invalid, toErrorResponse } = require('./errors.js')
const { ModelQueue } = require('./queue.js')

const MIN_NODE_MAJOR = 20

const DEFAULTS = {
  maxAudioBytes: 25 * 1024 * 1024,
  maxBodyBytes: 8 * 1024 * 1024,
  maxQueue: 32,
  defaultMaxTokens: 4096,
}

/** Whether an error means "aborted" (an AbortSignal fired). */
const isAbort = (err) => err?.name === 'AbortError' || err?.code === 'ABORT_ERR'

/** The id under which a loaded model is served, checked. */
function checkId(id, kind) {
  if (typeof id !== 'string' || id.trim() === '' || id.length > 256) {
    throw new TypeError(`each ${kind} needs an \`id\` (a non-empty string of at most 256 characters)`)
  }
  return id
}

class MlxServer extends EventEmitter {
  /** @param {import('./index').ServerOptions} options */
  constructor(options = {}) {
    super()
    const major = Number(process.versions.node.split('.')[0])
    if (major < MIN_NODE_MAJOR) {
      const err = new Error(`the server needs Node.js ${MIN_NODE_MAJOR} or newer (this is ${process.version})`)
      err.code = 'ERR_UNSUPPORTED_NODE'
      throw err
    }
    this.options = { ...DEFAULTS }
    for (const key of Object.keys(DEFAULTS)) {
      const v = options[key]
      if (v === undefined) continue
      if (!Number.isInteger(v) || v < (key === 'maxQueue' ? 0 : 1)) {
        throw new RangeError(`options.${key} must be a whole number ≥ ${key === 'maxQueue' ? 0 : 1}, got ${v}`)
      }
      this.options[key] = v
    }
    this.apiKeyHash = options.apiKey ? sha256(options.apiKey) : null
    /** @type {Map<string, { id: string, kind: 'llm' | 'whisper', model: any, queue: ModelQueue, created: number, chat?: boolean }>} */
    this.models = new Map()
    const created = Math.floor(Date.now() / 1000)
    for (const [kind, list] of [['llm', options.llms ?? []], ['whisper', options.whispers ?? []]]) {
      for (const { id, model } of list) {
        checkId(id, kind)
        if (this.models.has(id)) throw new RangeError(`two models have the id ${JSON.stringify(id)}`)
        if (!model) throw new TypeError(`model ${JSON.stringify(id)} has no \`model\``)
        // An LLM decodes up to its maxBatchSize requests together (continuous batching).
        const running = kind === 'llm' && Number.isInteger(model.maxBatchSize) ? Math.max(1, model.maxBatchSize) : 1
        const entry = { id, kind, model, queue: new ModelQueue(id, this.options.maxQueue, running), created }
        if (kind === 'llm') entry.chat = hasChatTemplate(model)
        this.models.set(id, entry)
      }
    }
    if (this.models.size === 0) throw new RangeError('the server needs at least one model (llms or whispers)')
    this.shutdown = new AbortController()
    this.fastify = this.#build()
    this.url = null
  }

  #build() {
    const Fastify = require('fastify')
    const app = Fastify({
      logger: false,
      bodyLimit: this.options.maxBodyBytes,
      ajv: { customOptions: { coerceTypes: false, allowUnionTypes: true, removeAdditional: false } },
      // Ids for responses and logs; not read from headers.
      genReqId: () => randomUUID(),
    })
    // JSON and multipart only: a text/plain body is a 415, not a string.
    app.removeContentTypeParser('text/plain')
    app.register(require('@fastify/multipart'), {
      limits: {
        fileSize: this.options.maxAudioBytes,
        files: 1,
        fields: 32,
        fieldSize: 256 * 1024,
        parts: 40,
        headerPairs: 100,
      },
    })
    app.addHook('onRequest', async (request) => this.#authorize(request))
    app.setErrorHandler((err, request, reply) => {
      if (isAbort(err) || reply.raw.destroyed) {
        // The client has gone (or the server is closing): nobody to answer.
        if (!reply.raw.destroyed && this.shutdown.signal.aborted) {
          return reply.code(503).send(toErrorResponse(new ApiError(503, 'the server is shutting down')).body)
        }
        reply.raw.destroy()
        return
      }
      const { status, body } = toErrorResponse(err, this.options)
      if (status >= 500) this.emit('requestError', { requestId: request.id, route: request.url, error: err })
      reply.code(status).send(body)
    })
    app.setNotFoundHandler((request, reply) => {
      const { status, body } = toErrorResponse(
        new ApiError(404, `unknown route ${request.method} ${request.url.split('?')[0]}`, { code: 'unknown_url' }),
      )
      reply.code(status).send(body)
    })
    const context = {
      options: this.options,
      /** Finds the model a request names. */
      pick: (kind, id) => this.#pick(kind, id),
      /** A signal that aborts when the client disconnects or the server closes. */
      signalFor: (reply) => this.#signalFor(reply),
      /** Runs `task` in the model's queue, with start/end events. */
      run: (entry, route, signal, task) => this.#run(entry, route, signal, task),
      status: () => this.status(),
    }
    for (const routes of ['health', 'models', 'chat', 'completions', 'audio']) {
      require(`./routes/${routes}.js`).register(app, context)
    }
    return app
  }

  async #authorize(request) {
    if (!this.apiKeyHash) return
    const path = request.url.split('?')[0]
    if (path === '/health') return
    const header = request.headers.authorization ?? ''
    const match = /^Bearer\s+(.+)$/i.exec(header)
    if (!match) {
      throw new ApiError(401, 'missing API key: send the header `Authorization: Bearer <key>`', { code: 'invalid_api_key' })
    }
    if (!timingSafeEqual(sha256(match[1].trim()), this.apiKeyHash)) {
      throw new ApiError(401, 'incorrect API key', { code: 'invalid_api_key' })
    }
  }

  #pick(kind, id) {
    if (id === undefined || id === null || id === '') {
      const candidates = [...this.models.values()].filter((m) => m.kind === kind)
      if (candidates.length === 1) return candidates[0]
      const what = kind === 'llm' ? 'LLM' : 'Whisper model'
      throw invalid(
        candidates.length ? `\`model\` is required (this server has several: ${candidates.map((m) => m.id).join(', ')})` : `this server has no ${what}`,
        'model',
        candidates.length ? 'missing_required_parameter' : 'model_not_found',
      )
    }
    if (typeof id !== 'string') throw invalid('`model` must be a string', 'model')
    const entry = this.models.get(id)
    if (!entry) {
      throw new ApiError(404, `the model ${JSON.stringify(id)} does not exist on this server (GET /v1/models lists them)`, {
        param: 'model',
        code: 'model_not_found',
      })
    }
    if (entry.kind !== kind) {
      const needs = kind === 'llm' ? 'an LLM' : 'a Whisper model'
      throw invalid(`the model ${JSON.stringify(id)} is a ${entry.kind} model; this route needs ${needs}`, 'model', 'model_not_supported')
    }
    return entry
  }

  #signalFor(reply) {
    const client = new AbortController()
    const gone = () => client.abort(new DOMException('the client disconnected', 'AbortError'))
    const res = reply.raw
    if (res.destroyed || res.socket?.destroyed) gone()
    else res.once('close', () => res.writableFinished || gone())
    return AbortSignal.any([client.signal, this.shutdown.signal])
  }

  async #run(entry, route, signal, task) {
    const job = { requestId: randomUUID(), route, model: entry.id, kind: entry.kind }
    let end = null
    try {
      return await entry.queue.run(async (jobSignal) => {
        this.emit('jobStart', job)
        try {
          const result = await task(jobSignal)
          const aborted = jobSignal.aborted || result?.finishReason === 'abort'
          end = { ...job, outcome: aborted ? 'aborted' : 'ok', finishReason: result?.finishReason, usage: result?.usage }
          return result
        } catch (error) {
          end = { ...job, outcome: isAbort(error) ? 'aborted' : 'error', error }
          throw error
        }
      }, signal, (ahead) => this.emit('jobQueued', { ...job, queued: ahead }))
    } finally {
      // After the queue has passed the model on: `jobEnd` means the job is off it.
      if (end) this.emit('jobEnd', end)
    }
  }

  /** Per model: id, kind, whether it is working, how many requests wait. */
  status() {
    return [...this.models.values()].map((m) => ({ id: m.id, kind: m.kind, busy: m.queue.busy, queued: m.queue.queued }))
  }

  /**
   * Starts listening. Resolves with the base URL (`http://host:port`).
   * @param {{ host?: string, port?: number }} [options]
   */
  async listen({ host = '127.0.0.1', port = 8080 } = {}) {
    await this.fastify.listen({ host, port })
    const address = this.fastify.server.address()
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address
    this.url = `http://${shown}:${address.port}`
    return this.url
  }

  /**
   * Stops the server: waiting and running requests are aborted, then the
   * listener closes. The models are not disposed (they belong to the caller).
   */
  async close() {
    this.shutdown.abort(new DOMException('the server is shutting down', 'AbortError'))
    await this.fastify.close()
  }
}

function sha256(text) {
  return createHash('sha256').update(String(text)).digest()
}

/** Whether an LLM has a chat template (else chat requests are refused). */
function hasChatTemplate(llm) {
  try {
    llm.applyChatTemplate([{ role: 'user', content: 'x' }])
    return true
  } catch {
    return false
  }
}

/**
 * Builds the server over already loaded models (not listening yet).
 * @param {import('./index').ServerOptions} options
 */
function createServer(options) {
  return new MlxServer(options)
}

module.exports = { createServer, MlxServer, DEFAULTS }
