'use strict'
// POST /v1/completions (the legacy text-completion API): the prompt goes in
// as raw text (or token ids), without the chat template.
const { answerGeneration } = require('./generation.js')
const { invalid } = require('../errors.js')
const { COMPLETION_SCHEMA, COMPLETION_UNSUPPORTED, rejectUnsupported, generateOptions } = require('../llm-request.js')

/** OpenAI's default `max_tokens` for text completions. */
const COMPLETION_DEFAULT_MAX_TOKENS = 16

/** The one prompt of a request: a string or token ids. */
function promptOf(prompt) {
  if (typeof prompt === 'string') return prompt
  if (Array.isArray(prompt[0]) || typeof prompt[0] === 'string') {
    if (prompt.length > 1) {
      throw invalid('several prompts in one request are not supported by this server; send one request per prompt', 'prompt', 'unsupported_value')
    }
    prompt = prompt[0]
    if (typeof prompt === 'string') return prompt
  }
  if (prompt.length === 0) throw invalid('`prompt` has no tokens', 'prompt')
  return Uint32Array.from(prompt)
}

function textShape(echo) {
  const choice = (text, finishReason) => ({ text, index: 0, logprobs: null, finish_reason: finishReason })
  return {
    idPrefix: 'cmpl',
    object: 'text_completion',
    choice: (text, finishReason) => choice(echo + text, finishReason),
    firstDelta: () => (echo ? choice(echo, null) : null),
    delta: (text) => choice(text, null),
    finalDelta: (finishReason) => choice('', finishReason),
  }
}

function register(app, ctx) {
  app.post('/v1/completions', { schema: { body: COMPLETION_SCHEMA } }, async (request, reply) => {
    const body = request.body
    const entry = ctx.pick('llm', body.model)
    rejectUnsupported(body, COMPLETION_UNSUPPORTED)
    const prompt = promptOf(body.prompt)
    let echo = ''
    if (body.echo === true) {
      echo = typeof prompt === 'string' ? prompt : entry.model.tokenizer.decode([...prompt], false)
    }
    const signal = ctx.signalFor(reply)
    return answerGeneration({
      ctx,
      entry,
      route: 'completions',
      reply,
      signal,
      input: prompt,
      options: generateOptions(body, COMPLETION_DEFAULT_MAX_TOKENS, signal),
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
      shape: textShape(echo),
    })
  })
}

module.exports = { register }
