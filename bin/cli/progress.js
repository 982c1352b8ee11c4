'use strict'
// Progress on stderr (stdout stays for data): a bar (cli-progress) when stderr
// is a terminal, plain lines otherwise (logs, CI, pipes), nothing with --quiet.
const cliProgress = require('cli-progress')
const { bytes, clock } = require('./format.js')

class Progress {
  /** @param {{ quiet?: boolean, stream?: NodeJS.WriteStream }} options */
  constructor({ quiet = false, stream = process.stderr } = {}) {
    this.quiet = quiet
    this.stream = stream
    this.tty = Boolean(stream.isTTY) && process.env.TERM !== 'dumb'
  }

  /** A status line (always plain). */
  note(text) {
    if (!this.quiet) this.stream.write(`${text}\n`)
  }

  bar(format) {
    return new cliProgress.SingleBar(
      { format, stream: this.stream, hideCursor: true, barsize: 28, fps: 8, etaBuffer: 30, etaAsynchronousUpdate: true },
      cliProgress.Presets.shades_classic,
    )
  }

  /**
   * A download (events of stage "download" from `downloadModel` / a load's
   * `onProgress`): bytes over all files, the current file, rate and ETA.
   */
  download(label) {
    if (this.quiet) return { update() {}, stop() {} }
    let bar = null
    let nextTenth = 0
    return {
      update: (p) => {
        if (p.stage !== 'download' || !p.totalBytes) return
        const payload = { label, file: p.file ?? '', sizes: `${bytes(p.bytes)} / ${bytes(p.totalBytes)}` }
        if (this.tty) {
          if (!bar) {
            bar = this.bar('{label} |{bar}| {percentage}% {sizes} | ETA {eta_formatted} | {file}')
            bar.start(p.totalBytes, p.bytes, payload)
          } else bar.update(p.bytes, payload)
          return
        }
        const tenth = Math.floor((10 * p.bytes) / p.totalBytes)
        if (tenth >= nextTenth) {
          nextTenth = tenth + 1
          this.note(`${label}: ${tenth * 10}% ${payload.sizes} ${payload.file}`)
        }
      },
      stop: () => bar?.stop(),
    }
  }

  /** A transcription: audio position / duration, × real time, ETA. */
  transcription(name) {
    if (this.quiet) return { update() {}, stop() {} }
    const started = Date.now()
    let bar = null
    let last = -1
    const stats = (done, total) => {
      const elapsed = (Date.now() - started) / 1000
      const speed = elapsed > 0 ? done / elapsed : 0
      const eta = speed > 0 ? (total - done) / speed : NaN
      return { name, pos: clock(done), dur: clock(total), speed: speed.toFixed(1), eta: clock(eta) }
    }
    return {
      update: (done, total) => {
        const s = stats(done, total)
        if (this.tty) {
          if (!bar) {
            bar = this.bar('{name} |{bar}| {pos} / {dur} | {speed}x real time | ETA {eta}')
            bar.start(total, done, s)
          } else bar.update(done, s)
        } else if (done !== last) {
          last = done
          this.note(`${name}: ${s.pos} / ${s.dur} (${s.speed}x real time, ETA ${s.eta})`)
        }
      },
      stop: () => bar?.stop(),
    }
  }
}

module.exports = { Progress }
