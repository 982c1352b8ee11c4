'use strict'
// POST /v1/chat/completions
const { answerGeneration } = require('./generation.js')
const { invalid } = require('../errors.js')
const { CHAT_SCHEMA, CHAT_UNSUPPORTED, rejectUnsupported, generateOptions, chatMessages } = require('../llm-request.js')

const CHAT_SHAPE = {
  idPrefix: 'chatcmpl',
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  choice: (text, finishReason) => ({
    index: 0,
    message: { role: 'assistant', content: text, refusal: null },
    logprobs: null,
    finish_reason: finishReason,
  }),
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
      options: generateOptions(body, ctx.options.defaultMaxTokens, signal),
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
      shape: CHAT_SHAPE,
    })
  })
}

module.exports = { register }
