'use strict'
// Server-sent events as OpenAI streams them: `data: <json>\n\n` per event,
// `data: [DONE]\n\n` at the end. The framing is the whole protocol; the stream
// is handed to fastify (reply.send), which owns the HTTP side.
const { PassThrough } = require('node:stream')

/**
 * Starts an event stream on `reply` (status 200, `text/event-stream`).
 * @param {import('fastify').FastifyReply} reply
 */
function openEventStream(reply) {
  const stream = new PassThrough()
  reply
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache')
    .header('x-accel-buffering', 'no')
    .send(stream)
  const write = (text) => {
    if (!stream.destroyed && !stream.writableEnded) stream.write(text)
  }
  return {
    /** Sends one event whose data is `value` as JSON. */
    send: (value) => write(`data: ${JSON.stringify(value)}\n\n`),
    /** Ends the stream with `data: [DONE]`. */
    done: () => {
      write('data: [DONE]\n\n')
      stream.end()
    },
    /** Ends the stream after an error event (what OpenAI's clients raise as an APIError). */
    fail: (errorBody) => {
      write(`data: ${JSON.stringify(errorBody)}\n\n`)
      stream.end()
    },
    /** Ends the stream without a terminator (the client has gone). */
    end: () => stream.end(),
  }
}

module.exports = { openEventStream }
