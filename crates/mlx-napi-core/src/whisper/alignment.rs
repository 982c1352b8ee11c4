//! Word timestamps: openai-whisper's cross-attention alignment, as
//! faster-whisper applies it.
//!
//! Per 30 s window, after its segments are known:
//! 1. One decoder pass over `sot sequence, <|notimestamps|>, text tokens, <|endoftext|>`
//!    returns the cross-attention scores of the *alignment heads* (the
//!    checkpoint's `alignment_heads`, else every head of the second half of the
//!    decoder layers) — [`Whisper::align_pass`].
//! 2. On the device: scores cut to the window's audio frames, softmax over
//!    frames, standardised over tokens, median filter (width 7) along time,
//!    mean over heads; token probabilities (softmax over the text vocabulary).
//! 3. On the host: dynamic time warping of tokens against audio positions
//!    (20 ms each) — sequential and small.
//! 4. Tokens grouped into words (at spaces, or at Unicode characters for
//!    languages written without them), punctuation merged into its neighbour,
//!    and openai-whisper's clean-ups: long words at sentence ends clamped to
//!    twice the median word duration, first/last words against the segment's
//!    bounds (which then follow the words).

use std::time::Instant;

use mlx_rs::{
    ops::{self, indexing::TryIndexOp},
    Array, Dtype,
};
use serde_json::Value;

use super::{
    decode::to_host,
    mel::{HOP_LENGTH, SAMPLE_RATE},
    model::Whisper,
    tokenizer::{Task, WhisperTokenizer},
    Segment,
};
use crate::{Error, Result};

/// openai-whisper's `medfilt_width`.
pub const MEDIAN_FILTER_WIDTH: usize = 7;
/// Punctuation merged into the following word (openai-whisper's default).
pub const PREPEND_PUNCTUATIONS: &str = "\"'“¿([{-";
/// Punctuation merged into the preceding word (openai-whisper's default).
pub const APPEND_PUNCTUATIONS: &str = "\"'.。,，!！?？:：”)]}、";
/// Audio positions per second after the encoder's stride-2 convolution.
const TOKENS_PER_SECOND: f64 = SAMPLE_RATE as f64 / (HOP_LENGTH as f64 * 2.0);
const FRAMES_PER_SECOND: f64 = SAMPLE_RATE as f64 / HOP_LENGTH as f64;
/// Python's `string.punctuation`.
const ASCII_PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const SENTENCE_END_MARKS: &str = ".。!！?？";
/// Languages written without spaces: words are split at Unicode characters.
const UNICODE_SPLIT_LANGUAGES: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];

/// One word of a segment, with its time in seconds from the start of the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word's text with its leading space and merged punctuation, as in the
    /// segment text (concatenating a segment's words gives its text).
    pub word: String,
    pub start: f32,
    pub end: f32,
    /// Mean probability of the word's tokens under the forced decode.
    pub probability: f32,
}

// ---- alignment heads -------------------------------------------------------------

/// `[[layer, head], …]` (generation_config.json) → pairs.
pub fn heads_from_json(value: &Value) -> Result<Vec<(usize, usize)>> {
    let bad = || Error::format("`alignment_heads` must be a list of [layer, head] pairs");
    value
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([layer, head]) => Ok((
                layer.as_u64().ok_or_else(bad)? as usize,
                head.as_u64().ok_or_else(bad)? as usize,
            )),
            _ => Err(bad()),
        })
        .collect()
}

/// mlx-whisper's stored `alignment_heads` tensor `[n, 2]` → pairs.
pub fn heads_from_tensor(tensor: &Array) -> Result<Vec<(usize, usize)>> {
    if tensor.ndim() != 2 || tensor.dim(1) != 2 {
        return Err(Error::format(format!(
            "alignment_heads tensor must be [n, 2], got {:?}",
            tensor.shape()
        )));
    }
    let values = to_host::<i64>(&tensor.as_dtype(Dtype::Int64)?)?;
    values
        .chunks(2)
        .map(
            |pair| match (usize::try_from(pair[0]), usize::try_from(pair[1])) {
                (Ok(layer), Ok(head)) => Ok((layer, head)),
                _ => Err(Error::format("alignment_heads holds a negative index")),
            },
        )
        .collect()
}

