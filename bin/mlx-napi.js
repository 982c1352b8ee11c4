#!/usr/bin/env node
// Command-line entry point. For now: report what MLX runs on and prove it computes.
'use strict'
const { backendInfo, selfTest } = require('..')

async function main(argv) {
  const [command = 'info'] = argv
  if (command === 'info') {
    console.log(JSON.stringify(backendInfo(), null, 2))
  } else if (command === 'self-test') {
    const size = Number(argv[1] ?? 1024)
    const dtype = argv[2] ?? 'float32'
    console.log(JSON.stringify(await selfTest({ size, dtype }), null, 2))
  } else {
    console.error('usage: mlx-napi [info | self-test [size] [dtype]]')
    process.exitCode = 2
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`${err.code ?? 'ERROR'}: ${err.message}`)
  process.exitCode = 1
})
