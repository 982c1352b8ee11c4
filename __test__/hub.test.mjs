// Hugging Face Hub downloads through the JS API, against a local stand-in of the
// Hub (hub-server.mjs) serving ../shared's SmolLM2 folder: the cache layout
// Python's huggingface_hub uses, resume after a broken transfer, abort, coded
// errors, offline mode and pinned revisions.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { sharedPath } from './shared.mjs'
import { startHub, sha256 } from './hub-server.mjs'

const require = createRequire(import.meta.url)
const { downloadModel, listModels, loadLLM } = require('../index.js')

const modelDir = sharedPath('models/smollm2-135m-instruct-4bit')
const skip = !modelDir
const MAIN = 'a'.repeat(40)
const V1 = 'b'.repeat(40)
const REPO = 'test-org/smollm2'
const weightsSize = modelDir ? statSync(join(modelDir, 'model.safetensors')).size : 0

let hub
const tmp = mkdtempSync(join(tmpdir(), 'mlx-napi-hub-'))
let n = 0
const freshCache = () => join(tmp, `cache${n++}`)
const repoDir = (cache) => join(cache, 'models--test-org--smollm2')

before(async () => {
  if (skip) return
  hub = await startHub({
    [REPO]: { dir: modelDir, refs: { main: MAIN, 'v1.0': V1 } },
    'test-org/gated': { dir: modelDir, refs: { main: MAIN }, gatedToken: 'secret' },
  })
})
after(async () => {
  await hub?.close()
  rmSync(tmp, { recursive: true, force: true })
})

test('a repo id is downloaded into the huggingface_hub cache layout, with progress', { skip }, async () => {
  const cacheDir = freshCache()
  const events = []
  const got = await downloadModel(REPO, {
    hub: { endpoint: hub.endpoint, cacheDir },
    onProgress: (p) => events.push(p),
  })
  assert.equal(got.commit, MAIN)
  assert.equal(got.kind, 'llm')
  assert.equal(got.path, join(repoDir(cacheDir), 'snapshots', MAIN))
  assert.equal(readFileSync(join(repoDir(cacheDir), 'refs', 'main'), 'utf8'), MAIN)
  const weights = join(got.path, 'model.safetensors')
  assert.ok(lstatSync(weights).isSymbolicLink())
  const blob = readlinkSync(weights)
  assert.match(blob, /^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/)
  assert.equal(sha256(weights), blob.slice(-64))
  // Only what the loader reads: no README / PROVENANCE.
  const files = readdirSync(got.path).sort()
  assert.deepEqual(files, ['chat_template.jinja', 'config.json', 'generation_config.json', 'model.safetensors',
    'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json'])
  const download = events.filter((e) => e.stage === 'download')
  assert.ok(download.length >= 2)
  const last = download.at(-1)
  assert.equal(last.bytes, last.totalBytes)
  assert.equal(last.done, last.total)
  assert.ok(last.totalBytes > weightsSize)
  for (let i = 1; i < download.length; i++) assert.ok(download[i].bytes >= download[i - 1].bytes)
  assert.ok(download.some((e) => e.file === 'model.safetensors'))
  assert.equal(got.downloadedBytes, last.totalBytes)

  // Cached now: a second call transfers nothing.
  const again = await downloadModel(REPO, { hub: { endpoint: hub.endpoint, cacheDir } })
  assert.equal(again.downloadedBytes, 0)
  const listed = await listModels({ cacheDir })
  assert.equal(listed.length, 1)
  assert.equal(listed[0].repoId, REPO)
  assert.equal(listed[0].kind, 'llm')
  assert.equal(listed[0].incompleteBytes, 0)
  assert.ok(listed[0].sizeBytes >= last.totalBytes)
  assert.deepEqual(listed[0].refs, [{ name: 'main', commit: MAIN }])

  // The loader takes the repo id, offline, from this cache; the model works.
  const llm = await loadLLM(REPO, { hub: { cacheDir, offline: true } })
  const r = await llm.generate('The capital of France is', { maxTokens: 3 })
  assert.equal(r.usage.completionTokens, 3)
  await llm.dispose()
})

test('a transfer broken midway resumes with a Range request', { skip }, async () => {
  const cacheDir = freshCache()
  const cut = 20 << 20
  hub.dropAfter = { file: 'model.safetensors', bytes: cut }
  hub.requests.length = 0
  const got = await downloadModel(REPO, { hub: { endpoint: hub.endpoint, cacheDir } })
  const gets = hub.requests.filter((r) => r.method === 'GET' && r.url.endsWith('/model.safetensors'))
  assert.equal(gets.length, 2, JSON.stringify(gets))
  assert.equal(gets[0].range, null)
  const resumedAt = Number(/bytes=(\d+)-/.exec(gets[1].range)[1])
  assert.ok(resumedAt > 0 && resumedAt <= cut, gets[1].range)
  assert.equal(sha256(join(got.path, 'model.safetensors')), sha256(join(modelDir, 'model.safetensors')))
})

