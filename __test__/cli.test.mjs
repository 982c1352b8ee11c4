// The `mlx-napi` command, run as a real process: help and usage errors, then
// the shell-only path of a new user — download from a (local stand-in) Hub,
// resume after the process is killed, list, use offline, transcribe, generate,
// chat — and the progress bar under a pseudo-terminal (`script`).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sharedPath } from './shared.mjs'
import { startHub, sha256 } from './hub-server.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const bin = join(root, 'bin', 'mlx-napi.js')
const whisperDir = sharedPath('models/whisper-tiny.en')
const llmDir = sharedPath('models/smollm2-135m-instruct-4bit')
const jfk = sharedPath('audio/jfk.wav')
const skip = !whisperDir || !llmDir || !jfk
const hasScript = spawnSync('script', ['--version']).status === 0
const COMMIT = 'c'.repeat(40)
const JFK = /ask not what your country can do for you/i

const tmp = mkdtempSync(join(tmpdir(), 'mlx-napi-cli-'))
const cache = join(tmp, 'hub')
let hub
let env

/** Runs the CLI to completion: { code, stdout, stderr }. */
function run(args, { input, extraEnv = {}, timeout = 240_000 } = {}) {
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...env, ...extraEnv }, cwd: tmp })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout)
    child.on('error', fail)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      ok({ code, signal, stdout, stderr })
    })
    child.stdin.end(input ?? '')
  })
}

/** The one-line `CODE: message` a failure must print. */
function assertFailure(r, code, exitCode = 1) {
  assert.equal(r.code, exitCode, r.stderr)
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines.length, 1, r.stderr)
  assert.match(lines[0], new RegExp(`^${code}: \\S`))
}

before(async () => {
  env = { ...process.env, HF_HUB_CACHE: cache, HF_TOKEN: '', HF_HUB_OFFLINE: '' }
  if (skip) return
  hub = await startHub({
    'test-org/whisper': { dir: whisperDir, refs: { main: COMMIT } },
    'test-org/smollm2': { dir: llmDir, refs: { main: COMMIT } },
  })
  env.HF_ENDPOINT = hub.endpoint
})
after(async () => {
  await hub?.close()
  rmSync(tmp, { recursive: true, force: true })
})

test('every command has --help; usage errors are one coded line with exit 2', async () => {
  for (const command of ['transcribe', 'generate', 'chat', 'serve', 'download', 'models', 'info', 'bench', 'self-test']) {
    const r = await run([command, '--help'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`^Usage: mlx-napi ${command}`))
  }
  const top = await run(['--help'])
  assert.match(top.stdout, /Commands:/)
  assertFailure(await run(['no-such-command']), 'ERR_USAGE', 2)
  assertFailure(await run(['transcribe', 'a.wav']), 'ERR_USAGE', 2)
  assertFailure(await run(['generate', '--model', 'x', '--max-tokens', 'lots']), 'ERR_USAGE', 2)
  assertFailure(await run(['transcribe', '--model', 'x', '--format', 'docx', 'a.wav']), 'ERR_USAGE', 2)
  assertFailure(await run(['download', 'not a repo']), 'ERR_INVALID_ARG')
  assertFailure(await run(['generate', '--model', join(tmp, 'nowhere'), '--prompt', 'hi']), 'ERR_MODEL_NOT_FOUND')
  const info = await run(['info', '--json'])
  assert.equal(info.code, 0, info.stderr)
  assert.equal(JSON.parse(info.stdout).mlxVersion, '0.32.2')
  assert.equal(JSON.parse(info.stdout).hubCache, cache)
})

test('download: killed midway, resumed, listed; then offline misses are ERR_OFFLINE', { skip }, async () => {
  const cut = 16 << 20
  hub.stallAfter = { file: 'model.safetensors', bytes: cut }
  const child = spawn(process.execPath, [bin, 'download', 'test-org/smollm2'], { env, stdio: 'ignore' })
  await new Promise((ok) => hub.once('stalled', ok))
  // Kill it once everything sent is on disk (the client writes as it reads).
  const blobs = join(cache, 'models--test-org--smollm2', 'blobs')
  const partialSize = () => {
    const name = readdirSync(blobs).find((b) => b.endsWith('.incomplete'))
    return name ? statSync(join(blobs, name)).size : 0
  }
  for (let i = 0; i < 100 && partialSize() < cut; i++) await new Promise((ok) => setTimeout(ok, 50))
  child.kill('SIGKILL')
  await new Promise((ok) => child.on('close', ok))
  hub.stallAfter = null
  hub.dropStalled()
  assert.equal(partialSize(), cut)

  hub.requests.length = 0
  const r = await run(['download', 'test-org/smollm2'])
  assert.equal(r.code, 0, r.stderr)
  const get = hub.requests.find((q) => q.method === 'GET' && q.url.endsWith('/model.safetensors'))
  assert.equal(get.range, `bytes=${cut}-`)
  const path = r.stdout.trim()
  assert.equal(path, join(cache, 'models--test-org--smollm2', 'snapshots', COMMIT))
  assert.equal(sha256(join(path, 'model.safetensors')), sha256(join(llmDir, 'model.safetensors')))
  assert.match(r.stderr, /test-org\/smollm2: 100% /) // plain progress lines without a terminal

  const w = await run(['download', 'test-org/whisper', '--json'])
  assert.equal(w.code, 0, w.stderr)
  assert.equal(JSON.parse(w.stdout).kind, 'whisper')

  const listed = await run(['models', '--json'])
  assert.equal(listed.code, 0, listed.stderr)
  const models = JSON.parse(listed.stdout)
  assert.deepEqual(models.map((m) => [m.repoId, m.kind]), [['test-org/smollm2', 'llm'], ['test-org/whisper', 'whisper']])
  const table = await run(['models'])
  assert.match(table.stdout, /test-org\/smollm2\s+llm\s+llama\s+\d/)

  const missing = await run(['download', 'test-org/other'], { extraEnv: { HF_HUB_OFFLINE: '1' } })
  assertFailure(missing, 'ERR_OFFLINE')
  assertFailure(await run(['download', 'test-org/nothing']), 'ERR_MODEL_NOT_FOUND')
})

