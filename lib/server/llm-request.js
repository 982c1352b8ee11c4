'use strict'
// OpenAI chat / completions request fields → the addon's GenerateOptions.
// Types and ranges are checked by fastify's JSON-schema validation (ajv) with
// the schemas below; every field is mapped by name, never spread, so the
// addon only ever sees the options it documents.
const { invalid, unsupported } = require('./errors.js')

const nullable = (schema) => ({ ...schema, type: [schema.type, 'null'] })

/** Fields shared by /v1/chat/completions and /v1/completions. */
const SAMPLING_PROPERTIES = {
  model: { type: 'string' },
  max_tokens: nullable({ type: 'integer', minimum: 1, maximum: 10_000_000 }),
  temperature: nullable({ type: 'number', minimum: 0, maximum: 2 }),
  top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
  seed: nullable({ type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  stop: {
    anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 16 }, { type: 'null' }],
  },
  presence_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
  frequency_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
  logit_bias: nullable({
    type: 'object',
    propertyNames: { pattern: '^[0-9]{1,10}$' },
    additionalProperties: { type: 'number', minimum: -100, maximum: 100 },
  }),
  n: nullable({ type: 'integer', minimum: 1, maximum: 128 }),
  stream: nullable({ type: 'boolean' }),
  stream_options: nullable({ type: 'object', properties: { include_usage: nullable({ type: 'boolean' }) } }),
  // Extensions (mlx-lm / vLLM spellings).
  top_k: nullable({ type: 'integer', minimum: 0, maximum: 1_000_000 }),
  min_p: nullable({ type: 'number', minimum: 0, maximum: 1 }),
  repetition_penalty: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 100 }),
  // llama.cpp server's spelling: a grammar string (GBNF, or Lark), or ours,
  // `{ type, source }`.
  grammar: {
    anyOf: [
      { type: 'string' },
      { type: 'object', required: ['source'], properties: { type: { enum: ['lark', 'gbnf', 'regex'] }, source: { type: 'string' } } },
      { type: 'null' },
    ],
  },
}

const MESSAGE_SCHEMA = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { type: 'string' },
    content: { anyOf: [{ type: 'string' }, { type: 'array' }, { type: 'null' }] },
    name: { type: 'string' },
    tool_call_id: { type: 'string' },
    tool_calls: nullable({
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'function'],
        properties: {
          id: { type: 'string' },
          type: { const: 'function' },
          function: {
            type: 'object',
            required: ['name', 'arguments'],
            properties: { name: { type: 'string' }, arguments: { type: 'string' } },
          },
        },
      },
    }),
  },
}

const TOOL_SCHEMA = {
  type: 'object',
  required: ['type', 'function'],
  properties: {
    type: { const: 'function' },
    function: {
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string' }, description: { type: 'string' }, parameters: { type: 'object' } },
    },
  },
}

const CHAT_SCHEMA = {
  type: 'object',
  required: ['messages'],
  properties: {
    ...SAMPLING_PROPERTIES,
    max_completion_tokens: SAMPLING_PROPERTIES.max_tokens,
    messages: { type: 'array', minItems: 1, items: MESSAGE_SCHEMA },
    response_format: nullable({
      type: 'object',
      required: ['type'],
      properties: {
        type: { enum: ['text', 'json_object', 'json_schema'] },
        json_schema: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, schema: { type: ['object', 'boolean'] } } },
      },
    }),
    tools: nullable({ type: 'array', maxItems: 128, items: TOOL_SCHEMA }),
    tool_choice: {
      anyOf: [
        { enum: ['auto', 'none', 'required'] },
        { type: 'object', required: ['type', 'function'], properties: { type: { const: 'function' }, function: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } },
        { type: 'null' },
      ],
    },
  },
}

const COMPLETION_SCHEMA = {
  type: 'object',
  required: ['prompt'],
  properties: {
    ...SAMPLING_PROPERTIES,
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, items: { type: 'string' } },
        { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0, maximum: 4294967295 } },
        { type: 'array', minItems: 1, items: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 4294967295 } } },
      ],
    },
    echo: nullable({ type: 'boolean' }),
    best_of: nullable({ type: 'integer', minimum: 1 }),
  },
}

/** Fields a client may send that this server cannot honour: rejected, never ignored. */
function rejectUnsupported(body, fields) {
  for (const field of fields) {
    const v = body[field]
    if (v === undefined || v === null || v === false) continue
    if (Array.isArray(v) && v.length === 0) continue
    if (field === 'n' || field === 'best_of') {
      if (v === 1) continue
      throw invalid(`\`${field}\` > 1 (several choices per request) is not supported by this server`, field, 'unsupported_value')
    }
    if (field === 'response_format' && (v.type === 'text' || v === 'text')) continue
    if (field === 'tool_choice' && v === 'none') continue
    throw unsupported(field)
  }
}

const CHAT_UNSUPPORTED = ['n', 'functions', 'function_call', 'logprobs',
  'top_logprobs', 'audio', 'prediction', 'web_search_options']
