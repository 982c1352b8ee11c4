// What can be checked of Electron support without an Electron binary (none can be
// installed here: see examples/electron/README.md). The example's own code runs in a
// worker_threads Worker from an app.asar.unpacked layout in package.test.mjs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { importedSymbols } = require('../scripts/package/elf.js')
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const addon = join(root, 'mlx-napi.linux-x64-gnu.node')

test('the addon never creates external ArrayBuffers/Buffers (forbidden in Electron\'s V8 memory cage)', {
  skip: !existsSync(addon) && `skipping: ${addon} not found (npm install builds it)`,
}, () => {
  const napi = importedSymbols(addon).filter((s) => s.startsWith('napi_'))
  assert.ok(napi.length > 20, `only ${napi.length} N-API imports: not the addon?`)
  assert.ok(napi.includes('napi_get_typedarray_info'), 'typed-array input goes through napi_get_typedarray_info')
  for (const external of ['napi_create_external_arraybuffer', 'napi_create_external_buffer']) {
    assert.ok(!napi.includes(external), `the addon imports ${external}`)
  }
})

test('the Electron example unpacks every mlx-napi package from the asar archive', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'examples/electron/package.json'), 'utf8'))
  const unpack = pkg.build.asarUnpack
  const { PACKAGES } = require('../loader/platform.js')
  for (const name of ['mlx-napi', ...Object.values(PACKAGES).flat().map((p) => p.name)]) {
    const hit = unpack.some((glob) => new RegExp(`^${glob.replace(/\*\*/g, '.*').replace(/\*/g, '[^/]*')}$`).test(`node_modules/${name}/x.node`))
    assert.ok(hit, `${name} is not in build.asarUnpack`)
  }
})
