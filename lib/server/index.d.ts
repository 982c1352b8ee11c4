// Types of the OpenAI-compatible server (`require('mlx-napi/lib/server')`),
// which `mlx-napi serve` runs. See README.md, "Server (OpenAI-compatible API)".
import type { EventEmitter } from 'node:events'
import type { FastifyInstance } from 'fastify'
import type { LLM, Whisper } from '../../index'

/** A loaded model and the id clients name it by (`model` in requests, `/v1/models`). */
export interface ServedModel<M> {
  /** Non-empty, at most 256 characters, unique across all served models. */
  id: string
  model: M
}

export interface ServerOptions {
  /** LLMs for /v1/chat/completions and /v1/completions. */
  llms?: Array<ServedModel<LLM>>
  /** Whisper models for /v1/audio/transcriptions and /v1/audio/translations. */
  whispers?: Array<ServedModel<Whisper>>
  /**
   * When set, every route but `GET /health` needs `Authorization: Bearer <apiKey>`
   * (else 401). Default: none.
   */
  apiKey?: string
  /** Largest audio upload in bytes; larger is a 413. Default 25 MiB. */
  maxAudioBytes?: number
  /** Largest JSON request body in bytes; larger is a 413. Default 8 MiB. */
  maxBodyBytes?: number
  /**
   * Requests that may wait for a model while it is full (an LLM takes up to
   * its `maxBatchSize` requests at once into its batch, a Whisper model one);
   * one more is a 429. Per model. Default 32.
   */
  maxQueue?: number
  /** `max_tokens` of chat requests that give none. Default 4096. */
  defaultMaxTokens?: number
}

/** How busy a served model is (also in `GET /health`). */
export interface ModelStatus {
  id: string
  kind: 'llm' | 'whisper'
  /** Whether a request is running on it. */
  busy: boolean
  /** Requests waiting for it. */
  queued: number
}

/** A request's work on a model, as reported by the server's events. */
export interface JobEvent {
  /** Unique per job. */
  requestId: string
  route: 'chat' | 'completions' | 'transcriptions' | 'translations'
  model: string
  kind: 'llm' | 'whisper'
}

export interface JobEndEvent extends JobEvent {
  /** 'aborted': the client left (or the server closed) while it ran. */
  outcome: 'ok' | 'aborted' | 'error'
  /** LLM jobs: the generation's finish reason ('abort' when aborted). */
  finishReason?: 'stop' | 'length' | 'abort'
  /** LLM jobs: token counts. */
  usage?: { promptTokens: number; prefilledTokens: number; completionTokens: number }
  /** outcome 'error' (and 'aborted' transcriptions): what the model call threw. */
  error?: Error & { code?: string }
}

/**
 * The server. Events: `jobQueued` (JobEvent & { queued }: a request that has
 * to wait, and how many are ahead of it, the running one included),
 * `jobStart` (JobEvent), `jobEnd` (JobEndEvent: emitted once the model is
 * free again), `requestError` (RequestErrorEvent: a request that failed with
 * a 5xx, for logging).
 */
export declare class MlxServer extends EventEmitter {
  /** The fastify instance (routes, hooks, `inject()` for tests). */
  readonly fastify: FastifyInstance
  /** The base URL once listening (`http://127.0.0.1:8080`), else null. */
  readonly url: string | null
  /**
   * Starts listening; resolves with the base URL (the OpenAI base URL is
   * `${url}/v1`). Defaults: host '127.0.0.1' (loopback only), port 8080
   * (0: any free port).
   */
  listen(options?: { host?: string; port?: number }): Promise<string>
  /**
   * Aborts waiting and running requests and stops listening. The models are
   * not disposed: they belong to the caller.
   */
  close(): Promise<void>
  /** Per model: whether it is working and how many requests wait. */
  status(): ModelStatus[]
  on(event: 'jobQueued', listener: (event: JobEvent & { queued: number }) => void): this
  on(event: 'jobStart', listener: (event: JobEvent) => void): this
  on(event: 'jobEnd', listener: (event: JobEndEvent) => void): this
  on(event: 'requestError', listener: (event: RequestErrorEvent) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
}

/** A request that failed with a 5xx status. */
export interface RequestErrorEvent {
  requestId: string
  /** The request URL. */
  route: string
  error: Error & { code?: string }
}

/**
 * Builds the server over loaded models (not listening yet). Throws a
 * RangeError / TypeError for bad options (no models, duplicate ids), and an
 * Error with code ERR_UNSUPPORTED_NODE before Node.js 20.
 */
export declare function createServer(options: ServerOptions): MlxServer

/** The defaults of ServerOptions' limits. */
export declare const DEFAULTS: Readonly<Required<Pick<ServerOptions, 'maxAudioBytes' | 'maxBodyBytes' | 'maxQueue' | 'defaultMaxTokens'>>>
