'use strict'
const { backendInfo, hubCacheDir, memoryStats } = require('../../../index.js')
const { version } = require('../../../package.json')
const { json } = require('../format.js')

function register(program, cli) {
  program
    .command('info')
    .description('show the MLX backend and device, and the Hugging Face cache folder')
    .option('--json', 'print JSON')
    .action(
      cli.action(async (opts) => {
        const info = { version, ...backendInfo(), hubCache: hubCacheDir(), memory: memoryStats() }
        if (opts.json) return process.stdout.write(json(info))
        const { memory, ...rest } = info
        for (const [k, v] of Object.entries(rest)) process.stdout.write(`${k}: ${v}\n`)
      }),
    )
}

module.exports = { register }
