// Word error rate with the same small English normalizer as the core's
// long-form test (crates/mlx-napi-core/tests/common/wer.rs): case, punctuation,
// hyphens and a few spellings Whisper prefers. Both sides of every
// comparison go through the same rules.
const SPELLINGS = { mr: 'mister', mrs: 'missus', 20: 'twenty' }

/** Lower-case words without punctuation. */
export function normalize(text) {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}']+/gu, ' ')
    .split(/\s+/)
    .map((w) => w.replace(/^'+|'+$/g, ''))
    .filter(Boolean)
    .map((w) => SPELLINGS[w] ?? w)
}

/** { errors, words, wer (percent) } of `hypothesis` against `reference`. */
export function wordErrorRate(reference, hypothesis) {
  const r = normalize(reference)
  const h = normalize(hypothesis)
  let prev = Array.from({ length: h.length + 1 }, (_, j) => j)
  for (let i = 0; i < r.length; i++) {
    const row = new Array(h.length + 1)
    row[0] = i + 1
    for (let j = 0; j < h.length; j++) {
      row[j + 1] = Math.min(prev[j] + (r[i] === h[j] ? 0 : 1), prev[j + 1] + 1, row[j] + 1)
    }
    prev = row
  }
  const errors = prev[h.length]
  return { errors, words: r.length, wer: (100 * errors) / Math.max(1, r.length) }
}
