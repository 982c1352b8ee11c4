'use strict'
// The `mlx-napi` command line, on commander. Each command lives in
// commands/<name>.js and exports `register(program, cli)`; adding one (e.g.
// `serve`, the OpenAI-compatible server) is one file and one line in COMMANDS.
const { Command, CommanderError, InvalidArgumentError } = require('commander')
const { CliError, report } = require('./errors.js')
const { Progress } = require('./progress.js')
const { version } = require('../../package.json')

const COMMANDS = ['transcribe', 'generate', 'chat', 'serve', 'download', 'models', 'info', 'bench', 'self-test']

/** Commander argument parser for a number within [min, max] (whole if `int`). */
function number({ int = false, min = -Infinity, max = Infinity } = {}) {
  return (value) => {
    const n = Number(value)
    if (value.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min || n > max) {
      const kind = int ? 'a whole number' : 'a number'
      const range = Number.isFinite(min) || Number.isFinite(max) ? ` in ${min}..${max}` : ''
      throw new InvalidArgumentError(`expected ${kind}${range}, got ${JSON.stringify(value)}`)
    }
    return n
  }
}

/**
 * Ctrl-C: the first one aborts the running work through this signal (the
 * command then ends with ABORT_ERR), a second one ends the process.
 */
function interruptSignal() {
  const controller = new AbortController()
  process.on('SIGINT', () => {
    if (controller.signal.aborted) process.exit(130)
    controller.abort()
  })
  return controller.signal
}

/** What commands get besides commander: progress, number parsing, Ctrl-C. */
const cli = {
  number,
  interruptSignal,
  progress: (opts) => new Progress({ quiet: opts.quiet }),
  /** Wraps an action so that it gets its positional arguments and all options. */
  action: (fn) =>
    async function (...args) {
      const command = args.at(-1)
      await fn(...args.slice(0, -2), command.optsWithGlobals(), command)
    },
}

function buildProgram() {
  const program = new Command('mlx-napi')
    .description('Whisper speech-to-text and LLM text generation on MLX, from the shell')
    .version(version, '-V, --version')
    .option('-q, --quiet', 'no progress or status output on stderr')
    .exitOverride()
    .configureOutput({ outputError: () => {} })
  for (const name of COMMANDS) require(`./commands/${name}.js`).register(program, cli)
  // Every subcommand reports usage errors through the same path.
  for (const command of program.commands) command.exitOverride().configureOutput({ outputError: () => {} })
  return program
}

async function main(argv) {
  const program = buildProgram()
  try {
    if (argv.length <= 2) {
      program.outputHelp()
      return
    }
    await program.parseAsync(argv)
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return // --help, --version
      const message = err.message.replace(/^error: /, '')
      report(new CliError('ERR_USAGE', `${message} (see mlx-napi --help)`))
      return
    }
    report(err)
  }
}

module.exports = { main, buildProgram, number }