/// Every listed head must exist, and the list must not be empty.
pub fn check_heads(heads: &[(usize, usize)], layers: usize, heads_per_layer: usize) -> Result<()> {
    if heads.is_empty() {
        return Err(Error::format("alignment_heads is empty"));
    }
    if let Some((layer, head)) = heads
        .iter()
        .find(|&&(l, h)| l >= layers || h >= heads_per_layer)
    {
        return Err(Error::format(format!(
            "alignment head [{layer}, {head}] is outside the decoder's {layers} layers × \
             {heads_per_layer} heads"
        )));
    }
    Ok(())
}

/// openai-whisper's default: all heads of the second half of the decoder layers.
pub fn default_heads(layers: usize, heads_per_layer: usize) -> Vec<(usize, usize)> {
    (layers / 2..layers)
        .flat_map(|l| (0..heads_per_layer).map(move |h| (l, h)))
        .collect()
}

// ---- device part: attention matrix and token probabilities ---------------------

/// openai-whisper's median filter along the last axis (reflect padding), as
/// MLX ops: one gather of every window position, then the middle of each row.
pub fn median_filter(x: &Array, width: usize) -> Result<Array> {
    let depth = x.dim(-1) as usize;
    let rank = width / 2;
    if depth <= rank {
        return Ok(x.clone());
    }
    let reflect = |i: isize| -> i32 {
        let read = i.unsigned_abs();
        (if read >= depth {
            2 * depth - read - 2
        } else {
            read
        }) as i32
    };
    let indices: Vec<i32> = (0..depth as isize)
        .flat_map(|j| (-(rank as isize)..=rank as isize).map(move |k| reflect(j + k)))
        .collect();
    let gathered = x.take_axis(Array::from_slice(&indices, &[indices.len() as i32]), -1)?;
    let mut shape = x.shape().to_vec();
    shape.push(width as i32);
    let windows = gathered.reshape(&shape)?;
    Ok(ops::partition_axis(&windows, rank as i32, -1)?
        .take_axis(Array::from_int(rank as i32), -1)?)
}

/// What one window's forced decode gives the host.
struct WindowMatrix {
    /// `[rows, cols]` row-major: rows = text tokens + 1, cols = audio positions.
    matrix: Vec<f32>,
    rows: usize,
    cols: usize,
    /// Probability of each text token.
    token_probs: Vec<f32>,
}

// ---- host part: DTW, words, punctuation -----------------------------------------