test('an aborted download rejects with AbortError and the next call resumes it', { skip }, async () => {
  const cacheDir = freshCache()
  const cut = 8 << 20
  hub.stallAfter = { file: 'model.safetensors', bytes: cut }
  const controller = new AbortController()
  // A blocked read sees the abort once the stalled connection is cut off.
  hub.once('stalled', () => {
    controller.abort()
    setTimeout(() => hub.dropStalled(), 200)
  })
  const pending = downloadModel(REPO, { hub: { endpoint: hub.endpoint, cacheDir }, signal: controller.signal })
  await assert.rejects(pending, (e) => e.name === 'AbortError' && e.code === 'ABORT_ERR')
  hub.stallAfter = null
  const blobs = readdirSync(join(repoDir(cacheDir), 'blobs'))
  const partial = blobs.find((b) => b.endsWith('.incomplete'))
  assert.ok(partial, blobs.join())
  // The server sent `cut` bytes; the client may have stopped reading earlier
  // (the abort is seen between reads), but never after.
  const kept = statSync(join(repoDir(cacheDir), 'blobs', partial)).size
  assert.ok(kept > 0 && kept <= cut, `partial file holds ${kept} bytes, sent ${cut}`)
  hub.requests.length = 0
  const got = await downloadModel(REPO, { hub: { endpoint: hub.endpoint, cacheDir } })
  const get = hub.requests.find((r) => r.method === 'GET' && r.url.endsWith('/model.safetensors'))
  assert.equal(get.range, `bytes=${kept}-`, 'resumes from what the partial file holds')
  assert.equal(sha256(join(got.path, 'model.safetensors')), sha256(join(modelDir, 'model.safetensors')))
})

test('missing repos, gated repos and unreachable hubs have their own codes', { skip }, async () => {
  const cacheDir = freshCache()
  const hubOpts = { endpoint: hub.endpoint, cacheDir }
  await assert.rejects(downloadModel('test-org/missing', { hub: hubOpts }), (e) => {
    assert.equal(e.code, 'ERR_MODEL_NOT_FOUND')
    assert.match(e.message, /test-org\/missing/)
    return true
  })
  await assert.rejects(downloadModel(REPO, { revision: 'nope', hub: hubOpts }), { code: 'ERR_MODEL_NOT_FOUND' })
  await assert.rejects(downloadModel('test-org/gated', { hub: hubOpts }), (e) => {
    assert.equal(e.code, 'ERR_HUB_AUTH')
    assert.match(e.message, /gated/)
    return true
  })
  const gated = await downloadModel('test-org/gated', { hub: { ...hubOpts, token: 'secret' } })
  assert.equal(gated.commit, MAIN)
  await assert.rejects(downloadModel(REPO, { hub: { endpoint: 'http://127.0.0.1:9', cacheDir } }), {
    code: 'ERR_NETWORK',
  })
  await assert.rejects(loadLLM('test-org/missing', { hub: hubOpts }), { code: 'ERR_MODEL_NOT_FOUND' })
  await assert.rejects(downloadModel('not a repo'), { code: 'ERR_INVALID_ARG' })
})

test('offline mode reads the cache only; a pinned revision gets its own snapshot', { skip }, async () => {
  const cacheDir = freshCache()
  await assert.rejects(downloadModel(REPO, { hub: { endpoint: hub.endpoint, cacheDir, offline: true } }), (e) => {
    assert.equal(e.code, 'ERR_OFFLINE')
    assert.match(e.message, /test-org\/smollm2/)
    return true
  })
  const tagged = await downloadModel(`${REPO}@v1.0`, { hub: { endpoint: hub.endpoint, cacheDir } })
  assert.equal(tagged.commit, V1)
  assert.equal(readFileSync(join(repoDir(cacheDir), 'refs', 'v1.0'), 'utf8'), V1)
  // main is another commit over the same blobs: linked, not downloaded again.
  const main = await downloadModel(REPO, { hub: { endpoint: hub.endpoint, cacheDir } })
  assert.equal(main.commit, MAIN)
  assert.equal(main.downloadedBytes, 0)
  const pinned = await downloadModel(REPO, { revision: V1, hub: { cacheDir, offline: true } })
  assert.equal(pinned.path, join(repoDir(cacheDir), 'snapshots', V1))
  assert.ok(!existsSync(join(repoDir(cacheDir), 'refs', V1)))
  const offline = await downloadModel(`${REPO}@v1.0`, { hub: { cacheDir, offline: true } })
  assert.equal(offline.commit, V1)
  await assert.rejects(downloadModel(REPO, { revision: 'v2', hub: { cacheDir, offline: true } }), {
    code: 'ERR_OFFLINE',
  })
})

test('loadLLM downloads a repo id that is not cached, reporting the download stage first', { skip }, async () => {
  const cacheDir = freshCache()
  const stages = []
  const llm = await loadLLM(`${REPO}@v1.0`, {
    hub: { endpoint: hub.endpoint, cacheDir },
    onProgress: (p) => stages.push(p.stage),
  })
  await llm.dispose()
  assert.equal(stages[0], 'download')
  assert.deepEqual([...new Set(stages)], ['download', 'weights', 'model', 'tokenizer'])
  assert.equal(readFileSync(join(repoDir(cacheDir), 'refs', 'v1.0'), 'utf8'), V1)
  const aborted = new AbortController()
  aborted.abort()
  await assert.rejects(loadLLM(REPO, { hub: { endpoint: hub.endpoint, cacheDir: freshCache() }, signal: aborted.signal }), {
    name: 'AbortError',
  })
})
