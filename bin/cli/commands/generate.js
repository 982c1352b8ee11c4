'use strict'
const { readFileSync } = require('node:fs')
const { modelOptions } = require('../model.js')
const { samplingOptions, samplingOf, openLlm, hasChatTemplate, streamTo, stats } = require('../llm.js')
const { usage } = require('../errors.js')
const { json } = require('../format.js')

function register(program, cli) {
  samplingOptions(modelOptions(program.command('generate')), cli)
    .description('generate text from a prompt, streamed to stdout')
    .option('-p, --prompt <text>', 'the prompt (default: read from stdin)')
    .option('-s, --system <text>', 'system message (chat models)')
    .option('--raw', 'send the prompt as raw text, without the chat template')
    .option('--json', 'print the whole result as JSON instead of streaming')
    .action(
      cli.action(async (opts) => {
        let prompt = opts.prompt
        if (prompt === undefined) {
          if (process.stdin.isTTY) throw usage('give --prompt or pipe the prompt on stdin')
          prompt = readFileSync(0, 'utf8')
        }
        const progress = cli.progress(opts)
        const signal = cli.interruptSignal()
        const llm = await openLlm(opts, progress, signal, 'generate')
        try {
          const messages = []
          if (opts.system) messages.push({ role: 'system', content: opts.system })
          messages.push({ role: 'user', content: prompt })
          const input = !opts.raw && hasChatTemplate(llm) ? messages : prompt
          // Ctrl-C ends the generation; what was generated is kept.
          const options = { ...samplingOf(opts), signal }
          if (opts.json) return process.stdout.write(json(await llm.generate(input, options)))
          const result = await streamTo(llm.stream(input, options))
          process.stdout.write('\n')
          progress.note(stats(result))
        } finally {
          await llm.dispose()
        }
      }),
    )
}

module.exports = { register }
