'use strict'
const { backendInfo, hubCacheDir, memoryStats } = require('../../../index.js')
const { version } = require('../../../package.json')
const { json } = require('../format.js')

/** How the addon was loaded (backendInfo().addon), as "key: value" lines. */
function addonLines(addon) {
  const lines = [
    ['addon', addon.source === 'prebuilt' ? `prebuilt ${addon.package} (${addon.variant})` : addon.source],
    ['addonPath', addon.path],
    ['addonReason', addon.reason],
    ['libmlx', addon.libmlx ?? 'unknown'],
  ]
  if (addon.nvidia) {
    lines.push(['nvidiaDriver', addon.nvidia.driver ?? 'unknown'], ['cudaHome', addon.nvidia.cudaHome])
    for (const [soname, file] of Object.entries(addon.nvidia.libraries)) lines.push([soname, file])
  }
  return lines
}

function register(program, cli) {
  program
    .command('info')
    .description('show the MLX backend and device, and the Hugging Face cache folder')
    .option('--json', 'print JSON')
    .action(
      cli.action(async (opts) => {
        const info = { version, ...backendInfo(), hubCache: hubCacheDir(), memory: memoryStats() }
        if (opts.json) return process.stdout.write(json(info))
        const { memory, addon, ...rest } = info
        for (const [k, v] of Object.entries(rest)) process.stdout.write(`${k}: ${v}\n`)
        for (const [k, v] of addonLines(addon)) process.stdout.write(`${k}: ${v}\n`)
      }),
    )
}

module.exports = { register }
