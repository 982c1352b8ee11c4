// Every ```js snippet of README.md runs as pasted into a `.js` file (CommonJS),
// with only its placeholders replaced: the package name by this checkout, the
// model and audio paths by the test data in ../shared.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sharedPath } from './shared.mjs'
import { startHub } from './hub-server.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const readme = readFileSync(join(root, 'README.md'), 'utf8')
const snippets = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1])

const llmDir = sharedPath('models/smollm2-135m-instruct-4bit')
const whisperDir = sharedPath('models/whisper-tiny.en')
const mp3 = sharedPath('audio/jfk.mp3')

test('README has js snippets', () => assert.ok(snippets.length >= 3))

// Each snippet runs in a process of its own, two at a time (MLX's CPU backend runs a
// process's work on one core).
describe('README snippets', { concurrency: 2 }, () => snippets.forEach((code, i) => {
  const needs = [
    code.includes('path/to/model') && llmDir,
    code.includes('path/to/whisper') && whisperDir,
    code.includes('interview.mp3') && mp3,
    // Repo ids are served by a local stand-in for the Hub (no network in tests).
    code.includes("'openai/whisper-tiny.en'") && whisperDir,
  ].filter((x) => x !== false)
  test(`README snippet ${i + 1} runs as pasted`, { skip: needs.some((x) => !x) }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mlx-napi-readme-'))
    const env = { ...process.env }
    let hub
    if (code.includes("'openai/whisper-tiny.en'")) {
      hub = await startHub({ 'openai/whisper-tiny.en': { dir: whisperDir, refs: { main: 'a'.repeat(40) } } })
      Object.assign(env, { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: join(dir, 'hub'), NO_PROXY: process.env.NO_PROXY })
      delete env.HF_HUB_OFFLINE
    }
    try {
      const file = join(dir, 'snippet.js')
      const pasted = code
        .replaceAll("require('mlx-napi')", `require(${JSON.stringify(join(root, 'index.js'))})`)
        .replaceAll("'path/to/model'", JSON.stringify(llmDir))
        .replaceAll("'path/to/whisper-small'", JSON.stringify(whisperDir))
        .replaceAll("'interview.mp3'", JSON.stringify(mp3))
        // Short generations: the snippets' 64 and 32 tokens take long on a CPU.
        .replaceAll('maxTokens: 64', 'maxTokens: 8')
        .replaceAll('maxTokens: 32', 'maxTokens: 8')
      writeFileSync(file, pasted)
      const run = promisify(execFile)(process.execPath, [file], { cwd: dir, env, timeout: 300_000 })
      await run.catch((e) => assert.fail(`snippet ${i + 1} failed (${e.code ?? e.signal}):\n${e.stderr}`))
    } finally {
      await hub?.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
}))
