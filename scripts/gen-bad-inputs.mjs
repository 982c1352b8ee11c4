#!/usr/bin/env node
// Generates the bad-input corpus: __test__/bad-inputs/cases.json plus the small
// binary files it names (__test__/bad-inputs/files/). Run it again after
// editing; the output is committed. __test__/bad-inputs.test.mjs runs every
// case against the real models from ../shared.
//
// A case names what it breaks and the stable error `code` it must produce.
// Model cases start from a real model folder (linked from ../shared) and
// override files: { text } | { json } | { bytes: "files/…" } | { special:
// "fifo" | "devzero" | "dir" | "big" } | { derive: "<file of the model>",
// truncate?: n, patch?: [[offset, hex]] } (derived at test time from shared/).
// JS values that JSON cannot hold are encoded: { $nan }, { $inf: ±1 },
// { $f32: { fill, length } }, { $u32: [...] }, { $fn: true }, { $signal: "aborted" },
// { $repeat: [text, n] }.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, '__test__', 'bad-inputs')
rmSync(out, { recursive: true, force: true })
mkdirSync(join(out, 'files'), { recursive: true })

const cases = []
const add = (c) => cases.push(c)
const file = (name, bytes) => {
  writeFileSync(join(out, 'files', name), bytes)
  return `files/${name}`
}

// ------------------------------------------------------------- binary helpers
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b }
const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16LE(n & 0xffff); return b }
function wav({ format = 1, channels = 1, rate = 16000, bits = 16, data = Buffer.alloc(3200), dataSize, fmtSize = 16, riffSize } = {}) {
  const fmt = Buffer.concat([u16(format), u16(channels), u32(rate), u32(rate * channels * (bits / 8)), u16(channels * (bits / 8)), u16(bits)])
  const body = Buffer.concat([
    Buffer.from('WAVE'), Buffer.from('fmt '), u32(fmtSize), fmt,
    Buffer.from('data'), u32(dataSize ?? data.length), data,
  ])
  return Buffer.concat([Buffer.from('RIFF'), u32(riffSize ?? body.length), body])
}
function safetensors(header, dataLen = 0, { lenOverride } = {}) {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header))
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(lenOverride ?? json.length))
  return Buffer.concat([len, json, Buffer.alloc(dataLen)])
}
const tone = Buffer.alloc(3200)
for (let i = 0; i < 1600; i++) tone.writeInt16LE(Math.round(8000 * Math.sin(i / 5)), 2 * i)

// --------------------------------------------------------- model folder cases
const llmConfig = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, bos_token_id: 1, eos_token_id: 2,
  head_dim: 64, hidden_act: 'silu', hidden_size: 576, intermediate_size: 1536,
  max_position_embeddings: 8192, mlp_bias: false, model_type: 'llama', num_attention_heads: 9,
  num_hidden_layers: 30, num_key_value_heads: 3,
  quantization: { group_size: 32, bits: 4, mode: 'affine' },
  quantization_config: { group_size: 32, bits: 4, mode: 'affine' },
  rms_norm_eps: 1e-5, rope_theta: 100000.0, tie_word_embeddings: true, torch_dtype: 'float16', vocab_size: 49152,
}
const llm = (id, files, code, extra = {}) => add({ id: `llm-model/${id}`, group: 'llm-model', base: 'llm', files, code, ...extra })
const cfg = (patch) => ({ 'config.json': { json: { ...llmConfig, ...patch } } })
const special = (name, kind, code = 'ERR_IO') => [`${name}-${kind}`, { [name]: { special: kind } }, code]

