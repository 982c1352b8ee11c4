'use strict'
// Turning a --model argument into a loaded model: a folder is used as is; a
// Hugging Face repo id is made complete in the cache first (with a download
// bar), then loaded from there.
const { existsSync, readFileSync, statSync } = require('node:fs')
const { join } = require('node:path')
const { downloadModel } = require('../../index.js')
const { CliError } = require('./errors.js')

/** Adds the options every command that takes a model shares. */
function modelOptions(command) {
  return command
    .requiredOption('-m, --model <model>', 'model folder or Hugging Face repo id (owner/name[@revision])')
    .option('--revision <rev>', 'branch, tag or commit of a repo id (default: main)')
    .option('--offline', 'use the local cache only (like HF_HUB_OFFLINE=1)')
}

/** `{ path, kind }` of the model named by `opts.model`. */
async function resolveModel(opts, progress, signal) {
  const spec = opts.model
  if (existsSync(spec) && statSync(spec).isDirectory()) {
    if (opts.revision) throw new CliError('ERR_USAGE', '--revision applies to repo ids, not folders')
    return { path: spec, kind: kindOf(spec) }
  }
  if (!/^[\w.-]+\/[\w.-]+(@.+)?$/.test(spec)) {
    throw new CliError('ERR_MODEL_NOT_FOUND', `model folder ${JSON.stringify(spec)} does not exist (nor is it a Hub repo id owner/name)`)
  }
  const bar = progress.download('download')
  try {
    const got = await downloadModel(spec, {
      revision: opts.revision,
      hub: opts.offline ? { offline: true } : undefined,
      onProgress: bar.update,
      signal,
    })
    return { path: got.path, kind: got.kind }
  } finally {
    bar.stop()
  }
}

/** "llm", "whisper" or "unknown", from config.json (as the addon decides it). */
function kindOf(dir) {
  try {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))
    if (config.model_type === 'whisper' || (!config.model_type && 'n_audio_ctx' in config)) return 'whisper'
    if (['llama', 'mistral', 'qwen2', 'qwen3'].includes(config.model_type)) return 'llm'
  } catch {}
  return 'unknown'
}

/** Throws a usage error unless the model is of `kind`. */
function expectKind(model, kind, command) {
  if (model.kind !== kind && model.kind !== 'unknown') {
    throw new CliError('ERR_USAGE', `${command} needs a ${kind} model; ${model.path} is a ${model.kind} model`)
  }
}

module.exports = { modelOptions, resolveModel, expectKind, kindOf }
