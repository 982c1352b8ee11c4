#!/usr/bin/env node
// Dequantizes an MLX affine-quantized checkpoint (bits 4 or 8) to dense float32:
// w = scale · q + bias per group. Used to measure dense float32 LLM decoding on the
// CPU (BLAS-bound) from the 4-bit SmolLM2 in ../shared, without Python.
// Usage: node benchmark/models/dequantize_mlx.mjs <src dir> <dst dir>
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const [src, dst] = process.argv.slice(2)
if (!src || !dst) throw new Error('usage: dequantize_mlx.mjs <src dir> <dst dir>')
const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'))
const { bits, group_size: group } = config.quantization
const buf = readFileSync(join(src, 'model.safetensors'))
const headerLen = Number(buf.readBigUInt64LE(0))
const header = JSON.parse(buf.toString('utf8', 8, 8 + headerLen))
const data = 8 + headerLen

function f16(h) {
  const s = h & 0x8000 ? -1 : 1
  const e = (h >> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0) return s * m * 2 ** -24
  if (e === 31) return m ? NaN : s * Infinity
  return s * (1 + m / 1024) * 2 ** (e - 15)
}
function floats(name) {
  const t = header[name]
  const [a, b] = t.data_offsets
  const raw = buf.subarray(data + a, data + b)
  const n = t.dtype === 'F32' ? raw.length / 4 : raw.length / 2
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    if (t.dtype === 'F32') out[i] = raw.readFloatLE(i * 4)
    else if (t.dtype === 'F16') out[i] = f16(raw.readUInt16LE(i * 2))
    else if (t.dtype === 'BF16') out[i] = new Float32Array(new Uint32Array([raw.readUInt16LE(i * 2) << 16]).buffer)[0]
    else throw new Error(`${name}: dtype ${t.dtype}`)
  }
  return out
}

const tensors = {}
for (const name of Object.keys(header)) {
  if (name === '__metadata__' || /\.(scales|biases)$/.test(name)) continue
  const base = name.replace(/\.weight$/, '')
  if (header[`${base}.scales`]) {
    const t = header[name]
    const [rows, packed] = t.shape
    const cols = (packed * 32) / bits
    const words = new Uint32Array(buf.buffer.slice(buf.byteOffset + data + t.data_offsets[0], buf.byteOffset + data + t.data_offsets[1]))
    const scales = floats(`${base}.scales`)
    const biases = floats(`${base}.biases`)
    const out = new Float32Array(rows * cols)
    const per = 32 / bits
    const mask = (1 << bits) - 1
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const q = (words[r * packed + Math.floor(c / per)] >>> ((c % per) * bits)) & mask
        const g = r * (cols / group) + Math.floor(c / group)
        out[r * cols + c] = q * scales[g] + biases[g]
      }
    }
    tensors[name] = { shape: [rows, cols], data: out }
  } else {
    tensors[name] = { shape: header[name].shape, data: floats(name) }
  }
}

const meta = {}
let offset = 0
for (const [name, t] of Object.entries(tensors)) {
  meta[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] }
  offset += t.data.byteLength
}
let head = Buffer.from(JSON.stringify(meta))
head = Buffer.concat([head, Buffer.alloc((8 - (head.length % 8)) % 8, 0x20)])
const len = Buffer.alloc(8)
len.writeBigUInt64LE(BigInt(head.length))
mkdirSync(dst, { recursive: true })
writeFileSync(join(dst, 'model.safetensors'), Buffer.concat([len, head, ...Object.values(tensors).map((t) => Buffer.from(t.data.buffer))]))
delete config.quantization
delete config.quantization_config
config.torch_dtype = 'float32'
writeFileSync(join(dst, 'config.json'), JSON.stringify(config, null, 2))
for (const f of readdirSync(src)) {
  if (/^(tokenizer|generation_config|chat_template|special_tokens)/.test(f)) copyFileSync(join(src, f), join(dst, f))
}
console.log(`${dst}: ${Object.keys(tensors).length} float32 tensors, ${(offset / 2 ** 20).toFixed(0)} MiB`)
