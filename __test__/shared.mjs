// Locates ../shared (beside the project root) or $MLX_TEST_SHARED, and skips
// tests cleanly when a file they need is absent.
import assert from 'node:assert/strict'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const sharedDir = process.env.MLX_TEST_SHARED ?? resolve(root, '..', 'shared')

/** Absolute path of `rel` under shared/, or null (with a printed reason) when absent. */
export function sharedPath(rel) {
  const path = join(sharedDir, rel)
  if (!existsSync(path)) {
    console.log(`skipping: ${path} not found`)
    return null
  }
  return path
}

export function readSharedJson(rel) {
  const path = sharedPath(rel)
  return path && JSON.parse(readFileSync(path, 'utf8'))
}

/**
 * The random tiny fixture with a 51865-row vocabulary, which makes it
 * "multilingual" (99 language tokens, listed by tiny.en's tokenizer too).
 * Returns the folder (no tokenizer: loaded with `tokenizerDir`).
 */
export function multilingualFixture() {
  const src = join(root, 'crates/mlx-napi-core/tests/fixtures/whisper-random-80')
  const dir = mkdtempSync(join(tmpdir(), 'mlx-napi-whisper-'))
  const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'))
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, vocab_size: 51865 }))
  copyFileSync(join(src, 'generation_config.json'), join(dir, 'generation_config.json'))
  // safetensors: u64 header length, JSON header, data. Grow the embedding by one zero row.
  const file = readFileSync(join(src, 'model.safetensors'))
  const headerLen = Number(file.readBigUInt64LE(0))
  const header = JSON.parse(file.toString('utf8', 8, 8 + headerLen))
  const data = file.subarray(8 + headerLen)
  const names = Object.keys(header).filter((k) => k !== '__metadata__')
  names.sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0])
  const chunks = []
  let offset = 0
  for (const name of names) {
    const t = header[name]
    let bytes = data.subarray(...t.data_offsets)
    if (name === 'model.decoder.embed_tokens.weight') {
      assert.equal(t.dtype, 'F16')
      bytes = Buffer.concat([bytes, Buffer.alloc(2 * t.shape[1])])
      t.shape = [t.shape[0] + 1, t.shape[1]]
    }
    t.data_offsets = [offset, (offset += bytes.length)]
    chunks.push(bytes)
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - (json.length % 8)) % 8)
  const size = Buffer.alloc(8)
  size.writeBigUInt64LE(BigInt(json.length))
  writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([size, Buffer.from(json), ...chunks]))
  return dir
}
