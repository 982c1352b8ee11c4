// Minimal 16-bit PCM WAV reading/writing for the Whisper benchmark's inputs
// (no ffmpeg on the GPU machine; the clips in ../shared/audio are plain PCM).
import { readFileSync, writeFileSync } from 'node:fs'

/** Samples (Int16Array) of a 16-bit PCM WAV, with its rate and channel count. */
export function readWav(path) {
  const buf = readFileSync(path)
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error(`${path}: not a RIFF/WAVE file`)
  }
  let fmt = null
  for (let at = 12; at + 8 <= buf.length; ) {
    const id = buf.toString('ascii', at, at + 4)
    const size = buf.readUInt32LE(at + 4)
    const body = at + 8
    if (id === 'fmt ') {
      fmt = {
        format: buf.readUInt16LE(body),
        channels: buf.readUInt16LE(body + 2),
        sampleRate: buf.readUInt32LE(body + 4),
        bits: buf.readUInt16LE(body + 14),
      }
    } else if (id === 'data') {
      if (!fmt) throw new Error(`${path}: data chunk before fmt chunk`)
      if (fmt.format !== 1 || fmt.bits !== 16) throw new Error(`${path}: not 16-bit PCM`)
      const n = Math.min(size, buf.length - body) >> 1
      const samples = new Int16Array(n)
      for (let i = 0; i < n; i++) samples[i] = buf.readInt16LE(body + 2 * i)
      return { samples, sampleRate: fmt.sampleRate, channels: fmt.channels }
    }
    at = body + size + (size & 1) // chunks are word-aligned
  }
  throw new Error(`${path}: no data chunk`)
}

/** Writes mono 16-bit PCM samples as a WAV file. */
export function writeWav(path, samples, sampleRate) {
  const header = Buffer.alloc(44)
  header.write('RIFF', 0, 'ascii')
  header.writeUInt32LE(36 + samples.length * 2, 4)
  header.write('WAVEfmt ', 8, 'ascii')
  header.writeUInt32LE(16, 16)
  header.writeUInt16LE(1, 20) // PCM
  header.writeUInt16LE(1, 22) // mono
  header.writeUInt32LE(sampleRate, 24)
  header.writeUInt32LE(sampleRate * 2, 28)
  header.writeUInt16LE(2, 32)
  header.writeUInt16LE(16, 34)
  header.write('data', 36, 'ascii')
  header.writeUInt32LE(samples.length * 2, 40)
  writeFileSync(path, Buffer.concat([header, Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength)]))
}

/**
 * Exactly `seconds` of speech: the 16 kHz mono clips repeated in order with a
 * short pause between them (a real recording has pauses; Whisper windows then
 * fall at arbitrary places in the speech).
 */
export function concatenateClips(clips, seconds, sampleRate = 16000, gapSeconds = 0.4) {
  const total = Math.round(seconds * sampleRate)
  const out = new Int16Array(total)
  const gap = Math.round(gapSeconds * sampleRate)
  let at = 0
  for (let i = 0; at < total; i = (i + 1) % clips.length) {
    const clip = clips[i]
    out.set(clip.subarray(0, Math.min(clip.length, total - at)), at)
    at += clip.length + gap
  }
  return out
}
