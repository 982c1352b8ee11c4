'use strict'
const { hubCacheDir, listModels } = require('../../../index.js')
const { bytes, json, table } = require('../format.js')

function register(program, cli) {
  program
    .command('models')
    .description('list the models in the local Hugging Face cache')
    .option('--cache-dir <dir>', 'cache folder (default: HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--json', 'print JSON')
    .action(
      cli.action(async (opts) => {
        const models = await listModels({ cacheDir: opts.cacheDir })
        if (opts.json) return process.stdout.write(json(models))
        cli.progress(opts).note(`cache: ${opts.cacheDir ?? hubCacheDir()}`)
        if (!models.length) return cli.progress(opts).note('no models')
        const rows = [['MODEL', 'KIND', 'TYPE', 'SIZE', 'REVISIONS', 'NOTE']]
        for (const m of models) {
          const refs = m.refs.map((r) => r.name).join(',') || m.commit.slice(0, 10)
          const note = m.incompleteBytes ? `${bytes(m.incompleteBytes)} partial download` : ''
          rows.push([m.repoId, m.kind, m.modelType ?? '-', bytes(m.sizeBytes), refs, note])
        }
        process.stdout.write(table(rows))
      }),
    )
}

module.exports = { register }
