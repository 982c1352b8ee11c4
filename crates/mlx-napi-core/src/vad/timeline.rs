//! The speech-only audio Whisper sees and the way back to the original timeline
//! (faster-whisper's `SpeechTimestampsMap` idea): a time in the concatenated
//! audio lies in one kept range; add the silence cut before that range.

use std::ops::Range;

use super::SAMPLE_RATE;

/// Kept ranges of the original audio and the silence removed before each.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechTimeline {
    /// End of each kept range in the concatenated audio, samples (increasing).
    ends: Vec<usize>,
    /// Samples removed before each kept range.
    removed_before: Vec<usize>,
}

impl SpeechTimeline {
    /// `ranges` must be in order and disjoint (as [`super::speech_segments`] gives).
    pub fn new(ranges: &[Range<usize>]) -> Self {
        let mut ends = Vec::with_capacity(ranges.len());
        let mut removed_before = Vec::with_capacity(ranges.len());
        let (mut previous_end, mut removed) = (0usize, 0usize);
        for r in ranges {
            removed += r.start.saturating_sub(previous_end);
            previous_end = r.end;
            ends.push(r.end - removed);
            removed_before.push(removed);
        }
        SpeechTimeline {
            ends,
            removed_before,
        }
    }

    /// The kept samples of `samples`, concatenated.
    pub fn concatenate(samples: &[f32], ranges: &[Range<usize>]) -> Vec<f32> {
        let mut out = Vec::with_capacity(ranges.iter().map(|r| r.len()).sum());
        for r in ranges {
            out.extend_from_slice(&samples[r.start.min(samples.len())..r.end.min(samples.len())]);
        }
        out
    }

    /// Seconds of speech kept.
    pub fn speech_seconds(&self) -> f64 {
        self.ends
            .last()
            .map_or(0.0, |&e| e as f64 / f64::from(SAMPLE_RATE))
    }

    /// Original time of `seconds` in the concatenated audio. A time exactly at
    /// the join of two ranges belongs to the later one, unless `is_end` (a
    /// segment's end stays with the range it closes).
    pub fn original_time(&self, seconds: f32, is_end: bool) -> f32 {
        if self.ends.is_empty() {
            return seconds;
        }
        let rate = f64::from(SAMPLE_RATE);
        let sample = (f64::from(seconds) * rate).max(0.0) as usize;
        let index = match self.ends.iter().position(|&e| e == sample) {
            Some(i) if is_end => i,
            _ => self
                .ends
                .partition_point(|&e| e <= sample)
                .min(self.ends.len() - 1),
        };
        (f64::from(seconds) + self.removed_before[index] as f64 / rate) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_times_across_removed_silence() {
        // Keep 1 s..2 s and 4 s..5 s of the original.
        let t = SpeechTimeline::new(&[16_000..32_000, 64_000..80_000]);
        assert_eq!(t.speech_seconds(), 2.0);
        assert_eq!(t.original_time(0.0, false), 1.0);
        assert_eq!(t.original_time(0.5, false), 1.5);
        // The join: a start goes to the second range, an end stays in the first.
        assert_eq!(t.original_time(1.0, false), 4.0);
        assert_eq!(t.original_time(1.0, true), 2.0);
        assert_eq!(t.original_time(1.5, true), 4.5);
        // Past the end: clamped to the last range's offset.
        assert_eq!(t.original_time(3.0, true), 6.0);
        let samples: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let kept = SpeechTimeline::concatenate(&samples, &[16_000..32_000, 64_000..80_000]);
        assert_eq!(kept.len(), 32_000);
        assert_eq!(kept[16_000], 64_000.0);
    }
}
