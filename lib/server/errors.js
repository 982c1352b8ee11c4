'use strict'
// OpenAI-shaped errors: `{ error: { message, type, param, code } }` with an
// HTTP status. Every failure a route can meet ends up here: our own request
// checks (ApiError), fastify's and @fastify/multipart's errors (statusCode),
// and the addon's coded errors (err.code), mapped in one table.

/** An error answered as an OpenAI error body with `status`. */
class ApiError extends Error {
  /**
   * @param {number} status HTTP status
   * @param {string} message
   * @param {{ type?: string, param?: string | null, code?: string | null }} [fields]
   */
  constructor(status, message, { type, param = null, code = null } = {}) {
    super(message)
    this.status = status
    this.type = type ?? typeForStatus(status)
    this.param = param
    this.code = code
  }
}

function typeForStatus(status) {
  if (status === 401) return 'authentication_error'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'server_error'
  return 'invalid_request_error'
}

const invalid = (message, param = null, code = 'invalid_value') => new ApiError(400, message, { param, code })
const unsupported = (param, what = `\`${param}\``) =>
  new ApiError(400, `${what} is not supported by this server`, { param, code: 'unsupported_parameter' })

/**
 * The addon's error codes (README "Errors") → HTTP status. Errors caused by
 * the request are 400; a disposed model (server shutting down) is 503;
 * anything else is the server's fault: 500.
 */
const STATUS_OF_CODE = {
  ERR_INVALID_ARG: 400,
  ERR_INVALID_ARG_TYPE: 400,
  ERR_PROMPT_TOO_LONG: 400,
  ERR_INVALID_SCHEMA: 400,
  ERR_INVALID_GRAMMAR: 400,
  ERR_TOKENIZER: 400,
  ERR_AUDIO_DECODE: 400,
  ERR_AUDIO_UNSUPPORTED: 400,
  ERR_DISPOSED: 503,
}

/** OpenAI-style `code` strings for the addon's codes a client can act on. */
const API_CODE_OF_CODE = {
  ERR_PROMPT_TOO_LONG: 'context_length_exceeded',
  ERR_AUDIO_DECODE: 'invalid_audio',
  ERR_AUDIO_UNSUPPORTED: 'unsupported_audio',
  ERR_DISPOSED: 'model_unavailable',
}

/** fastify's / multipart's error codes → [message, OpenAI-style code, param]. */
const FRAMEWORK_ERRORS = {
  FST_ERR_CTP_INVALID_JSON_BODY: ['the request body is not valid JSON', 'invalid_json'],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['the request body is empty', 'invalid_json'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [
    'unsupported Content-Type: send application/json (audio routes: multipart/form-data)',
    'unsupported_content_type',
  ],
  FST_ERR_CTP_BODY_TOO_LARGE: ['the request body is larger than this server accepts', 'request_too_large'],
  FST_REQ_FILE_TOO_LARGE: ['the uploaded file is larger than this server accepts', 'file_too_large', 'file'],
  FST_FILES_LIMIT: ['send one file per request', 'too_many_files', 'file'],
  FST_FIELDS_LIMIT: ['too many form fields', 'too_many_fields'],
  FST_PARTS_LIMIT: ['too many form parts', 'too_many_fields'],
}

const mib = (bytes) => `${Math.round((bytes / 1048576) * 1000) / 1000} MiB`

/**
 * Any thrown value → `{ status, body }` (an OpenAI error body).
 * @param {unknown} err
 * @param {{ maxBodyBytes?: number, maxAudioBytes?: number }} [limits] named in 413 messages
 */
function toErrorResponse(err, limits = {}) {
  if (err instanceof ApiError) {
    return respond(err.status, err.message, err.type, err.param, err.code)
  }
  const e = /** @type {any} */ (err) ?? {}
  if (e.validation) {
    // fastify's JSON-schema validation (ajv): the first failing field.
    // The deepest failure is the most specific (anyOf reports every branch).
    const v = e.validation.reduce((best, x) => (depth(x) > depth(best) ? x : best), e.validation[0] ?? {})
    const param = paramOf(v.instancePath, v.params)
    const message = param
      ? `${param} ${v.message ?? 'is invalid'}`
      : 'the request body must be a JSON object (Content-Type: application/json)'
    return respond(400, message, 'invalid_request_error', param, param ? 'invalid_value' : 'invalid_json')
  }
  if (typeof e.code === 'string' && STATUS_OF_CODE[e.code]) {
    const status = STATUS_OF_CODE[e.code]
    return respond(status, `${e.code}: ${e.message}`, typeForStatus(status), null, API_CODE_OF_CODE[e.code] ?? 'invalid_value')
  }
  const status = Number(e.statusCode)
  if (Number.isInteger(status) && status >= 400 && status < 500) {
    let [message, code, param = null] = FRAMEWORK_ERRORS[e.code] ?? [e.message, e.code ?? null]
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' && limits.maxBodyBytes) message += ` (${mib(limits.maxBodyBytes)})`
    if (e.code === 'FST_REQ_FILE_TOO_LARGE' && limits.maxAudioBytes) message += ` (${mib(limits.maxAudioBytes)})`
    return respond(status, message, typeForStatus(status), param, code)
  }
  const code = typeof e.code === 'string' ? e.code : null
  return respond(500, `${code ? `${code}: ` : ''}${e.message ?? String(err)}`, 'server_error', null, code)
}

function respond(status, message, type, param, code) {
  return { status, body: { error: { message, type, param, code } } }
}

const depth = (v) => (v?.instancePath ?? '').split('/').length + (v?.params?.missingProperty ? 1 : 0)

/** ajv's `/messages/0/role` → `messages[0].role` (OpenAI's way of naming a param). */
function paramOf(instancePath, params) {
  const parts = (instancePath ?? '').split('/').filter(Boolean)
  if (params?.missingProperty) parts.push(params.missingProperty)
  if (parts.length === 0) return null
  return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i ? `.${p}` : p)).join('')
}

module.exports = { ApiError, invalid, unsupported, toErrorResponse, STATUS_OF_CODE }
