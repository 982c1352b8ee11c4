'use strict'
// One queue per loaded model. Up to `maxRunning` requests reach the model at
// once: for an LLM its `maxBatchSize`, so that concurrent requests decode
// together in the model's continuous batch; for Whisper 1 (its calls run one at
// a time on the model's thread anyway). Queueing the rest here lets the server
// bound how many wait (429 beyond that), drop a waiting request whose client
// has left before it ever reaches the model, and report how busy each model is.
const { ApiError } = require('./errors.js')

class ModelQueue {
  /**
   * @param {string} modelId named in the 429 message
   * @param {number} maxWaiting requests allowed to wait while `maxRunning` run
   * @param {number} [maxRunning=1] requests given to the model at once
   */
  constructor(modelId, maxWaiting, maxRunning = 1) {
    this.modelId = modelId
    this.maxWaiting = maxWaiting
    this.maxRunning = maxRunning
    /** Tasks holding the model now. */
    this.running = 0
    /** @type {Array<() => void>} starters of the waiting tasks, oldest first */
    this.waiting = []
  }

  /** Whether any task holds the model. */
  get busy() {
    return this.running > 0
  }

  /** Requests waiting for the model (not counting the running ones). */
  get queued() {
    return this.waiting.length
  }

  /**
   * Runs `task(signal)` once the model is free. Rejects at once with a 429
   * ApiError when `maxWaiting` requests are already waiting, and with
   * `signal.reason` when the signal aborts before the task starts.
   * @template T
   * @param {(signal: AbortSignal) => Promise<T>} task
   * @param {AbortSignal} signal
   * @param {(ahead: number) => void} [onWait] called when the task has to wait,
   *   with the number of requests waiting ahead of it, itself included
   * @returns {Promise<T>}
   */
  async run(task, signal, onWait) {
    signal.throwIfAborted()
    if (this.running >= this.maxRunning) {
      if (this.waiting.length >= this.maxWaiting) {
        throw new ApiError(
          429,
          `model ${this.modelId} is busy and ${this.waiting.length} requests are already waiting for it; retry later`,
          { code: 'queue_full' },
        )
      }
      // The finishing task hands its slot straight to the oldest waiter, so
      // no newcomer can slip in between.
      await new Promise((resolve, reject) => {
        const start = () => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        }
        const onAbort = () => {
          const i = this.waiting.indexOf(start)
          if (i >= 0) this.waiting.splice(i, 1)
          reject(signal.reason)
        }
        signal.addEventListener('abort', onAbort, { once: true })
        this.waiting.push(start)
        onWait?.(this.waiting.length)
      })
    } else {
      this.running++
    }
    try {
      return await task(signal)
    } finally {
      const next = this.waiting.shift()
      if (next) next() // the slot passes on: `running` stays
      else this.running--
    }
  }
}

module.exports = { ModelQueue }
