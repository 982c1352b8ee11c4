'use strict'
// What the CUDA package needs from the machine, found at load time.
//
// The package bundles MLX's CUDA build (libmlx.so, its JIT headers, BLAS/LAPACK).
// NVIDIA's own runtime libraries (cuBLASLt, cuDNN, NVRTC, cuFFT, NCCL: about 2.3 GB
// installed) are too large to bundle; they come from NVIDIA's pip wheels (the ones
// `pip install mlx-cuda-13` pulls in) or a CUDA 13 toolkit. The package's
// runtime.json names them. Here we find each library by file, load it by full path
// (so libmlx.so's NEEDED entries are already satisfied by soname when the addon is
// loaded; no LD_LIBRARY_PATH is needed) and point MLX's kernel compiler at the CUDA
// headers through CUDA_HOME when the user has not set it.
const { spawnSync } = require('node:child_process')
const { existsSync, readdirSync, readFileSync } = require('node:fs')
const os = require('node:os')
const path = require('node:path')

// glibc's RTLD_NODELETE: keep a library mapped after Node closes a handle that had
// no Node module in it (process.dlopen then throws "did not self-register").
const RTLD_NODELETE = 0x1000

/**
 * Loads a shared library into the process and keeps it there.
 * @returns {null | string} null when loaded, else the loader's error message
 */
function loadLibrary(file) {
  try {
    process.dlopen({ exports: {} }, file, os.constants.dlopen.RTLD_LAZY | RTLD_NODELETE)
    return null // a library that registers a Node module: loaded all the same
  } catch (e) {
    return /did not self-register/.test(e.message) ? null : e.message
  }
}

/** The kernel driver's version from /proc, e.g. '580.159.04', or null. */
function driverVersion() {
  try {
    const text = readFileSync('/proc/driver/nvidia/version', 'utf8')
    return /Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)/.exec(text)?.[1] ?? null
  } catch {
    return null
  }
}

function versionAtLeast(have, want) {
  const a = have.split('.').map(Number)
  const b = want.split('.').map(Number)
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0)
  }
  return true
}

// Driver folders that container runtimes mount outside the loader's search path.
const DRIVER_DIRS = ['/usr/local/nvidia/lib64', '/usr/lib/wsl/lib']

/**
 * Whether a usable NVIDIA driver is present: libcuda loadable (and, where /proc
 * says which, recent enough).
 * @returns {{ ok: boolean, version: string | null, library?: string, reason?: string }}
 */
function findDriver(spec) {
  const version = driverVersion()
  if (version && !versionAtLeast(version, spec.minVersion)) {
    return {
      ok: false,
      version,
      reason: `NVIDIA driver ${version} is older than ${spec.minVersion}, the oldest that runs CUDA 13`,
    }
  }
  const error = loadLibrary(spec.library)
  if (!error) return { ok: true, version, library: spec.library }
  for (const dir of DRIVER_DIRS) {
    const file = path.join(dir, spec.library)
    if (existsSync(file) && !loadLibrary(file)) return { ok: true, version, library: file }
  }
  return { ok: false, version, reason: `no NVIDIA driver (${error})` }
}

const isDir = (p) => {
  try {
    return readdirSync(p) && true
  } catch {
    return false
  }
}

/** `site-packages/nvidia` folders of the usual Python installs, without running Python. */
function knownNvidiaRoots() {
  const prefixes = [process.env.VIRTUAL_ENV, process.env.CONDA_PREFIX, path.join(os.homedir(), '.local'), '/usr/local', '/usr']
  const roots = []
  for (const prefix of prefixes.filter(Boolean)) {
    let pythons = []
    try {
      pythons = readdirSync(path.join(prefix, 'lib')).filter((d) => /^python3(\.\d+)?$/.test(d))
    } catch {}
    for (const py of pythons) {
      for (const site of ['site-packages', 'dist-packages']) roots.push(path.join(prefix, 'lib', py, site, 'nvidia'))
    }
  }
  return roots.filter(isDir)
}

