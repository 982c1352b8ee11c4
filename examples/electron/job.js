'use strict'
// The work both processes do: load Whisper once, transcribe a file. Plain Node, so
// it runs (and is tested, __test__/electron.test.mjs) without Electron too.
const { loadWhisper, backendInfo } = require('mlx-napi')

let whisper = null

/** @returns {Promise<{ text: string, backend: string, addon: string, seconds: number }>} */
async function transcribe(modelDir, audioPath) {
  whisper ??= await loadWhisper(modelDir)
  const t0 = Date.now()
  const result = await whisper.transcribe(audioPath)
  const info = backendInfo()
  return {
    text: result.text.trim(),
    backend: info.backend,
    addon: info.addon.package ?? info.addon.path,
    seconds: (Date.now() - t0) / 1000,
  }
}

module.exports = { transcribe }
