'use strict'
// What /v1/chat/completions and /v1/completions share: running a generation
// in the model's queue, as one JSON response or as server-sent events.
const { randomUUID } = require('node:crypto')
const { toErrorResponse } = require('../errors.js')
const { openEventStream } = require('../sse.js')

/** `finishReason` of the addon → OpenAI's `finish_reason`. */
const FINISH_REASON = { stop: 'stop', length: 'length' }

const clientGone = () => new DOMException('the client disconnected', 'AbortError')

function usageOf(result) {
  const { promptTokens, completionTokens } = result.usage
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens }
}

/**
 * Answers one generation request.
 * @param {object} args
 * @param {any} args.ctx server context (see index.js)
 * @param {any} args.entry the model's registry entry
 * @param {string} args.route for events
 * @param {import('fastify').FastifyReply} args.reply
 * @param {AbortSignal} args.signal aborts when the client leaves
 * @param {any} args.input prompt for `generate` / `stream`
 * @param {object} args.options GenerateOptions (signal included)
 * @param {boolean} args.stream SSE or one JSON body
 * @param {boolean} args.includeUsage `stream_options.include_usage`
 * @param {object} args.shape how the response looks (chat or text completion)
 */
async function answerGeneration({ ctx, entry, route, reply, signal, input, options, stream, includeUsage, shape }) {
  const id = `${shape.idPrefix}-${randomUUID().replaceAll('-', '')}`
  const created = Math.floor(Date.now() / 1000)
  const envelope = { id, object: shape.object, created, model: entry.id }
  const llm = entry.model

  if (!stream) {
    const result = await ctx.run(entry, route, signal, () => llm.generate(input, options))
    if (result.finishReason === 'abort') throw signal.reason ?? clientGone()
    return {
      ...envelope,
      choices: [shape.choice(result.text, FINISH_REASON[result.finishReason] ?? 'stop', result)],
      usage: usageOf(result),
    }
  }

  const chunkObject = shape.chunkObject ?? shape.object
  const chunk = (choices, extra = {}) => ({
    ...envelope,
    object: chunkObject,
    choices,
    ...(includeUsage ? { usage: null } : {}),
    ...extra,
  })
  let events = null
  try {
    await ctx.run(entry, route, signal, async () => {
      const iterator = llm.stream(input, options)
      // The first step is awaited before any header goes out, so errors
      // raised when the generation starts (bad options, prompt too long)
      // still get their own HTTP status.
      let step = await iterator.next()
      if (step.done && step.value?.finishReason === 'abort') return step.value
      events = openEventStream(reply)
      const first = shape.firstDelta()
      if (first) events.send(chunk([first]))
      // With tools the text is held back until the reply can be parsed.
      const held = Boolean(options.tools?.length) && shape.endDeltas
      while (!step.done) {
        if (step.value.text && !held) events.send(chunk([shape.delta(step.value.text)]))
        step = await iterator.next()
      }
      const result = step.value
      if (result.finishReason === 'abort') {
        events.end()
        return result
      }
      if (held) for (const delta of shape.endDeltas(result)) events.send(chunk([delta]))
      const reason = result.toolCalls?.length ? 'tool_calls' : (FINISH_REASON[result.finishReason] ?? 'stop')
      events.send(chunk([shape.finalDelta(reason)]))
      if (includeUsage) events.send(chunk([], { usage: usageOf(result) }))
      events.done()
      return result
    })
  } catch (err) {
    if (!events) throw err
    // Headers are out: report the error as an event, as OpenAI does.
    events.fail(toErrorResponse(err).body)
    return reply
  }
  if (!events) throw signal.reason ?? clientGone()
  return reply
}

module.exports = { answerGeneration }
