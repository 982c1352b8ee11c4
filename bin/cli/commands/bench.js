'use strict'
// A quick speed check on this machine: decode tokens/s for an LLM, × real time
// for Whisper. benchmark/ holds the careful comparisons with other runtimes.
const { loadLLM, loadWhisper, backendInfo } = require('../../../index.js')
const { modelOptions, resolveModel } = require('../model.js')
const { usage } = require('../errors.js')
const { json } = require('../format.js')

const PROMPT = 'Write a long, detailed story about a lighthouse keeper who finds a message in a bottle.'

/** 30 s of a gliding tone over noise at 16 kHz (no audio file needed). */
function syntheticAudio(seconds = 30, rate = 16000) {
  const pcm = new Float32Array(seconds * rate)
  let seed = 1
  for (let i = 0; i < pcm.length; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648
    const t = i / rate
    pcm[i] = 0.3 * Math.sin(2 * Math.PI * (200 + 20 * t) * t) + 0.05 * (seed / 2147483648 - 0.5)
  }
  return pcm
}

function register(program, cli) {
  modelOptions(program.command('bench'))
    .description('measure generation speed (LLM) or transcription speed (Whisper) on this machine')
    .option('--tokens <n>', 'LLM: tokens to generate', cli.number({ int: true, min: 1, max: 100000 }), 128)
    .option('--audio <file>', 'Whisper: audio to transcribe (default: 30 s of synthetic sound)')
    .option('--batch-size <n>', 'Whisper: windows decoded together', cli.number({ int: true, min: 1, max: 256 }))
    .option('--json', 'print JSON')
    .action(
      cli.action(async (opts) => {
        const progress = cli.progress(opts)
        const signal = cli.interruptSignal()
        const model = await resolveModel(opts, progress, signal)
        const device = backendInfo().device
        let report
        if (model.kind === 'llm') {
          const llm = await loadLLM(model.path, { signal })
          try {
            progress.note('warming up…')
            await llm.warmup()
            const input = [{ role: 'user', content: PROMPT }]
            let r
            try {
              r = await llm.generate(input, { maxTokens: opts.tokens, ignoreEos: true, signal })
            } catch {
              r = await llm.generate(PROMPT, { maxTokens: opts.tokens, ignoreEos: true, signal })
            }
            report = {
              kind: 'llm', device, model: opts.model, promptTokens: r.usage.promptTokens,
              generatedTokens: r.usage.completionTokens, ttftMs: r.timings.ttftMs,
              prefillTokensPerSec: r.timings.prefillTokensPerSec, decodeTokensPerSec: r.timings.decodeTokensPerSec,
            }
          } finally {
            await llm.dispose()
          }
          if (opts.json) return process.stdout.write(json(report))
          process.stdout.write(
            `${opts.model} on ${device}: decode ${report.decodeTokensPerSec.toFixed(1)} tok/s ` +
              `(${report.generatedTokens} tokens), prefill ${report.prefillTokensPerSec.toFixed(1)} tok/s ` +
              `(${report.promptTokens} tokens), first token ${report.ttftMs.toFixed(0)} ms\n`,
          )
        } else if (model.kind === 'whisper') {
          const whisper = await loadWhisper(model.path, { signal })
          try {
            progress.note('warming up…')
            await whisper.warmup()
            const audio = opts.audio ?? syntheticAudio()
            const options = { signal, ...(opts.audio ? {} : { sampleRate: 16000 }) }
            if (opts.batchSize) options.batchSize = opts.batchSize
            const r = await whisper.transcribe(audio, options)
            report = {
              kind: 'whisper', device, model: opts.model, audio: opts.audio ?? 'synthetic', audioSeconds: r.duration,
              totalMs: r.timings.totalMs, timesRealTime: r.duration / (r.timings.totalMs / 1000),
            }
          } finally {
            await whisper.dispose()
          }
          if (opts.json) return process.stdout.write(json(report))
          process.stdout.write(
            `${opts.model} on ${device}: ${report.timesRealTime.toFixed(1)}x real time ` +
              `(${report.audioSeconds.toFixed(1)} s of audio in ${(report.totalMs / 1000).toFixed(2)} s)\n`,
          )
        } else {
          throw usage(`cannot tell whether ${model.path} is an LLM or a Whisper model (config.json)`)
        }
      }),
    )
}

module.exports = { register }