llm('config-missing', {}, 'ERR_MODEL_NOT_FOUND', { remove: ['config.json'] })
llm('config-empty', { 'config.json': { text: '' } }, 'ERR_MODEL_FORMAT')
llm('config-not-json', { 'config.json': { text: '{"model_type": "llama",' } }, 'ERR_MODEL_FORMAT')
llm('config-array', { 'config.json': { json: [1, 2, 3] } }, 'ERR_MODEL_FORMAT')
llm('config-empty-object', { 'config.json': { json: {} } }, 'ERR_MODEL_FORMAT')
llm('config-binary', { 'config.json': { bytes: file('binary.bin', Buffer.from([0xff, 0xfe, 0, 1, 2, 0x80])) } }, 'ERR_MODEL_FORMAT')
llm('config-deep-nesting', { 'config.json': { text: { $repeat: ['[', 100000] } } }, 'ERR_MODEL_FORMAT')
llm('model-type-missing', cfg({ model_type: undefined }), 'ERR_MODEL_FORMAT')
llm('model-type-unknown', cfg({ model_type: 'gpt2' }), 'ERR_UNSUPPORTED_MODEL')
llm('model-type-number', cfg({ model_type: 123 }), 'ERR_MODEL_FORMAT')
llm('vocab-1e12', { 'config.json': { text: JSON.stringify(llmConfig).replace('"vocab_size":49152', '"vocab_size":1000000000000') } }, 'ERR_MODEL_FORMAT')
llm('vocab-1e12-float', { 'config.json': { text: JSON.stringify(llmConfig).replace('"vocab_size":49152', '"vocab_size":1e12') } }, 'ERR_MODEL_FORMAT')
llm('vocab-2e9', cfg({ vocab_size: 2000000000 }), 'ERR_MODEL_FORMAT')
llm('vocab-negative', cfg({ vocab_size: -1 }), 'ERR_MODEL_FORMAT')
llm('vocab-string', cfg({ vocab_size: 'many' }), 'ERR_MODEL_FORMAT')
llm('vocab-wrong', cfg({ vocab_size: 1000 }), 'ERR_MODEL_FORMAT')
llm('hidden-zero', cfg({ hidden_size: 0 }), 'ERR_MODEL_FORMAT')
llm('hidden-huge', cfg({ hidden_size: 1 << 30 }), 'ERR_MODEL_FORMAT')
llm('layers-huge', cfg({ num_hidden_layers: 1000000 }), 'ERR_MODEL_FORMAT')
llm('layers-too-many', cfg({ num_hidden_layers: 31 }), 'ERR_MODEL_FORMAT')
llm('layers-too-few', cfg({ num_hidden_layers: 29 }), 'ERR_MODEL_FORMAT')
llm('heads-zero', cfg({ num_attention_heads: 0 }), 'ERR_MODEL_FORMAT')
llm('heads-not-multiple', cfg({ num_key_value_heads: 4 }), 'ERR_MODEL_FORMAT')
llm('head-dim-huge', cfg({ head_dim: 1 << 20 }), 'ERR_MODEL_FORMAT')
llm('intermediate-huge', cfg({ intermediate_size: 2 ** 40 }), 'ERR_MODEL_FORMAT')
llm('max-positions-zero', cfg({ max_position_embeddings: 0 }), 'ERR_MODEL_FORMAT')
llm('sliding-window-negative', cfg({ sliding_window: -5 }), 'ERR_MODEL_FORMAT')
llm('quant-bits-7', cfg({ quantization: { group_size: 32, bits: 7 } }), 'ERR_MODEL_FORMAT')
llm('quant-group-0', cfg({ quantization: { group_size: 0, bits: 4 } }), 'ERR_MODEL_FORMAT')
llm('quant-string', cfg({ quantization: 'yes' }), 'ERR_MODEL_FORMAT')
llm('quant-mismatch-bits', cfg({ quantization: { group_size: 32, bits: 8 } }), 'ERR_MODEL_FORMAT')
llm('rope-scaling-bogus', cfg({ rope_scaling: { rope_type: 'bogus', factor: 2 } }), 'ERR_UNSUPPORTED_MODEL')
llm('rope-theta-string', cfg({ rope_theta: 'abc' }), 'ERR_MODEL_FORMAT')
llm('untied-no-lm-head', cfg({ tie_word_embeddings: false }), 'ERR_MODEL_FORMAT')
llm(...special('config.json', 'fifo'))
llm(...special('config.json', 'devzero'))
llm(...special('config.json', 'dir'))
llm(...special('config.json', 'big'))
// safetensors
const st = (id, bytes, code = 'ERR_MODEL_FORMAT') => llm(`safetensors-${id}`, { 'model.safetensors': { bytes: file(`st-${id}.safetensors`, bytes) } }, code)
st('empty', Buffer.alloc(0))
st('four-bytes', Buffer.from([1, 2, 3, 4]))
st('header-len-huge', safetensors('{}', 0, { lenOverride: 2 ** 50 }))
st('header-len-past-end', safetensors('{}', 0, { lenOverride: 4096 }))
st('header-not-json', safetensors('{"a": [1, 2'))
st('header-array', safetensors([1, 2]))
st('header-empty-object', safetensors({}))
st('dtype-unknown', safetensors({ w: { dtype: 'Q4', shape: [2], data_offsets: [0, 2] } }, 2))
st('dtype-missing', safetensors({ w: { shape: [2], data_offsets: [0, 8] } }, 8))
st('shape-negative', safetensors({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4))
st('shape-overflow', safetensors({ w: { dtype: 'F32', shape: [2 ** 40, 2 ** 40, 2 ** 20], data_offsets: [0, 0] } }, 0))
st('shape-huge', safetensors({ w: { dtype: 'F32', shape: [1e9, 1e6], data_offsets: [0, 4] } }, 4))
st('shape-string', safetensors({ w: { dtype: 'F32', shape: 'big', data_offsets: [0, 4] } }, 4))
st('offsets-reversed', safetensors({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 4))
st('offsets-past-end', safetensors({ w: { dtype: 'F32', shape: [1024], data_offsets: [0, 4096] } }, 16))
st('offsets-mismatch', safetensors({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }, 16))
st('offsets-missing', safetensors({ w: { dtype: 'F32', shape: [4] } }, 16))
st('wrong-tensors', safetensors({ 'model.embed_tokens.weight': { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } }, 16))
llm('safetensors-truncated', { 'model.safetensors': { derive: 'model.safetensors', truncate: 40_000_000 } }, 'ERR_MODEL_FORMAT')
llm('safetensors-header-cut', { 'model.safetensors': { derive: 'model.safetensors', truncate: 2000 } }, 'ERR_MODEL_FORMAT')
llm('safetensors-header-flipped', { 'model.safetensors': { derive: 'model.safetensors', patch: [[12, '7b7b7b']] } }, 'ERR_MODEL_FORMAT')
llm(...special('model.safetensors', 'fifo'))
llm(...special('model.safetensors', 'devzero'))
llm(...special('model.safetensors', 'dir'))
llm('index-missing-shard', { 'model.safetensors.index.json': { json: { weight_map: { a: 'model-00001-of-00002.safetensors' } } } }, 'ERR_MODEL_NOT_FOUND')
llm('index-empty-map', { 'model.safetensors.index.json': { json: { weight_map: {} } } }, 'ERR_MODEL_FORMAT')
llm('index-not-json', { 'model.safetensors.index.json': { text: 'nope' } }, 'ERR_MODEL_FORMAT')
llm('index-escapes-folder', { 'model.safetensors.index.json': { json: { weight_map: { a: '../../../../../../etc/passwd' } } } }, 'ERR_MODEL_FORMAT')
llm('no-weights', {}, 'ERR_MODEL_NOT_FOUND', { remove: ['model.safetensors', 'model.safetensors.index.json'] })
// tokenizer files
llm('tokenizer-missing', {}, 'ERR_MODEL_NOT_FOUND', { remove: ['tokenizer.json'] })
llm('tokenizer-empty', { 'tokenizer.json': { text: '' } }, 'ERR_MODEL_FORMAT')
llm('tokenizer-not-json', { 'tokenizer.json': { text: '{"model": ' } }, 'ERR_MODEL_FORMAT')
llm('tokenizer-empty-object', { 'tokenizer.json': { json: {} } }, 'ERR_MODEL_FORMAT')
llm('tokenizer-bad-model', { 'tokenizer.json': { json: { version: '1.0', model: { type: 'Bogus' } } } }, 'ERR_MODEL_FORMAT')
llm(...special('tokenizer.json', 'fifo'))
llm(...special('tokenizer.json', 'devzero'))
llm('tokenizer-config-not-json', { 'tokenizer_config.json': { text: '{' } }, 'ERR_MODEL_FORMAT')
llm(...special('tokenizer_config.json', 'fifo'))
llm('generation-config-not-json', { 'generation_config.json': { text: '[[[' } }, 'ERR_MODEL_FORMAT')
llm(...special('generation_config.json', 'devzero'))
llm('chat-template-syntax', { 'chat_template.jinja': { text: '{% for m in messages %}{{ m.content }' } }, 'ERR_MODEL_FORMAT')
llm('chat-template-unclosed-block', { 'chat_template.jinja': { text: '{% if true %}never closed' } }, 'ERR_MODEL_FORMAT')
llm(...special('chat_template.jinja', 'fifo'))
llm(...special('chat_template.jinja', 'big'))
// A template that raises is rejecting the messages it was given (e.g. roles
// that do not alternate): an invalid argument of that call.
llm('chat-template-raises', { 'chat_template.jinja': { text: "{{ raise_exception('no chat for you') }}" } }, 'ERR_INVALID_ARG', { then: 'chat' })
llm('chat-template-undefined-call', { 'chat_template.jinja': { text: '{{ nothing_here() }}' } }, 'ERR_TOKENIZER', { then: 'chat' })
llm('chat-template-bad-filter', { 'chat_template.jinja': { text: '{{ messages | no_such_filter }}' } }, 'ERR_TOKENIZER', { then: 'chat' })
llm('source-missing', {}, 'ERR_MODEL_NOT_FOUND', { source: '/nonexistent/model/folder' })
llm('source-is-file', {}, 'ERR_MODEL_NOT_FOUND', { source: '$shared/audio/jfk.wav' })
llm('source-fifo', {}, 'ERR_MODEL_NOT_FOUND', { source: '$fifo' })

// Whisper folders
const whisperOverride = (id, files, code, extra = {}) => add({ id: `whisper-model/${id}`, group: 'whisper-model', base: 'whisper', files, code, ...extra })
const wcfg = (patch) => ({ 'config.json': { patchJson: patch } })
whisperOverride('config-missing', {}, 'ERR_MODEL_NOT_FOUND', { remove: ['config.json'] })
whisperOverride('config-not-json', { 'config.json': { text: 'whisper' } }, 'ERR_MODEL_FORMAT')
whisperOverride('config-neither-layout', { 'config.json': { json: { model_type: 'whisper' } } }, 'ERR_MODEL_FORMAT')
whisperOverride('model-type-bert', wcfg({ model_type: 'bert' }), 'ERR_UNSUPPORTED_MODEL')
whisperOverride('vocab-1e12', wcfg({ vocab_size: 1000000000000 }), 'ERR_MODEL_FORMAT')
whisperOverride('vocab-1e12-float', { 'config.json': { patchText: ['"vocab_size": 51864', '"vocab_size": 1e12'] } }, 'ERR_MODEL_FORMAT')
whisperOverride('vocab-small', wcfg({ vocab_size: 100 }), 'ERR_UNSUPPORTED_MODEL')
whisperOverride('vocab-wrong', wcfg({ vocab_size: 60000 }), 'ERR_MODEL_FORMAT')
whisperOverride('d-model-zero', wcfg({ d_model: 0 }), 'ERR_MODEL_FORMAT')
whisperOverride('d-model-huge', wcfg({ d_model: 2 ** 40 }), 'ERR_MODEL_FORMAT')
whisperOverride('encoder-layers-huge', wcfg({ encoder_layers: 1e6 }), 'ERR_MODEL_FORMAT')
whisperOverride('decoder-layers-huge', wcfg({ decoder_layers: 100000 }), 'ERR_MODEL_FORMAT')
whisperOverride('mel-bins-huge', wcfg({ num_mel_bins: 1e9 }), 'ERR_MODEL_FORMAT')
whisperOverride('mel-bins-wrong', wcfg({ num_mel_bins: 128 }), 'ERR_MODEL_FORMAT')
whisperOverride('heads-not-divisor', wcfg({ encoder_attention_heads: 7 }), 'ERR_MODEL_FORMAT')
whisperOverride('source-positions', wcfg({ max_source_positions: 3000 }), 'ERR_UNSUPPORTED_MODEL')
whisperOverride('target-positions-huge', wcfg({ max_target_positions: 1e9 }), 'ERR_MODEL_FORMAT')
whisperOverride('activation-relu', wcfg({ activation_function: 'relu' }), 'ERR_UNSUPPORTED_MODEL')
whisperOverride(...special('config.json', 'devzero'))
whisperOverride(...special('config.json', 'fifo'))
whisperOverride(...special('model.safetensors', 'devzero'))
whisperOverride('safetensors-truncated', { 'model.safetensors': { derive: 'model.safetensors', truncate: 30_000_000 } }, 'ERR_MODEL_FORMAT')
whisperOverride('safetensors-wrong-tensors', { 'model.safetensors': { bytes: 'files/st-wrong-tensors.safetensors' } }, 'ERR_MODEL_FORMAT')
whisperOverride('npz-garbage', { 'weights.npz': { bytes: file('garbage.npz', Buffer.from('PK\x03\x04 not really a zip')) } }, 'ERR_MODEL_FORMAT', { remove: ['model.safetensors'] })
whisperOverride('npz-fifo', { 'weights.npz': { special: 'fifo' } }, 'ERR_IO', { remove: ['model.safetensors'] })
whisperOverride('tokenizer-missing', {}, 'ERR_MODEL_NOT_FOUND', { remove: ['tokenizer.json'] })
whisperOverride('tokenizer-not-whisper', { 'tokenizer.json': { json: { version: '1.0', model: { type: 'WordLevel', vocab: { a: 0 }, unk_token: 'a' } } } }, 'ERR_MODEL_FORMAT')
whisperOverride('generation-config-devzero', { 'generation_config.json': { special: 'devzero' } }, 'ERR_IO')

// ------------------------------------------------------------------ audio
const audio = (id, spec, code, extra = {}) => {
  for (const as of spec.as ?? ['buffer', 'path']) {
    add({ id: `audio/${id}/${as}`, group: 'audio', audio: { ...spec, as }, code, ...extra })
  }
}
const bytes = (id, buf, code = 'ERR_AUDIO_DECODE', ext = 'bin') => audio(id, { file: file(`audio-${id}.${ext}`, buf) }, code)
bytes('one-byte', Buffer.from([0x52]))
bytes('random', Buffer.from(Array.from({ length: 1024 }, (_, i) => (i * 7919 + 13) & 0xff)))
bytes('text', Buffer.from('this is not audio at all\n'.repeat(20)), 'ERR_AUDIO_DECODE', 'txt')
bytes('png', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64)]))
bytes('zip', Buffer.from('PK\x03\x04\x14\x00\x00\x00\x08\x00' + '\0'.repeat(40)))
bytes('wav-header-only', wav({ data: Buffer.alloc(0), dataSize: 0 }).subarray(0, 44), 'ERR_AUDIO_DECODE', 'wav')
bytes('wav-0hz', wav({ rate: 0, data: Buffer.alloc(2) }), 'ERR_AUDIO_DECODE', 'wav')
bytes('wav-0hz-no-data', wav({ rate: 0, data: Buffer.alloc(0) }).subarray(0, 46), 'ERR_AUDIO_DECODE', 'wav')
bytes('wav-0-channels', wav({ channels: 0 }), 'ERR_AUDIO_DECODE', 'wav')
bytes('wav-0-bits', wav({ bits: 0 }), 'ERR_AUDIO_DECODE', 'wav')
bytes('wav-7-bits', wav({ bits: 7, data: tone }), 'ERR_AUDIO_DECODE', 'wav')
bytes('wav-format-99', wav({ format: 99, data: tone }), 'ERR_AUDIO_UNSUPPORTED', 'wav')
bytes('wav-data-size-huge', wav({ data: tone, dataSize: 0xfffffff0 }), 'ERR_AUDIO_DECODE', 'wav')
bytes('wav-fmt-size-huge', wav({ data: tone, fmtSize: 0x7ffffff0 }), 'ERR_AUDIO_DECODE', 'wav')
bytes('wav-rate-4ghz', wav({ rate: 0xffffffff, data: tone }), 'ERR_AUDIO_DECODE', 'wav')
bytes('wav-256-channels', wav({ channels: 256, data: tone }), 'ERR_AUDIO_DECODE', 'wav')
bytes('riff-not-wave', Buffer.concat([Buffer.from('RIFF'), u32(100), Buffer.from('AVI '), Buffer.alloc(96)]), 'ERR_AUDIO_UNSUPPORTED')
bytes('aiff-garbage', Buffer.concat([Buffer.from('FORM'), u32(100), Buffer.from('AIFF'), Buffer.from('COMM'), u32(18), Buffer.alloc(18)]), 'ERR_AUDIO_DECODE', 'aiff')
bytes('flac-magic-only', Buffer.from('fLaC'), 'ERR_AUDIO_DECODE', 'flac')
bytes('ogg-magic-only', Buffer.concat([Buffer.from('OggS'), Buffer.alloc(23)]), 'ERR_AUDIO_DECODE', 'ogg')
bytes('mp4-ftyp-only', Buffer.concat([u32be(16), Buffer.from('ftypM4A '), u32be(0)]), 'ERR_AUDIO_DECODE', 'm4a')
bytes('mkv-ebml-only', Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x80]), 'ERR_AUDIO_DECODE', 'mkv')
bytes('mp3-id3-only', Buffer.concat([Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x0a'), Buffer.alloc(10)]), 'ERR_AUDIO_DECODE', 'mp3')
function u32be(n) { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b }
const derived = (id, from, op, code = 'ERR_AUDIO_DECODE') => audio(id, { derive: from, ...op }, code)
derived('flac-truncated', 'audio/lena.flac', { truncate: 200_000 })
derived('flac-header-cut', 'audio/lena.flac', { truncate: 30 })
derived('mp3-truncated-header', 'audio/jfk.mp3', { truncate: 100 })
derived('ogg-truncated', 'audio/lena.ogg', { truncate: 50_000 })
derived('opus-truncated', 'audio/lena.opus', { truncate: 50_000 })
derived('opus-head-cut', 'audio/lena.opus', { truncate: 60 })
derived('m4a-truncated', 'audio/lena.m4a', { truncate: 100_000 })
derived('m4a-mdhd-timescale-0', 'audio/lena.m4a', { patchAfter: ['mdhd', 16, '00000000'] })
// symphonia reads the forged entry count as a layout it does not support.
derived('m4a-stsd-garbage', 'audio/lena.m4a', { patchAfter: ['stsd', 8, 'ffffffffffffffff'] }, 'ERR_AUDIO_UNSUPPORTED')
derived('wav-truncated', 'audio/jfk.wav', { truncate: 100_000 })
derived('wav-rate-0-real', 'audio/jfk.wav', { patch: [[24, '00000000']] })
audio('path-missing', { path: '/nonexistent/audio.wav', as: ['path'] }, 'ERR_IO')
audio('path-directory', { special: 'dir', as: ['path'] }, 'ERR_IO')
audio('path-fifo', { special: 'fifo', as: ['path'] }, 'ERR_IO')
audio('path-dev-zero', { special: 'devzero', as: ['path'] }, 'ERR_IO')
audio('path-dev-null', { special: 'devnull', as: ['path'] }, 'ERR_IO')
audio('path-empty-file', { file: file('empty.wav', Buffer.alloc(0)), as: ['path'] }, 'ERR_AUDIO_DECODE')
audio('path-empty-string', { value: '', as: ['value'] }, 'ERR_INVALID_ARG')
audio('buffer-empty', { value: { $u8: [] }, as: ['value'] }, 'ERR_AUDIO_DECODE')

// -------------------------------------------------------------------- PCM
const pcm = (id, samples, options, code) => add({ id: `pcm/${id}`, group: 'pcm', pcm: samples, options, code })
pcm('nan', { fill: 'nan', length: 16000 }, { sampleRate: 16000 }, 'ERR_INVALID_ARG')
pcm('infinity', { fill: 'inf', length: 16000 }, { sampleRate: 16000 }, 'ERR_INVALID_ARG')
pcm('1e30', { fill: 1e30, length: 16000 }, { sampleRate: 16000 }, 'ERR_INVALID_ARG')
pcm('int16-unscaled', { fill: 'int16', length: 16000 }, { sampleRate: 16000 }, 'ERR_INVALID_ARG')
pcm('minus-5', { fill: -5, length: 16000 }, { sampleRate: 16000 }, 'ERR_INVALID_ARG')
pcm('empty', { fill: 0, length: 0 }, { sampleRate: 16000 }, 'ERR_AUDIO_DECODE')
pcm('rate-missing', { fill: 0, length: 1600 }, {}, 'ERR_INVALID_ARG')
pcm('rate-zero', { fill: 0, length: 1600 }, { sampleRate: 0 }, 'ERR_INVALID_ARG')
pcm('rate-negative', { fill: 0, length: 1600 }, { sampleRate: -16000 }, 'ERR_INVALID_ARG')
pcm('rate-fraction', { fill: 0, length: 1600 }, { sampleRate: 16000.5 }, 'ERR_INVALID_ARG')
pcm('rate-nan', { fill: 0, length: 1600 }, { sampleRate: { $nan: 1 } }, 'ERR_INVALID_ARG')
pcm('rate-huge', { fill: 0, length: 1600 }, { sampleRate: 1e12 }, 'ERR_INVALID_ARG')
pcm('rate-string', { fill: 0, length: 1600 }, { sampleRate: '16000' }, 'ERR_INVALID_ARG_TYPE')

// ---------------------------------------------------------------- options
const gen = (id, prompt, options, code) => add({ id: `llm-options/${id}`, group: 'llm-options', prompt, options, code })
const P = 'Hello'
gen('options-string', P, 'fast', 'ERR_INVALID_ARG_TYPE')
gen('options-number', P, 42, 'ERR_INVALID_ARG_TYPE')
gen('options-array', P, [1], 'ERR_INVALID_ARG_TYPE')
gen('max-tokens-string', P, { maxTokens: '10' }, 'ERR_INVALID_ARG_TYPE')
gen('max-tokens-negative', P, { maxTokens: -1 }, 'ERR_INVALID_ARG')
gen('max-tokens-zero', P, { maxTokens: 0 }, 'ERR_INVALID_ARG')
gen('max-tokens-fraction', P, { maxTokens: 1.5 }, 'ERR_INVALID_ARG')
gen('max-tokens-huge', P, { maxTokens: 1e20 }, 'ERR_INVALID_ARG')
gen('temperature-nan', P, { temperature: { $nan: 1 } }, 'ERR_INVALID_ARG')
gen('temperature-negative', P, { temperature: -1 }, 'ERR_INVALID_ARG')
gen('temperature-bool', P, { temperature: true }, 'ERR_INVALID_ARG_TYPE')
gen('top-p-2', P, { topP: 2 }, 'ERR_INVALID_ARG')
gen('top-p-string', P, { topP: 'x' }, 'ERR_INVALID_ARG_TYPE')
gen('top-k-zero', P, { topK: 0 }, 'ERR_INVALID_ARG')
gen('min-p-5', P, { minP: 5 }, 'ERR_INVALID_ARG')
gen('repetition-penalty-zero', P, { repetitionPenalty: 0 }, 'ERR_INVALID_ARG')
gen('stop-number', P, { stop: 5 }, 'ERR_INVALID_ARG_TYPE')
gen('stop-array-numbers', P, { stop: [1] }, 'ERR_INVALID_ARG_TYPE')
gen('stop-empty-string', P, { stop: [''] }, 'ERR_INVALID_ARG')
gen('logit-bias-key', P, { logitBias: { abc: 1 } }, 'ERR_INVALID_ARG')
gen('logit-bias-id', P, { logitBias: { 99999999: 1 } }, 'ERR_INVALID_ARG')
gen('logit-bias-array', P, { logitBias: [1, 2] }, 'ERR_INVALID_ARG_TYPE')
gen('seed-negative', P, { seed: -1 }, 'ERR_INVALID_ARG')
gen('signal-string', P, { signal: 'stop' }, 'ERR_INVALID_ARG_TYPE')
gen('signal-aborted', P, { signal: { $signal: 'aborted' } }, 'ABORT_ERR')
gen('prefill-chunk-zero', P, { prefillChunkSize: 0 }, 'ERR_INVALID_ARG')
gen('unknown-option', P, { maxToken: 5 }, 'ERR_INVALID_ARG')
gen('ignore-eos-string', P, { ignoreEos: 'yes' }, 'ERR_INVALID_ARG_TYPE')
gen('prompt-number', 42, {}, 'ERR_INVALID_ARG_TYPE')
gen('prompt-null', null, {}, 'ERR_INVALID_ARG_TYPE')
gen('prompt-object', { text: 'hi' }, {}, 'ERR_INVALID_ARG_TYPE')
gen('prompt-bad-message', [{ role: 1, content: 'hi' }], {}, 'ERR_INVALID_ARG_TYPE')
gen('prompt-empty', '', {}, 'ERR_INVALID_ARG')
gen('prompt-empty-ids', { $u32: [] }, {}, 'ERR_INVALID_ARG')
gen('prompt-id-out-of-vocab', { $u32: [4000000000] }, {}, 'ERR_INVALID_ARG')
gen('prompt-too-long', { $u32fill: [28, 9000] }, { maxTokens: 1 }, 'ERR_PROMPT_TOO_LONG')
gen('prompt-at-context', { $u32fill: [28, 8192] }, { maxTokens: 1 }, 'ERR_PROMPT_TOO_LONG')

const tr = (id, options, code, audioValue) => add({ id: `whisper-options/${id}`, group: 'whisper-options', options, code, audio: audioValue })
tr('options-string', 'fast', 'ERR_INVALID_ARG_TYPE')
tr('language-klingon', { language: 'klingon' }, 'ERR_INVALID_ARG')
tr('language-french-on-en', { language: 'fr' }, 'ERR_INVALID_ARG')
tr('language-number', { language: 5 }, 'ERR_INVALID_ARG_TYPE')
tr('task-bogus', { task: 'summarize' }, 'ERR_INVALID_ARG')
tr('temperature-nan', { temperature: [{ $nan: 1 }] }, 'ERR_INVALID_ARG')
tr('temperature-string', { temperature: 'hot' }, 'ERR_INVALID_ARG_TYPE')
tr('temperature-negative', { temperature: -1 }, 'ERR_INVALID_ARG')
tr('beam-size-zero', { beamSize: 0 }, 'ERR_INVALID_ARG')
tr('beam-size-100', { beamSize: 100 }, 'ERR_INVALID_ARG')
tr('best-of-zero', { bestOf: 0 }, 'ERR_INVALID_ARG')
tr('batch-size-zero', { batchSize: 0 }, 'ERR_INVALID_ARG')
tr('batch-size-huge', { batchSize: 1e6 }, 'ERR_INVALID_ARG')
tr('patience-zero', { patience: 0 }, 'ERR_INVALID_ARG')
tr('sample-len-zero', { sampleLen: 0 }, 'ERR_INVALID_ARG')
tr('suppress-tokens-strings', { suppressTokens: ['a'] }, 'ERR_INVALID_ARG_TYPE')
tr('on-segment-number', { onSegment: 5 }, 'ERR_INVALID_ARG_TYPE')
tr('on-progress-string', { onProgress: 'x' }, 'ERR_INVALID_ARG_TYPE')
tr('unknown-option', { langauge: 'en' }, 'ERR_INVALID_ARG')
tr('initial-prompt-number', { initialPrompt: 5 }, 'ERR_INVALID_ARG_TYPE')
tr('preset-turbo', { preset: 'turbo' }, 'ERR_INVALID_ARG')
tr('signal-aborted', { signal: { $signal: 'aborted' } }, 'ABORT_ERR')
tr('audio-number', {}, 'ERR_INVALID_ARG_TYPE', 42)
tr('audio-null', {}, 'ERR_INVALID_ARG_TYPE', null)
tr('audio-object', {}, 'ERR_INVALID_ARG_TYPE', { path: 'x' })

const load = (id, kind, source, options, code) => add({ id: `load-options/${kind}/${id}`, group: 'load-options', kind, source, options, code })
for (const kind of ['llm', 'whisper']) {
  load('source-number', kind, 42, undefined, 'ERR_INVALID_ARG_TYPE')
  load('source-null', kind, null, undefined, 'ERR_INVALID_ARG_TYPE')
  load('options-string', kind, '$model', 'fast', 'ERR_INVALID_ARG_TYPE')
  load('dtype-int8', kind, '$model', { dtype: 'int8' }, 'ERR_INVALID_ARG')
  load('dtype-number', kind, '$model', { dtype: 5 }, 'ERR_INVALID_ARG_TYPE')
  load('quantize-bits-7', kind, '$model', { quantize: { bits: 7 } }, 'ERR_INVALID_ARG')
  load('on-progress-number', kind, '$model', { onProgress: 5 }, 'ERR_INVALID_ARG_TYPE')
  load('unknown-option', kind, '$model', { dtpye: 'float32' }, 'ERR_INVALID_ARG')
}
load('tokenizer-dir-number', 'whisper', '$model', { tokenizerDir: 5 }, 'ERR_INVALID_ARG_TYPE')
load('tokenizer-dir-missing', 'whisper', '$model', { tokenizerDir: '/nonexistent' }, 'ERR_MODEL_NOT_FOUND')

writeFileSync(join(out, 'cases.json'), JSON.stringify({ generatedBy: 'scripts/gen-bad-inputs.mjs', count: cases.length, cases }, null, 1) + '\n')
console.log(`${cases.length} cases written to ${out}`)
