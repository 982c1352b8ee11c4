'use strict'
// mlx-napi in Electron's main process and in a utilityProcess.
//   electron . [--headless] [--model DIR] [--audio FILE]
// Defaults: ../../../shared/models/whisper-tiny.en and ../../../shared/audio/jfk.wav
// (the project's test data). --headless prints both transcripts and quits (run it
// under xvfb-run on a machine without a display).
const { app, BrowserWindow, ipcMain, utilityProcess } = require('electron')
const path = require('node:path')
const { transcribe } = require('./job.js')

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name)
  return i > 0 ? process.argv[i + 1] : fallback
}
const shared = path.join(__dirname, '..', '..', '..', 'shared')
const model = arg('--model', path.join(shared, 'models', 'whisper-tiny.en'))
const audio = arg('--audio', path.join(shared, 'audio', 'jfk.wav'))
const headless = process.argv.includes('--headless')

/** Transcribes in a utilityProcess; resolves with its result. */
function inUtilityProcess(job) {
  const child = utilityProcess.fork(path.join(__dirname, 'utility.js'), [], { serviceName: 'mlx-napi' })
  return new Promise((resolve, reject) => {
    child.once('message', (msg) => {
      child.kill()
      msg.ok ? resolve(msg.result) : reject(Object.assign(new Error(msg.error.message), { code: msg.error.code }))
    })
    child.once('exit', (code) => reject(new Error(`utility process exited (${code})`)))
    child.postMessage({ id: 1, ...job })
  })
}

app.whenReady().then(async () => {
  try {
    const main = await transcribe(model, audio)
    console.log(`main process    [${main.backend}, ${main.addon}, ${main.seconds}s]: ${main.text}`)
    const utility = await inUtilityProcess({ model, audio })
    console.log(`utilityProcess  [${utility.backend}, ${utility.addon}, ${utility.seconds}s]: ${utility.text}`)
    if (headless) return app.quit()
    ipcMain.handle('transcribe', (_e, file) => inUtilityProcess({ model, audio: file }))
    const win = new BrowserWindow({ webPreferences: { preload: path.join(__dirname, 'preload.js') } })
    win.loadFile(path.join(__dirname, 'index.html'))
  } catch (e) {
    console.error(e)
    app.exit(1)
  }
})
