'use strict'
// Runs in an Electron utilityProcess (a Node child with Electron's IPC): long
// transcriptions here never stall the main process's event loop or a renderer.
const { transcribe } = require('./job.js')

process.parentPort.on('message', async ({ data }) => {
  try {
    process.parentPort.postMessage({ id: data.id, ok: true, result: await transcribe(data.model, data.audio) })
  } catch (e) {
    process.parentPort.postMessage({ id: data.id, ok: false, error: { message: e.message, code: e.code } })
  }
})