const COMPLETION_UNSUPPORTED = ['n', 'best_of', 'logprobs', 'suffix']

/**
 * GenerateOptions of a request. `max_tokens` (or `max_completion_tokens`)
 * falls back to `defaultMaxTokens`; the temperature to OpenAI's default, 1.
 * @param {Record<string, any>} body
 * @param {number} defaultMaxTokens
 * @param {AbortSignal} signal
 */
function generateOptions(body, defaultMaxTokens, signal) {
  const has = (k) => body[k] !== undefined && body[k] !== null
  /** @type {import('../../index').GenerateOptions} */
  const options = {
    maxTokens: body.max_completion_tokens ?? body.max_tokens ?? defaultMaxTokens,
    temperature: body.temperature ?? 1,
    signal,
  }
  if (has('top_p') && body.top_p < 1) options.topP = body.top_p
  if (has('top_k') && body.top_k > 0) options.topK = body.top_k
  if (has('min_p') && body.min_p > 0) options.minP = body.min_p
  if (has('repetition_penalty') && body.repetition_penalty !== 1) options.repetitionPenalty = body.repetition_penalty
  if (has('presence_penalty')) options.presencePenalty = body.presence_penalty
  if (has('frequency_penalty')) options.frequencyPenalty = body.frequency_penalty
  if (has('seed')) options.seed = body.seed
  if (has('stop')) {
    const stop = typeof body.stop === 'string' ? [body.stop] : body.stop
    if (stop.some((s) => s === '')) throw invalid('`stop` strings must not be empty', 'stop')
    if (stop.length) options.stop = stop
  }
  if (has('logit_bias') && Object.keys(body.logit_bias).length) {
    options.logitBias = {}
    for (const [id, bias] of Object.entries(body.logit_bias)) options.logitBias[id] = bias
  }
  if (has('grammar')) {
    const { grammar } = body
    options.grammar = typeof grammar === 'string' ? grammar : { source: grammar.source, ...(grammar.type ? { type: grammar.type } : {}) }
  }
  return options
}

/**
 * The chat-only fields: `response_format` → `responseFormat` (OpenAI's
 * `json_schema.schema` → `schema`), `tools`, `tool_choice` → `toolChoice`.
 * The addon checks the schema and the tools (coded errors → 400).
 * @param {Record<string, any>} body
 * @param {import('../../index').GenerateOptions} options completed in place
 */
function chatOptions(body, options) {
  const format = body.response_format
  if (format?.type === 'json_object') options.responseFormat = { type: 'json_object' }
  if (format?.type === 'json_schema') {
    if (format.json_schema?.schema === undefined) throw invalid('`response_format.json_schema.schema` is required', 'response_format')
    options.responseFormat = { type: 'json_schema', schema: format.json_schema.schema }
  }
  if (body.tools?.length) options.tools = body.tools
  if (body.tool_choice !== undefined && body.tool_choice !== null) options.toolChoice = body.tool_choice
  return options
}

const ROLES = { system: 'system', developer: 'system', user: 'user', assistant: 'assistant', tool: 'tool' }

/**
 * OpenAI chat messages → the addon's `{ role, content }` (text only): content
 * parts of type "text" are joined; `developer` is a system message.
 * @returns {Array<{ role: string, content: string }>}
 */
function chatMessages(messages) {
  return messages.map((m, i) => {
    const param = `messages[${i}]`
    const role = ROLES[m.role]
    if (!role) {
      if (m.role === 'function') throw unsupported(`${param}.role`, 'role "function" (use "tool")')
      throw invalid(`${param}.role must be system, developer, user, assistant or tool; got ${JSON.stringify(m.role)}`, `${param}.role`)
    }
    if (m.function_call) throw unsupported(`${param}.function_call`, 'function_call (use tool_calls)')
    if (role === 'tool' && typeof m.tool_call_id !== 'string') throw invalid(`${param}.tool_call_id is required for role "tool"`, `${param}.tool_call_id`)
    const toolCalls = role === 'assistant' && m.tool_calls?.length ? m.tool_calls : undefined
    let content = m.content ?? (toolCalls ? '' : m.content)
    if (Array.isArray(content)) {
      content = content
        .map((part, j) => {
          if (part?.type === 'text' && typeof part.text === 'string') return part.text
          const what = typeof part?.type === 'string' ? `content parts of type "${part.type}"` : 'content parts without a type'
          throw unsupported(`${param}.content[${j}]`, `${what} (only text is)`)
        })
        .join('')
    }
    if (typeof content !== 'string') throw invalid(`${param}.content must be a string or text parts`, `${param}.content`)
    const message = { role, content }
    if (toolCalls) {
      message.tool_calls = toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } }))
    }
    if (role === 'tool') message.tool_call_id = m.tool_call_id
    return message
  })
}

module.exports = {
  CHAT_SCHEMA,
  COMPLETION_SCHEMA,
  CHAT_UNSUPPORTED,
  COMPLETION_UNSUPPORTED,
  rejectUnsupported,
  generateOptions,
  chatOptions,
  chatMessages,
}
