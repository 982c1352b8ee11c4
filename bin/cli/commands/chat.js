'use strict'
// An interactive chat: one chat session, so each turn only prefills its new
// tokens (the KV cache stays on the device between turns).
const readline = require('node:readline')
const { modelOptions } = require('../model.js')
const { samplingOptions, samplingOf, openLlm, streamTo, stats } = require('../llm.js')

const HELP = '/reset clears the conversation, /exit (or Ctrl-D) quits; Ctrl-C stops a reply'

function register(program, cli) {
  samplingOptions(modelOptions(program.command('chat')), cli)
    .description('chat with an LLM in the terminal (keeps the session KV cache)')
    .option('-s, --system <text>', 'system message')
    .option('--stats', 'print speed after each reply')
    .addHelpText('after', `\nIn the chat: ${HELP}.`)
    .action(
      cli.action(async (opts) => {
        const progress = cli.progress(opts)
        const loadSignal = cli.interruptSignal()
        const llm = await openLlm(opts, progress, loadSignal, 'chat')
        const session = llm.chatSession(opts.system ? { system: opts.system } : {})
        const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY })
        // Ctrl-C stops the reply being written; at the prompt it quits.
        let reply = null
        const interrupt = () => {
          if (reply) reply.abort()
          else rl.close()
        }
        process.removeAllListeners('SIGINT')
        process.on('SIGINT', interrupt)
        rl.on('SIGINT', interrupt)
        progress.note(HELP)
        const prompt = () => {
          if (process.stdin.isTTY) rl.prompt()
        }
        rl.setPrompt('> ')
        prompt()
        try {
          for await (const line of rl) {
            const text = line.trim()
            if (text === '/exit' || text === '/quit') break
            if (text === '/reset') {
              await session.clear()
              progress.note('(conversation cleared)')
            } else if (text) {
              reply = new AbortController()
              const result = await streamTo(session.stream(text, { ...samplingOf(opts), signal: reply.signal }))
              reply = null
              process.stdout.write(result.finishReason === 'abort' ? ' [stopped]\n' : '\n')
              if (opts.stats) progress.note(stats(result))
            }
            prompt()
          }
        } finally {
          rl.close()
          await llm.dispose()
        }
      }),
    )
}

module.exports = { register }