/// openai-whisper's `dtw` of the cost matrix `x` `[n, m]`: the monotonic path
/// from (0, 0) to (n-1, m-1) as `(text index, time index)` pairs.
pub fn dtw(x: &[f32], n: usize, m: usize) -> Vec<(usize, usize)> {
    let width = m + 1;
    let mut cost = vec![f32::INFINITY; (n + 1) * width];
    let mut trace = vec![-1i8; (n + 1) * width];
    cost[0] = 0.0;
    for j in 1..=m {
        for i in 1..=n {
            let c0 = cost[(i - 1) * width + j - 1];
            let c1 = cost[(i - 1) * width + j];
            let c2 = cost[i * width + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            cost[i * width + j] = x[(i - 1) * m + j - 1] + c;
            trace[i * width + j] = t;
        }
    }
    // Backtrace; the borders lead straight to the origin.
    for t in trace.iter_mut().take(width) {
        *t = 2;
    }
    for i in 0..=n {
        trace[i * width] = 1;
    }
    let (mut i, mut j) = (n, m);
    let mut path = Vec::with_capacity(n + m);
    while i > 0 || j > 0 {
        path.push((i.wrapping_sub(1), j.wrapping_sub(1)));
        match trace[i * width + j] {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    // Costs on the borders are infinite, so the path only reaches them at the
    // origin; this keeps it inside the matrix whatever the input.
    path.retain(|&(i, j)| i < n && j < m);
    path.reverse();
    path
}

/// openai-whisper's `split_tokens_on_unicode`: pieces that decode to whole
/// characters (multi-byte characters spread over tokens stay together).
pub fn split_on_unicode(
    tokenizer: &WhisperTokenizer,
    tokens: &[u32],
) -> Result<Vec<(String, Vec<u32>)>> {
    let full: Vec<char> = tokenizer.decode_text(tokens)?.chars().collect();
    let mut pieces = Vec::new();
    let mut current = Vec::new();
    let mut offset = 0;
    for &token in tokens {
        current.push(token);
        let decoded = tokenizer.decode_text(&current)?;
        let complete = match decoded.chars().position(|c| c == '\u{FFFD}') {
            None => true,
            // A replacement character that is really in the text is fine.
            Some(at) => full.get(offset + at) == Some(&'\u{FFFD}'),
        };
        if complete {
            offset += decoded.chars().count();
            pieces.push((decoded, std::mem::take(&mut current)));
        }
    }
    if !current.is_empty() {
        pieces.push((tokenizer.decode_text(&current)?, current));
    }
    Ok(pieces)
}

/// openai-whisper's `split_tokens_on_spaces`: subwords joined into words that
/// start at a space; punctuation stands alone.
pub fn split_on_spaces(
    tokenizer: &WhisperTokenizer,
    tokens: &[u32],
) -> Result<Vec<(String, Vec<u32>)>> {
    let mut words: Vec<(String, Vec<u32>)> = Vec::new();
    for (subword, subword_tokens) in split_on_unicode(tokenizer, tokens)? {
        let with_space = subword.starts_with(' ');
        // Python's `subword.strip() in string.punctuation` (a substring test).
        let punctuation = ASCII_PUNCTUATION.contains(subword.trim());
        match words.last_mut() {
            Some(last) if !with_space && !punctuation => {
                last.0.push_str(&subword);
                last.1.extend(subword_tokens);
            }
            _ => words.push((subword, subword_tokens)),
        }
    }
    Ok(words)
}

/// A word of the alignment before it is placed in a segment (times relative
/// to the window).
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    pub word: String,
    pub tokens: Vec<u32>,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// Words of `text_tokens` timed by the DTW path through `matrix`.
fn words_from_path(
    words: Vec<(String, Vec<u32>)>,
    path: &[(usize, usize)],
    token_probs: &[f32],
) -> Vec<WordTiming> {
    // Time of the first audio position of each text row.
    let mut jump_times = Vec::new();
    let mut previous = None;
    for &(text, time) in path {
        if previous != Some(text) {
            jump_times.push(time as f64 / TOKENS_PER_SECOND);
            previous = Some(text);
        }
    }
    let mut boundary = 0;
    let mut timings = Vec::with_capacity(words.len());
    for (word, tokens) in words {
        let next = boundary + tokens.len();
        let (Some(&start), Some(&end)) = (jump_times.get(boundary), jump_times.get(next)) else {
            break;
        };
        let probs = &token_probs[boundary.min(token_probs.len())..next.min(token_probs.len())];
        let probability = if probs.is_empty() {
            0.0
        } else {
            probs.iter().sum::<f32>() / probs.len() as f32
        };
        timings.push(WordTiming {
            word,
            tokens,
            start,
            end,
            probability,
        });
        boundary = next;
    }
    timings
}

/// openai-whisper's `merge_punctuations`: opening marks join the next word,
/// closing marks the previous one (the merged-away entries keep empty text).
pub fn merge_punctuations(alignment: &mut [WordTiming], prepended: &str, appended: &str) {
    if alignment.len() < 2 {
        return;
    }
    // Prepended: right to left.
    let mut j = alignment.len() - 1;
    for i in (0..alignment.len() - 1).rev() {
        let previous = &alignment[i];
        if previous.word.starts_with(' ') && prepended.contains(previous.word.trim()) {
            let (head, tail) = alignment.split_at_mut(j);
            let (previous, following) = (&mut head[i], &mut tail[0]);
            following.word = format!("{}{}", previous.word, following.word);
            let mut tokens = std::mem::take(&mut previous.tokens);
            tokens.extend(&following.tokens);
            following.tokens = tokens;
            previous.word.clear();
        } else {
            j = i;
        }
    }
    // Appended: left to right.
    let mut i = 0;
    for j in 1..alignment.len() {
        let (head, tail) = alignment.split_at_mut(j);
        let (previous, following) = (&mut head[i], &mut tail[0]);
        if !previous.word.ends_with(' ') && appended.contains(following.word.as_str()) {
            previous.word.push_str(&following.word);
            previous.tokens.append(&mut following.tokens);
            following.word.clear();
        } else {
            i = j;
        }
    }
}

/// Python's `round(x, 2)` closely enough for times (ties are not exact in
/// binary anyway).
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Median of the non-zero durations, capped at 0.7 s (openai-whisper).
fn median_duration(alignment: &[WordTiming]) -> Option<f64> {
    let mut durations: Vec<f64> = alignment
        .iter()
        .map(|w| w.end - w.start)
        .filter(|&d| d != 0.0)
        .collect();
    if durations.is_empty() {
        return None;
    }
    durations.sort_by(f64::total_cmp);
    let n = durations.len();
    let median = if n % 2 == 1 {
        durations[n / 2]
    } else {
        (durations[n / 2 - 1] + durations[n / 2]) / 2.0
    };
    Some(median.min(0.7))
}

/// The host half of one window: words placed into `segments` (the window's
/// segments, every one the decoder produced, in order) with openai-whisper's
/// clean-ups; segment bounds follow the words. Returns the updated
/// `last_speech_timestamp`.
pub fn place_words(
    mut alignment: Vec<WordTiming>,
    segments: &mut [Segment],
    eot: u32,
    time_offset: f64,
    mut last_speech_timestamp: f64,
) -> f64 {
    let median = median_duration(&alignment);
    let median_duration = median.unwrap_or(0.0);
    let max_duration = median_duration * 2.0;
    if median.is_some() {
        // Long words at sentence boundaries are truncated to twice the median.
        for i in 1..alignment.len() {
            if alignment[i].end - alignment[i].start > max_duration {
                if SENTENCE_END_MARKS.contains(alignment[i].word.as_str()) {
                    alignment[i].end = alignment[i].start + max_duration;
                } else if SENTENCE_END_MARKS.contains(alignment[i - 1].word.as_str()) {
                    alignment[i].start = alignment[i].end - max_duration;
                }
            }
        }
    }
    merge_punctuations(&mut alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);

    let mut timings = alignment.into_iter().peekable();
    for segment in segments.iter_mut() {
        let text_tokens = segment.tokens.iter().filter(|&&t| t < eot).count();
        let mut saved = 0;
        let mut words: Vec<(String, f64, f64, f32)> = Vec::new();
        while saved < text_tokens {
            let Some(timing) = timings.next() else { break };
            if !timing.word.is_empty() {
                words.push((
                    timing.word,
                    round2(time_offset + timing.start),
                    round2(time_offset + timing.end),
                    timing.probability,
                ));
            }
            saved += timing.tokens.len();
        }
        let (mut start, mut end) = (f64::from(segment.start), f64::from(segment.end));
        if !words.is_empty() {
            // The first (and second) word after a pause are not longer than twice
            // the median word duration.
            let first_long = words[0].2 - words[0].1 > max_duration;
            let pair_long = words.len() > 1 && words[1].2 - words[0].1 > max_duration * 2.0;
            if words[0].2 - last_speech_timestamp > median_duration * 4.0
                && (first_long || pair_long)
            {
                if words.len() > 1 && words[1].2 - words[1].1 > max_duration {
                    let boundary = (words[1].2 / 2.0).max(words[1].2 - max_duration);
                    words[0].2 = boundary;
                    words[1].1 = boundary;
                }
                words[0].1 = (words[0].2 - max_duration).max(0.0);
            }
            // Prefer the segment's start when the first word is too long.
            if start < words[0].2 && start - 0.5 > words[0].1 {
                words[0].1 = (words[0].2 - median_duration).min(start).max(0.0);
            } else {
                start = words[0].1;
            }
            // Prefer the segment's end when the last word is too long.
            let last = words.len() - 1;
            if end > words[last].1 && end + 0.5 < words[last].2 {
                words[last].2 = (words[last].1 + median_duration).max(end);
            } else {
                end = words[last].2;
            }
            last_speech_timestamp = end;
        }
        segment.start = start as f32;
        segment.end = end as f32;
        segment.words = Some(
            words
                .into_iter()
                .map(|(word, start, end, probability)| Word {
                    word,
                    start: start as f32,
                    end: end as f32,
                    probability,
                })
                .collect(),
        );
    }
    last_speech_timestamp
}

/// openai-whisper's `get_end`: the last word's end, else the last segment's.
pub fn last_end(segments: &[Segment]) -> Option<f64> {
    segments
        .iter()
        .rev()
        .find_map(|s| s.words.as_ref().and_then(|w| w.last()))
        .map(|w| f64::from(w.end))
        .or_else(|| segments.last().map(|s| f64::from(s.end)))
}

// ---- the per-transcription driver ----------------------------------------------

/// Word timing state of one transcription.
pub struct WordAligner<'a> {
    model: &'a Whisper,
    tokenizer: &'a WhisperTokenizer,
    heads: Vec<(usize, usize)>,
    /// `sot sequence` (language, task) + `<|notimestamps|>`.
    prompt: Vec<u32>,
    unicode_words: bool,
    last_speech_timestamp: f64,
    /// `last_end` of the window aligned last.
    window_end: Option<f64>,
    /// Milliseconds spent aligning.
    pub elapsed_ms: f64,
}

impl<'a> WordAligner<'a> {
    pub fn new(
        model: &'a Whisper,
        tokenizer: &'a WhisperTokenizer,
        language_token: Option<u32>,
        language: &str,
        task: Task,
    ) -> Self {
        let config = model.config();
        let heads = config
            .alignment_heads
            .clone()
            .unwrap_or_else(|| default_heads(config.n_text_layer, config.n_text_head));
        let mut prompt = tokenizer.sot_sequence(language_token, task, true);
        prompt.push(tokenizer.special().no_timestamps);
        WordAligner {
            model,
            tokenizer,
            heads,
            prompt,
            unicode_words: UNICODE_SPLIT_LANGUAGES.contains(&language),
            last_speech_timestamp: 0.0,
            window_end: None,
            elapsed_ms: 0.0,
        }
    }

    /// Times the words of one window's `segments` (all the decoder produced,
    /// before empty ones are dropped). `features`: the window's encoder output
    /// `[1, n_audio_ctx, d]`; `frames`: its mel frames of real audio.
    pub fn add_words(
        &mut self,
        features: &Array,
        frames: usize,
        segments: &mut [Segment],
    ) -> Result<()> {
        let started = Instant::now();
        self.window_end = None;
        let Some(first) = segments.first() else {
            return Ok(());
        };
        let time_offset = first.seek as f64 / FRAMES_PER_SECOND;
        let eot = self.tokenizer.special().eot;
        let text: Vec<u32> = segments
            .iter()
            .flat_map(|s| s.tokens.iter().copied().filter(|&t| t < eot))
            .collect();
        let alignment = self.find_alignment(features, frames, &text)?;
        self.last_speech_timestamp = place_words(
            alignment,
            segments,
            eot,
            time_offset,
            self.last_speech_timestamp,
        );
        self.window_end = last_end(segments);
        if let Some(end) = self.window_end {
            self.last_speech_timestamp = end;
        }
        self.elapsed_ms += started.elapsed().as_secs_f64() * 1e3;
        Ok(())
    }

    /// openai-whisper's seek with word timestamps: a window that did not end
    /// on a lone timestamp resumes after its last word (in mel frames), when
    /// that is past `seek`.
    pub fn resume_frame(&self, tokens: &[u32], seek: usize) -> Option<usize> {
        let n = tokens.len();
        let is_ts = |t: u32| self.tokenizer.is_timestamp(t);
        if n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]) {
            return None;
        }
        let end = self.window_end?;
        let next = (end * FRAMES_PER_SECOND).round() as usize;
        (end > seek as f64 / FRAMES_PER_SECOND && next > seek).then_some(next)
    }

    /// Words of `text` (text tokens of one window) with window-relative times.
    fn find_alignment(
        &self,
        features: &Array,
        frames: usize,
        text: &[u32],
    ) -> Result<Vec<WordTiming>> {
        let eot = self.tokenizer.special().eot;
        let mut words = if self.unicode_words {
            split_on_unicode(self.tokenizer, text)?
        } else {
            split_on_spaces(self.tokenizer, text)?
        };
        // The closing <|endoftext|> is a word of its own (dropped below).
        words.push(("<|endoftext|>".into(), vec![eot]));
        if words.len() <= 1 || frames / 2 == 0 {
            return Ok(Vec::new());
        }
        let window = self.window_matrix(features, frames, text)?;
        let cost: Vec<f32> = window.matrix.iter().map(|v| -v).collect();
        let path = dtw(&cost, window.rows, window.cols);
        words.pop();
        Ok(words_from_path(words, &path, &window.token_probs))
    }

    /// The forced decode on the device → the normalised, filtered, head-averaged
    /// attention matrix (text rows × audio positions) and the token probabilities.
    fn window_matrix(&self, features: &Array, frames: usize, text: &[u32]) -> Result<WindowMatrix> {
        let special = self.tokenizer.special();
        let sot_len = self.prompt.len() - 1;
        let mut sequence: Vec<i32> = self.prompt.iter().map(|&t| t as i32).collect();
        sequence.extend(text.iter().map(|&t| t as i32));
        sequence.push(special.eot as i32);
        let length = sequence.len() as i32;
        let limit = self.model.config().n_text_ctx as i32;
        if length > limit {
            return Err(Error::invalid(format!(
                "word alignment needs {length} decoder positions, the model has {limit}"
            )));
        }
        let tokens = Array::from_slice(&sequence, &[1, length]);
        let pass = self.model.align_pass(&tokens, features, &self.heads)?;

        // Probabilities of the text tokens over the text vocabulary.
        let n = text.len() as i32;
        let rows =
            pass.logits
                .try_index((0, sot_len as i32..sot_len as i32 + n, ..special.eot as i32))?;
        let targets =
            Array::from_slice(&text.iter().map(|&t| t as i32).collect::<Vec<_>>(), &[n, 1]);
        let token_probs = ops::softmax_axis(&rows, -1, true)?
            .take_along_axis(&targets, -1)?
            .reshape(&[-1])?;

        // Attention over the window's audio only, standardised over tokens.
        let cols = (frames / 2).min(pass.head_scores.dim(-1) as usize) as i32;
        let weights =
            ops::softmax_axis(&pass.head_scores.try_index((.., .., .., ..cols))?, -1, true)?;
        let mean = weights.mean_axis(-2, true)?;
        let std = weights.var_axis(-2, true, 0)?.sqrt()?;
        let weights = weights.subtract(&mean)?.divide(&std)?;
        let weights = median_filter(&weights, MEDIAN_FILTER_WIDTH)?;
        let matrix = weights
            .mean_axis(1, false)?
            .try_index((0, sot_len as i32..length - 1, ..))?;
        let matrix_rows = (length - 1 - sot_len as i32) as usize;
        Ok(WindowMatrix {
            matrix: to_host::<f32>(&matrix)?,
            rows: matrix_rows,
            cols: cols as usize,
            token_probs: if n == 0 {
                Vec::new()
            } else {
                to_host::<f32>(&token_probs)?
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(word: &str, start: f64, end: f64) -> WordTiming {
        WordTiming {
            word: word.into(),
            tokens: vec![1],
            start,
            end,
            probability: 0.9,
        }
    }

    #[test]
    fn dtw_follows_the_cheapest_monotonic_path() {
        // Diagonal costs are cheap: the path walks the diagonal.
        let x = [-1.0, 1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1.0, -1.0];
        assert_eq!(dtw(&x, 3, 3), vec![(0, 0), (1, 1), (2, 2)]);
        // Row 0 holds the first two columns.
        let x = [-1.0, -1.0, 1.0, 1.0, 1.0, -1.0];
        assert_eq!(dtw(&x, 2, 3), vec![(0, 0), (0, 1), (1, 2)]);
    }

    #[test]
    fn default_heads_are_the_second_half() {
        assert_eq!(default_heads(4, 2), vec![(2, 0), (2, 1), (3, 0), (3, 1)]);
        assert_eq!(default_heads(1, 2), vec![(0, 0), (0, 1)]);
    }

    #[test]
    fn heads_parse_and_check() {
        let v = serde_json::json!([[1, 0], [3, 4]]);
        let heads = heads_from_json(&v).unwrap();
        assert_eq!(heads, vec![(1, 0), (3, 4)]);
        assert!(check_heads(&heads, 4, 6).is_ok());
        assert!(check_heads(&heads, 3, 6).is_err());
        assert!(check_heads(&[], 4, 6).is_err());
        assert!(heads_from_json(&serde_json::json!([[1]])).is_err());
        let tensor = Array::from_slice(&[1i32, 0, 3, 4], &[2, 2]);
        assert_eq!(heads_from_tensor(&tensor).unwrap(), heads);
    }

    #[test]
    fn median_filter_matches_reflect_padding() {
        let x = Array::from_slice(&[5.0f32, 1.0, 9.0, 2.0, 7.0, 3.0, 8.0, 4.0], &[1, 8]);
        let y = median_filter(&x, 3).unwrap();
        // Width 3, reflect: [1,5,1,9,2,7,3,8,4,8] → medians of each triple.
        assert_eq!(
            y.as_slice::<f32>(),
            &[1.0, 5.0, 2.0, 7.0, 3.0, 7.0, 4.0, 8.0]
        );
        let short = Array::from_slice(&[1.0f32, 2.0], &[1, 2]);
        assert_eq!(
            median_filter(&short, 7).unwrap().as_slice::<f32>(),
            &[1.0, 2.0]
        );
    }

    #[test]
    fn punctuation_joins_its_neighbours() {
        let mut words = vec![
            timing(" \"", 0.0, 0.1),
            timing(" Hello", 0.1, 0.5),
            timing(",", 0.5, 0.6),
            timing(" world", 0.6, 1.0),
            timing(".\"", 1.0, 1.1),
        ];
        merge_punctuations(&mut words, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        let texts: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        // ".\"" is not one of the appended marks (a substring test, as in Python).
        assert_eq!(texts, vec!["", " \" Hello,", "", " world", ".\""]);
        assert_eq!(words[1].tokens.len(), 3);
        let mut words = vec![timing(" end", 0.0, 0.4), timing(".", 0.4, 0.5)];
        merge_punctuations(&mut words, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        assert_eq!(words[0].word, " end.");
        assert_eq!(words[0].end, 0.4, "the word keeps its own end");
    }

    #[test]
    fn words_take_the_first_time_of_their_rows() {
        let words = vec![(" a".to_string(), vec![1]), (" bc".to_string(), vec![2, 3])];
        // Rows: 0 (a) at 0..2, 1 (b) at 3, 2 (c) at 4..5, 3 (eot) at 6.
        let path = [(0, 0), (0, 1), (0, 2), (1, 3), (2, 4), (2, 5), (3, 6)];
        let t = words_from_path(words, &path, &[0.5, 1.0, 0.0]);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].start, t[0].end), (0.0, 0.06));
        assert_eq!((t[1].start, t[1].end), (0.06, 0.12));
        assert_eq!(t[0].probability, 0.5);
        assert_eq!(t[1].probability, 0.5);
    }

    #[test]
    fn median_ignores_zero_durations_and_caps() {
        let words = [
            timing(" a", 0.0, 0.2),
            timing(" b", 0.2, 0.2),
            timing(" c", 0.2, 0.6),
        ];
        assert!((median_duration(&words).unwrap() - 0.3).abs() < 1e-12);
        let long = [timing(" a", 0.0, 3.0)];
        assert_eq!(median_duration(&long), Some(0.7));
        assert_eq!(median_duration(&[timing(" a", 1.0, 1.0)]), None);
    }
}
