'use strict'
// Failures end the process with one line `CODE: message` on stderr and a
// non-zero exit status: 2 for bad usage, 130 after Ctrl-C, 1 otherwise.

/** An error the CLI itself raises, with a stable code like the addon's. */
class CliError extends Error {
  constructor(code, message) {
    super(message)
    this.code = code
  }
}

const usage = (message) => new CliError('ERR_USAGE', message)

function exitCodeOf(err) {
  if (err.code === 'ERR_USAGE') return 2
  if (err.code === 'ABORT_ERR') return 130
  return 1
}

/** Prints `err` as one line and sets the exit status. */
function report(err) {
  const code = err.code ?? 'ERROR'
  const message = String(err.message ?? err).replace(/\s*\n\s*/g, ' ')
  process.stderr.write(`${code}: ${message}\n`)
  process.exitCode = exitCodeOf(err)
}

module.exports = { CliError, usage, report }
