'use strict'
const { selfTest } = require('../../../index.js')
const { json } = require('../format.js')

function register(program, cli) {
  program
    .command('self-test')
    .description('multiply two matrices on the device and check the result')
    .argument('[size]', 'matrix size', cli.number({ int: true, min: 1, max: 16384 }), 1024)
    .argument('[dtype]', 'float32, float16 or bfloat16', 'float32')
    .action(
      cli.action(async (size, dtype) => {
        process.stdout.write(json(await selfTest({ size, dtype })))
      }),
    )
}

module.exports = { register }
