#!/usr/bin/env node
// Command-line entry point: report what MLX runs on, prove it computes, and
// transcribe audio with a Whisper model.
'use strict'
const { backendInfo, selfTest, loadWhisper, toSRT, toVTT, toJSON } = require('..')

async function main(argv) {
  const [command = 'info'] = argv
  if (command === 'info') {
    console.log(JSON.stringify(backendInfo(), null, 2))
  } else if (command === 'self-test') {
    const size = Number(argv[1] ?? 1024)
    const dtype = argv[2] ?? 'float32'
    console.log(JSON.stringify(await selfTest({ size, dtype }), null, 2))
  } else if (command === 'transcribe' && argv.length >= 3) {
    await transcribe(argv[1], argv[2], argv[3] ?? 'text')
  } else {
    console.error(
      'usage: mlx-napi info\n' +
        '       mlx-napi self-test [size] [dtype]\n' +
        '       mlx-napi transcribe <model> <audio> [text|srt|vtt|json]',
    )
    process.exitCode = 2
  }
}

// Prints the transcription of `audio` to stdout in `format`.
async function transcribe(model, audio, format) {
  const formats = { text: (t) => t.text.trim() + '\n', srt: toSRT, vtt: toVTT, json: toJSON }
  if (!formats[format]) throw Object.assign(new Error(`unknown format ${format}`), { code: 'ERR_INVALID_ARG' })
  const whisper = await loadWhisper(model)
  const controller = new AbortController()
  process.once('SIGINT', () => controller.abort())
  const result = await whisper.transcribe(audio, { signal: controller.signal })
  await whisper.dispose()
  process.stdout.write(formats[format](result))
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`${err.code ?? 'ERROR'}: ${err.message}`)
  process.exitCode = 1
})