/** `nvidia` package folders as the user's Python sees them (MLX_NAPI_PYTHON, else python3). */
function pythonNvidiaRoots() {
  const python = process.env.MLX_NAPI_PYTHON || 'python3'
  const r = spawnSync(python, ['-c', 'import nvidia, os; print(os.pathsep.join(nvidia.__path__))'], {
    encoding: 'utf8',
    timeout: 15000,
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  return r.status === 0 ? r.stdout.trim().split(path.delimiter).filter(isDir) : []
}

/** Library folders under `nvidia` roots: nvidia/cu13/lib, nvidia/cudnn/lib, … */
function libDirsOf(root) {
  try {
    return readdirSync(root)
      .map((d) => path.join(root, d, 'lib'))
      .filter(isDir)
  } catch {
    return []
  }
}

/** Folders named by MLX_NAPI_CUDA_LIBS (library folders or `nvidia` roots). */
function userDirs() {
  const dirs = []
  for (const dir of (process.env.MLX_NAPI_CUDA_LIBS ?? '').split(path.delimiter).filter(Boolean)) {
    dirs.push(dir, path.join(dir, 'lib'), path.join(dir, 'lib64'), ...libDirsOf(dir))
  }
  return dirs
}

function toolkitDirs() {
  const homes = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'].filter(Boolean)
  return homes.flatMap((h) => [path.join(h, 'lib64'), path.join(h, 'targets/x86_64-linux/lib')])
}

/** Looks for each library file in `dirs`; returns soname → path for those found. */
function locate(sonames, dirs) {
  const found = {}
  for (const soname of sonames) {
    const dir = dirs.find((d) => existsSync(path.join(d, soname)))
    if (dir) found[soname] = path.join(dir, soname)
  }
  return found
}

/** A folder whose include/ holds the CUDA runtime headers MLX's kernel compiler needs. */
function findCudaHeaders(spec, roots) {
  for (const home of [process.env.CUDA_HOME, process.env.CUDA_PATH].filter(Boolean)) {
    if (existsSync(path.join(home, 'include', spec.file))) return { home, fromEnv: true }
  }
  // MLX_NAPI_CUDA_LIBS entries: an `nvidia` root, a toolkit, or a toolkit's lib folder.
  const userHomes = (process.env.MLX_NAPI_CUDA_LIBS ?? '')
    .split(path.delimiter)
    .filter(Boolean)
    .flatMap((d) => [path.join(d, spec.nvidiaDir), d, path.dirname(d)])
  for (const home of [...userHomes, ...roots.map((r) => path.join(r, spec.nvidiaDir))]) {
    if (existsSync(path.join(home, 'include', spec.file))) return { home, fromEnv: false }
  }
  if (existsSync(path.join('/usr/local/cuda/include', spec.file))) return { home: '/usr/local/cuda', fromEnv: true }
  return null
}

function pipCommand(packages) {
  return `python3 -m pip install ${[...new Set(packages)].map((p) => `"${p}"`).join(' ')}`
}

/**
 * Finds and loads what the CUDA package at `pkgDir` needs. On success the NVIDIA
 * libraries are loaded and CUDA_HOME points at CUDA headers; the addon can be
 * required. Nothing is loaded when the driver is missing.
 * @returns {{ ok: true, driver: string | null, libraries: Record<string, string>, cudaHome: string }
 *   | { ok: false, reason: string, hint?: string, driverFound?: boolean }}
 */
function prepareCuda(pkgDir) {
  const spec = JSON.parse(readFileSync(path.join(pkgDir, 'runtime.json'), 'utf8'))
  if (process.platform !== 'linux') return { ok: false, reason: 'the CUDA package runs on Linux only' }
  const driver = findDriver(spec.driver)
  if (!driver.ok) {
    return {
      ok: false,
      reason: driver.reason,
      hint: `The CUDA package needs an NVIDIA driver ${spec.driver.minVersion} or newer (R580+).`,
    }
  }
  const sonames = spec.nvidia.map((l) => l.soname)
  let roots = knownNvidiaRoots()
  const dirs = () => [...userDirs(), ...roots.flatMap(libDirsOf), ...toolkitDirs()]
  let found = locate(sonames, dirs())
  let headers = findCudaHeaders(spec.headers, roots)
  if (Object.keys(found).length < sonames.length || !headers) {
    roots = [...new Set([...roots, ...pythonNvidiaRoots()])]
    found = locate(sonames, dirs())
    headers = headers ?? findCudaHeaders(spec.headers, roots)
  }
  const libraries = {}
  const missing = []
  for (const lib of spec.nvidia) {
    // Not in any folder we know: the system loader may still have it (ld.so.conf).
    const error = loadLibrary(found[lib.soname] ?? lib.soname)
    if (error) missing.push({ ...lib, error })
    else libraries[lib.soname] = found[lib.soname] ?? '(system loader path)'
  }
  if (!headers) missing.push({ soname: `CUDA headers (${spec.headers.file})`, pip: spec.headers.pip })
  if (missing.length > 0) {
    return {
      ok: false,
      driverFound: true,
      reason:
        'NVIDIA CUDA 13 libraries not found: ' +
        // A file that exists but does not load (wrong version, missing dependency): say why.
        missing.map((m) => (found[m.soname] ? `${m.soname} (${m.error})` : m.soname)).join(', '),
      hint:
        `Install NVIDIA's CUDA 13 runtime wheels (no toolkit needed): ${pipCommand(missing.map((m) => m.pip))}` +
        ` — or set MLX_NAPI_CUDA_LIBS to the folders that hold them (MLX_NAPI_PYTHON names the Python whose` +
        ` site-packages to search).`,
    }
  }
  if (!headers.fromEnv) process.env.CUDA_HOME = headers.home
  return { ok: true, driver: driver.version, libraries, cudaHome: headers.home }
}

module.exports = { prepareCuda, loadLibrary, driverVersion }
