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

/**
 * Runs of at least `min` consecutive reference words missing from
 * `hypothesis` (deleted in a minimum-edit alignment: lost words, not misheard
 * ones), in reference order: `{ ref, hyp, length }`, where `ref` is the first
 * lost word's index in the normalized reference and `hyp` the position in the
 * normalized hypothesis where they are missing.
 */
export function deletionRuns(reference, hypothesis, min = 1) {
  const r = normalize(reference)
  const h = normalize(hypothesis)
  const d = Array.from({ length: r.length + 1 }, (_, i) => {
    const row = new Int32Array(h.length + 1)
    row[0] = i
    return row
  })
  for (let j = 0; j <= h.length; j++) d[0][j] = j
  for (let i = 1; i <= r.length; i++) {
    for (let j = 1; j <= h.length; j++) {
      d[i][j] = Math.min(d[i - 1][j - 1] + (r[i - 1] === h[j - 1] ? 0 : 1), d[i - 1][j] + 1, d[i][j - 1] + 1)
    }
  }
  const runs = []
  let i = r.length
  let j = h.length
  let run = 0
  const close = () => {
    if (run >= min) runs.push({ ref: i, hyp: j, length: run })
    run = 0
  }
  while (i > 0 || j > 0) {
    if (i > 0 && j > 0 && d[i][j] === d[i - 1][j - 1] + (r[i - 1] === h[j - 1] ? 0 : 1)) {
      close()
      i--
      j--
    } else if (i > 0 && d[i][j] === d[i - 1][j] + 1) {
      i--
      run++
    } else {
      close()
      j--
    }
  }
  close()
  return runs.reverse()
}

/** The longest run of consecutive reference words missing from `hypothesis` (see `deletionRuns`). */
export function longestDeletionRun(reference, hypothesis) {
  return Math.max(0, ...deletionRuns(reference, hypothesis).map((run) => run.length))
}
