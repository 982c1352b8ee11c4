'use strict'
const { downloadModel } = require('../../../index.js')
const { bytes, json } = require('../format.js')

function register(program, cli) {
  program
    .command('download')
    .description('download a model from the Hugging Face Hub into the local cache (resumable)')
    .argument('<repo>', 'repo id, owner/name[@revision]')
    .option('--revision <rev>', 'branch, tag or commit (default: main)')
    .option('--offline', 'only check the local cache (like HF_HUB_OFFLINE=1)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nUses HF_TOKEN, HF_ENDPOINT, HF_HOME / HF_HUB_CACHE like huggingface_hub.')
    .action(
      cli.action(async (repo, opts) => {
        const progress = cli.progress(opts)
        const bar = progress.download(repo)
        let got
        try {
          got = await downloadModel(repo, {
            revision: opts.revision,
            hub: opts.offline ? { offline: true } : undefined,
            onProgress: bar.update,
            signal: cli.interruptSignal(),
          })
        } finally {
          bar.stop()
        }
        if (opts.json) return process.stdout.write(json(got))
        const what = got.downloadedBytes ? `downloaded ${bytes(got.downloadedBytes)}` : 'already in the cache'
        progress.note(`${got.repoId}@${got.revision} (${got.kind}, commit ${got.commit.slice(0, 10)}): ${what}`)
        process.stdout.write(`${got.path}\n`)
      }),
    )
}

module.exports = { register }
