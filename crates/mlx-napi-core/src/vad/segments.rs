//! Speech probabilities → speech sample ranges: the hysteresis, minimum-length,
//! maximum-length and padding rules of Silero's / faster-whisper's
//! `get_speech_timestamps` (faster-whisper 1.2.1), reimplemented; the oracle
//! fixture checks the ranges are the same, sample for sample.

use std::ops::Range;

use super::{model::CHUNK, VadOptions};

const RATE: f64 = 16_000.0;
/// A silence at least this long (98 ms) is a place to split an over-long segment.
const MIN_SILENCE_AT_MAX_SPEECH: f64 = RATE * 98.0 / 1000.0;

/// Speech ranges (in samples of 16 kHz audio `len` samples long) from
/// per-chunk probabilities.
pub fn speech_ranges(probs: &[f32], len: usize, options: &VadOptions) -> Vec<Range<usize>> {
    let threshold = options.threshold;
    let neg_threshold = options.neg_threshold();
    let min_speech = RATE * f64::from(options.min_speech_ms) / 1000.0;
    let pad = RATE * f64::from(options.speech_pad_ms) / 1000.0;
    let max_speech = options.max_speech_s.map_or(f64::INFINITY, |s| {
        RATE * f64::from(s) - CHUNK as f64 - 2.0 * pad
    });
    let min_silence = RATE * f64::from(options.min_silence_ms) / 1000.0;

    // Positions are chunk starts (samples); 0 doubles as "unset", as upstream.
    let mut speeches: Vec<(usize, usize)> = Vec::new();
    let mut start: Option<usize> = None;
    let mut temp_end = 0usize;
    let mut prev_end = 0usize;
    let mut next_start = 0usize;
    for (i, &p) in probs.iter().enumerate() {
        let pos = CHUNK * i;
        if p >= threshold && temp_end != 0 {
            temp_end = 0;
            if next_start < prev_end {
                next_start = pos;
            }
        }
        let Some(current) = start else {
            if p >= threshold {
                start = Some(pos);
            }
            continue;
        };
        if (pos - current) as f64 > max_speech {
            // Too long: end at the last long-enough silence, or cut right here.
            if prev_end != 0 {
                speeches.push((current, prev_end));
                start = (next_start >= prev_end).then_some(next_start);
                prev_end = 0;
                next_start = 0;
                temp_end = 0;
            } else {
                speeches.push((current, pos));
                start = None;
                prev_end = 0;
                next_start = 0;
                temp_end = 0;
                continue;
            }
        }
        let Some(current) = start else { continue };
        if p < neg_threshold {
            if temp_end == 0 {
                temp_end = pos;
            }
            if (pos - temp_end) as f64 > MIN_SILENCE_AT_MAX_SPEECH {
                prev_end = temp_end;
            }
            if ((pos - temp_end) as f64) < min_silence {
                continue;
            }
            if (temp_end - current) as f64 > min_speech {
                speeches.push((current, temp_end));
            }
            start = None;
            prev_end = 0;
            next_start = 0;
            temp_end = 0;
        }
    }
    if let Some(current) = start {
        if len.saturating_sub(current) as f64 > min_speech {
            speeches.push((current, len));
        }
    }

    // Pad each side; when two segments are closer than two pads, split the gap.
    let n = speeches.len();
    for i in 0..n {
        if i == 0 {
            speeches[0].0 = (speeches[0].0 as f64 - pad).max(0.0) as usize;
        }
        if i + 1 < n {
            let silence = speeches[i + 1].0 as i64 - speeches[i].1 as i64;
            if (silence as f64) < 2.0 * pad {
                let half = silence.div_euclid(2);
                speeches[i].1 = (speeches[i].1 as i64 + half) as usize;
                speeches[i + 1].0 = (speeches[i + 1].0 as i64 - half).max(0) as usize;
            } else {
                speeches[i].1 = (speeches[i].1 as f64 + pad).min(len as f64) as usize;
                speeches[i + 1].0 = (speeches[i + 1].0 as f64 - pad).max(0.0) as usize;
            }
        } else {
            speeches[i].1 = (speeches[i].1 as f64 + pad).min(len as f64) as usize;
        }
    }
    speeches.into_iter().map(|(s, e)| s..e).collect()
}
