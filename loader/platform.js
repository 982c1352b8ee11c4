'use strict'
// Which prebuilt platform packages (npm/*) can serve this machine, in the order
// the loader considers them, and the file name of a source build.
const { readFileSync } = require('node:fs')

/** Prebuilt packages per platform key; `backend` is what MLX_NAPI_BACKEND names. */
const PACKAGES = {
  'linux-x64-gnu': [
    { backend: 'cuda', name: 'mlx-napi-linux-x64-gnu-cuda13', file: 'mlx-napi.linux-x64-gnu.node' },
    { backend: 'cpu', name: 'mlx-napi-linux-x64-gnu', file: 'mlx-napi.linux-x64-gnu.node' },
  ],
  'darwin-arm64': [{ backend: 'metal', name: 'mlx-napi-darwin-arm64', file: 'mlx-napi.darwin-arm64.node' }],
}

function isMusl() {
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    // No ldd script: ask the process report, which names glibc when it is there.
    const header = process.report?.getReport?.().header
    return header ? !header.glibcVersionRuntime : false
  }
}

/** napi-rs' platform key for this process, e.g. 'linux-x64-gnu' or 'darwin-arm64'. */
function platformKey() {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  return `${platform}-${arch}`
}

/** The addon file a source build (`npm run build`, scripts/install.js) writes beside index.js. */
function sourceBuildFile(key = platformKey()) {
  return `mlx-napi.${key}.node`
}

module.exports = { PACKAGES, platformKey, sourceBuildFile }
