'use strict'
// POST /v1/chat/completions
const { answerGeneration } = require('./generation.js')
const { invalid } = require('../errors.js')
const { CHAT_SCHEMA, CHAT_UNSUPPORTED, rejectUnsupported, generateOptions, chatOptions, chatMessages } = require('../llm-request.js')

/** A result's tool calls in OpenAI's message form (`index` added for stream deltas). */
const toolCallsOf = (result, withIndex) =>
  result.toolCalls.map((c, index) => ({
    ...(withIndex ? { index } : {}),
    id: c.id,
    type: 'function',
    function: { name: c.function.name, arguments: c.function.arguments },
  }))

const CHAT_SHAPE = {
  idPrefix: 'chatcmpl',
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  choice: (text, finishReason, result) =>
    result.toolCalls?.length
      ? {
          index: 0,
          message: { role: 'assistant', content: result.content || null, tool_calls: toolCallsOf(result, false), refusal: null },
          logprobs: null,
          finish_reason: 'tool_calls',
        }
      : {
          index: 0,
          message: { role: 'assistant', content: result.content ?? text, refusal: null },
          logprobs: null,
          finish_reason: finishReason,
        },
  // With tools the reply is parsed once it is whole: content and tool calls
  // go out as deltas at the end (a call's markup is never streamed as text).
  endDeltas: (result) => {
    const deltas = []
    if (result.content) deltas.push({ index: 0, delta: { content: result.content }, logprobs: null, finish_reason: null })
    if (result.toolCalls?.length) deltas.push({ index: 0, delta: { tool_calls: toolCallsOf(result, true) }, logprobs: null, finish_reason: null })
    return deltas
  },
  firstDelta: () => ({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }),
  delta: (text) => ({ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }),
  finalDelta: (finishReason) => ({ index: 0, delta: {}, logprobs: null, finish_reason: finishReason }),
}

function register(app, ctx) {
  app.post('/v1/chat/completions', { schema: { body: CHAT_SCHEMA } }, async (request, reply) => {
    const body = request.body
    const entry = ctx.pick('llm', body.model)
    rejectUnsupported(body, CHAT_UNSUPPORTED)
    if (!entry.chat) {
      throw invalid(`the model ${JSON.stringify(entry.id)} has no chat template; use /v1/completions`, 'model', 'model_not_supported')
    }
    const messages = chatMessages(body.messages)
    const signal = ctx.signalFor(reply)
    return answerGeneration({
      ctx,
      entry,
      route: 'chat',
      reply,
      signal,
      input: messages,
      options: chatOptions(body, generateOptions(body, ctx.options.defaultMaxTokens, signal)),
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
      shape: CHAT_SHAPE,
    })
  })
}

module.exports = { register }
