//! Word error rate with a small English normalizer (case, punctuation,
//! hyphens, a few spellings Whisper prefers), enough to compare transcripts
//! of the long-form set; both sides of a comparison go through the same rules.
#![allow(dead_code)]

/// Lower-case words without punctuation.
pub fn normalize(text: &str) -> Vec<String> {
    let cleaned: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    cleaned
        .split_whitespace()
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .map(|w| match w {
            "mr" => "mister".to_string(),
            "mrs" => "missus".to_string(),
            "20" => "twenty".to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// Errors (substitutions + deletions + insertions) and reference length.
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = normalize(reference);
    let h = normalize(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut row = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            row[j + 1] = sub.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    (prev[h.len()], r.len())
}

/// Word error rate in percent.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (errors, words) = word_errors(reference, hypothesis);
    100.0 * errors as f64 / words.max(1) as f64
}

/// The longest run of consecutive reference words missing from the
/// hypothesis (deleted in a minimum-edit alignment): how word loss shows,
/// as opposed to misheard words.
pub fn longest_deletion_run(reference: &str, hypothesis: &str) -> usize {
    let r = normalize(reference);
    let h = normalize(hypothesis);
    let mut d = vec![vec![0usize; h.len() + 1]; r.len() + 1];
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=r.len() {
        d[i][0] = i;
        for j in 1..=h.len() {
            let sub = d[i - 1][j - 1] + usize::from(r[i - 1] != h[j - 1]);
            d[i][j] = sub.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
        }
    }
    let (mut i, mut j, mut run, mut longest) = (r.len(), h.len(), 0, 0);
    while i > 0 || j > 0 {
        if i > 0 && j > 0 && d[i][j] == d[i - 1][j - 1] + usize::from(r[i - 1] != h[j - 1]) {
            i -= 1;
            j -= 1;
            run = 0;
        } else if i > 0 && d[i][j] == d[i - 1][j] + 1 {
            i -= 1;
            run += 1;
            longest = longest.max(run);
        } else {
            j -= 1;
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_runs_are_counted_not_substitutions() {
        let reference = "one two three four five six seven";
        assert_eq!(longest_deletion_run(reference, reference), 0);
        assert_eq!(longest_deletion_run(reference, "one two six seven"), 3);
        assert_eq!(
            longest_deletion_run(reference, "one too three for five six seven"),
            0
        );
        assert_eq!(wer(reference, "one two six seven"), 300.0 / 7.0);
    }
}
