// A local stand-in for the Hugging Face Hub (loopback only), answering the routes
// mlx-napi's downloader uses, over folders of ../shared:
//   GET  /api/models/{owner}/{name}/revision/{rev}  → { id, sha, siblings }
//   HEAD /{owner}/{name}/resolve/{rev}/{file}        → ETag, X-Repo-Commit, Content-Length
//   GET  /{owner}/{name}/resolve/{rev}/{file}        → bytes, with Range (206)
// ETags are what the Hub sends: sha256 for weight files (LFS), git blob sha1 otherwise.
// Faults for tests: `dropAfter` (close the socket after N bytes of a file, once),
// `stallAfter` (send N bytes, then nothing: the test kills the client), gated repos.
import { createServer } from 'node:http'
import { createHash } from 'node:crypto'
import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'

const hashes = new Map()
function etagOf(path) {
  if (!hashes.has(path)) {
    const data = readFileSync(path)
    const lfs = /\.(safetensors|npz)$/.test(path)
    const h = lfs ? createHash('sha256') : createHash('sha1').update(`blob ${data.length}\0`)
    hashes.set(path, h.update(data).digest('hex'))
  }
  return hashes.get(path)
}

/**
 * @param {Record<string, { dir: string, refs: Record<string, string>, gatedToken?: string }>} repos
 *   repo id → folder served, refs (branch/tag → 40-hex commit); every commit serves `dir`.
 */
export async function startHub(repos) {
  // A proxy from the environment (CI) must not see loopback requests.
  for (const name of ['NO_PROXY', 'no_proxy']) {
    process.env[name] = [process.env[name], '127.0.0.1'].filter(Boolean).join(',')
  }
  const hub = new EventEmitter()
  hub.requests = []
  hub.dropAfter = null // { file, bytes }
  hub.stallAfter = null // { file, bytes }
  const stalled = new Set()
  const server = createServer((req, res) => {
    const url = decodeURIComponent(req.url)
    hub.requests.push({ method: req.method, url, range: req.headers.range ?? null })
    const fail = (status, code) => {
      res.writeHead(status, code ? { 'X-Error-Code': code } : {})
      res.end()
    }
    let m = url.match(/^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/)
    if (m) {
      const repo = repos[m[1]]
      if (!repo) return fail(404, 'RepoNotFound')
      const sha = commitOf(repo, m[2])
      if (!sha) return fail(404, 'RevisionNotFound')
      const siblings = readdirSync(repo.dir).map((rfilename) => ({ rfilename }))
      res.writeHead(200, { 'Content-Type': 'application/json' })
      return res.end(JSON.stringify({ id: m[1], sha, siblings }))
    }
    m = url.match(/^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/)
    if (!m) return fail(404)
    const repo = repos[m[1]]
    if (!repo) return fail(404, 'RepoNotFound')
    if (repo.gatedToken && req.headers.authorization !== `Bearer ${repo.gatedToken}`) {
      return fail(403, 'GatedRepo')
    }
    const sha = commitOf(repo, m[2])
    if (!sha) return fail(404, 'RevisionNotFound')
    const path = join(repo.dir, m[3])
    let size
    try {
      size = statSync(path).size
    } catch {
      return fail(404, 'EntryNotFound')
    }
    const headers = {
      ETag: `"${etagOf(path)}"`,
      'X-Repo-Commit': sha,
      'Accept-Ranges': 'bytes',
    }
    let start = 0
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    if (range) start = Number(range[1])
    if (start > size) return fail(416)
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...headers, 'Content-Length': size })
      return res.end()
    }
    const status = range ? 206 : 200
    if (range) headers['Content-Range'] = `bytes ${start}-${size - 1}/${size}`
    res.writeHead(status, { ...headers, 'Content-Length': size - start })
    const fault = [hub.dropAfter, hub.stallAfter].find((f) => f && f.file === m[3] && f.bytes > start)
    if (!fault) return createReadStream(path, { start }).pipe(res)
    const end = fault.bytes - 1
    const stream = createReadStream(path, { start, end })
    stream.on('data', (chunk) => res.write(chunk))
    stream.on('end', () => {
      if (fault === hub.dropAfter) {
        hub.dropAfter = null
        res.socket.end() // flushes what was written, then closes: a short body
      } else {
        stalled.add(res)
        hub.emit('stalled', fault.bytes)
      }
    })
  })
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok))
  hub.endpoint = `http://127.0.0.1:${server.address().port}`
  /** Cuts the stalled transfers off (as a dying network would). */
  hub.dropStalled = () => {
    for (const res of stalled) res.socket?.destroy()
    stalled.clear()
  }
  hub.close = () =>
    new Promise((ok) => {
      for (const res of stalled) res.socket?.destroy()
      server.closeAllConnections?.()
      server.close(ok)
    })
  return hub
}

function commitOf(repo, rev) {
  if (repo.refs[rev]) return repo.refs[rev]
  return Object.values(repo.refs).includes(rev) ? rev : null
}

/** sha256 of a file (to compare a downloaded blob with its source). */
export function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}
