'use strict'
const { mkdirSync, writeFileSync } = require('node:fs')
const { basename, extname, join } = require('node:path')
const { loadWhisper, toJSON, toSRT, toVTT } = require('../../../index.js')
const { modelOptions, resolveModel, expectKind } = require('../model.js')
const { usage } = require('../errors.js')

const FORMATS = {
  txt: (r) => r.text.trim() + '\n',
  srt: toSRT,
  vtt: toVTT,
  json: toJSON,
}

function parseFormats(value) {
  const list = value === 'all' ? Object.keys(FORMATS) : value.split(',').map((f) => f.trim().toLowerCase())
  for (const f of list) {
    if (!FORMATS[f]) throw usage(`unknown format ${JSON.stringify(f)} (txt, srt, vtt, json or all)`)
  }
  return [...new Set(list)]
}

function register(program, cli) {
  modelOptions(
    program
      .command('transcribe')
      .description('transcribe (or translate) audio files with a Whisper model')
      .argument('<files...>', 'audio files (WAV, FLAC, MP3, Ogg, Opus, M4A, WebM, …)'),
  )
    .option('-l, --language <lang>', 'language code or name, or auto', 'auto')
    .option('--task <task>', 'transcribe or translate (to English)', 'transcribe')
    .option('-f, --format <formats>', 'txt, srt, vtt, json (comma-separated) or all', 'txt')
    .option('-o, --output-dir <dir>', 'write <name>.<format> files here (default: stdout for one format)')
    .option('--batch-size <n>', '30 s windows decoded together', cli.number({ int: true, min: 1, max: 256 }))
    .option('--beam-size <n>', 'beam search width (1 = greedy)', cli.number({ int: true, min: 1, max: 64 }))
    .option('--word-timestamps', 'word-level timestamps (Whisper option wordTimestamps)')
    .option('--vad', 'skip silence with voice activity detection (Whisper option vad)')
    .action(
      cli.action(async (files, opts) => {
        const formats = parseFormats(opts.format)
        if (!['transcribe', 'translate'].includes(opts.task)) throw usage('--task is transcribe or translate')
        const outputDir = opts.outputDir ?? (formats.length > 1 ? '.' : null)
        const progress = cli.progress(opts)
        const signal = cli.interruptSignal()
        const model = await resolveModel(opts, progress, signal)
        expectKind(model, 'whisper', 'transcribe')
        const whisper = await loadWhisper(model.path, { signal })
        try {
          if (outputDir) mkdirSync(outputDir, { recursive: true })
          for (const file of files) {
            const bar = progress.transcription(basename(file))
            const options = {
              language: opts.language,
              task: opts.task,
              signal,
              onProgress: (p) => bar.update(p.secondsDone, p.secondsTotal),
            }
            if (opts.batchSize) options.batchSize = opts.batchSize
            if (opts.beamSize) options.beamSize = opts.beamSize
            // Passed only when asked for: older builds of the addon lack them.
            if (opts.wordTimestamps) options.wordTimestamps = true
            if (opts.vad) options.vad = true
            let result
            try {
              result = await whisper.transcribe(file, options)
              bar.update(result.duration, result.duration)
            } finally {
              bar.stop()
            }
            if (!outputDir) {
              process.stdout.write(FORMATS[formats[0]](result))
              continue
            }
            const stem = basename(file, extname(file))
            for (const f of formats) {
              const out = join(outputDir, `${stem}.${f}`)
              writeFileSync(out, FORMATS[f](result))
              progress.note(`wrote ${out}`)
            }
          }
        } finally {
          await whisper.dispose()
        }
      }),
    )
}

module.exports = { register }