test('transcribe offline from the cache: stdout for one format, files for several', { skip }, async () => {
  const offline = { HF_HUB_OFFLINE: '1', HF_ENDPOINT: 'http://127.0.0.1:9' }
  const out = join(tmp, 'subs')
  // Two independent processes, side by side (MLX's CPU backend runs a process's work on one core).
  const [r, all] = await Promise.all([
    run(['transcribe', '--model', 'test-org/whisper', jfk], { extraEnv: offline }),
    run(['transcribe', '-m', 'test-org/whisper', '-f', 'srt,vtt,json', '-o', out, jfk], { extraEnv: offline }),
  ])
  if (r.code !== 0 && /ERR_OFFLINE/.test(r.stderr)) throw new Error('run the download test first (same file)')
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, JFK)
  assert.match(r.stderr, /jfk\.wav: 0:11 \/ 0:11 \(.*x real time/)
  assert.equal(all.code, 0, all.stderr)
  assert.deepEqual(readdirSync(out).sort(), ['jfk.json', 'jfk.srt', 'jfk.vtt'])
  assert.match(readFileSync(join(out, 'jfk.srt'), 'utf8'), /^1\n00:00:00,000 --> /)
  assert.match(readFileSync(join(out, 'jfk.vtt'), 'utf8'), /^WEBVTT/)
  assert.match(JSON.parse(readFileSync(join(out, 'jfk.json'), 'utf8')).text, JFK)
  assertFailure(await run(['transcribe', '-m', 'test-org/smollm2', jfk], { extraEnv: offline }), 'ERR_USAGE', 2)
})

test('generate streams to stdout; chat keeps a session with /reset and /exit; bench', { skip }, async () => {
  const offline = { HF_HUB_OFFLINE: '1' }
  const question = 'What is the capital of France?'
  // Four independent processes, side by side (MLX's CPU backend runs a process's work on one core).
  const [g, j, c, b] = await Promise.all([
    run(['generate', '-m', 'test-org/smollm2', '-p', question, '-n', '12'], { extraEnv: offline }),
    run(['generate', '-m', llmDir, '-p', question, '-n', '4', '--json']),
    run(['chat', '-m', 'test-org/smollm2', '-n', '12', '--stats'], {
      extraEnv: offline,
      input: `${question}\n/reset\n${question}\n/exit\n`,
    }),
    run(['bench', '-m', 'test-org/smollm2', '--tokens', '4', '--json'], { extraEnv: offline }),
  ])
  assert.equal(g.code, 0, g.stderr)
  assert.match(g.stdout, /Paris/)
  assert.match(g.stderr, /decode [\d.]+ tok\/s/)
  assert.equal(j.code, 0, j.stderr)
  assert.equal(JSON.parse(j.stdout).usage.completionTokens, 4)
  assert.equal(c.code, 0, c.stderr)
  assert.equal(c.stdout.match(/Paris/g)?.length, 2, c.stdout)
  assert.match(c.stderr, /conversation cleared/)
  assert.equal(b.code, 0, b.stderr)
  const bench = JSON.parse(b.stdout)
  assert.equal(bench.kind, 'llm')
  assert.equal(bench.generatedTokens, 4)
  assert.ok(bench.decodeTokensPerSec > 0)
})

test('on a terminal, download and transcribe draw progress bars', { skip: skip || !hasScript }, async () => {
  const fresh = join(tmp, 'hub-tty')
  const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)}`
  const tty = (args, extra = {}) =>
    new Promise((ok, fail) => {
      // Asynchronous: the stand-in Hub answers from this process.
      const child = spawn('script', ['-qec', `${command} ${args}`, '/dev/null'], {
        env: { ...env, HF_HUB_CACHE: fresh, ...extra },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      child.stdout.on('data', (d) => (stdout += d))
      child.stderr.on('data', (d) => (stdout += d))
      child.on('error', fail)
      child.on('close', (status) => ok({ status, stdout }))
    })
  const d = await tty('download test-org/whisper')
  assert.equal(d.status, 0, d.stdout)
  assert.match(d.stdout, /test-org\/whisper \|[█░]+\| 100% .* \| ETA /)
  const t = await tty(`transcribe -m test-org/whisper ${JSON.stringify(jfk)}`, { HF_HUB_OFFLINE: '1' })
  assert.equal(t.status, 0, t.stdout)
  assert.match(t.stdout, /jfk\.wav \|[█░]+\| 0:11 \/ 0:11 \| [\d.]+x real time/)
  assert.match(t.stdout, JFK)
  assert.ok(existsSync(join(fresh, 'models--test-org--whisper')))
})
