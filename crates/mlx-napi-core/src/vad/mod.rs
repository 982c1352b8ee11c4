//! Voice activity detection: Silero VAD v6 run in-process, and the speech-range
//! rules of faster-whisper's `vad_filter`.
//!
//! * [`model`]: the network (embedded weights, MLX for the per-chunk encoder,
//!   host Rust for the LSTM recurrence) → one speech probability per 32 ms chunk;
//! * [`segments`]: probabilities → speech sample ranges (thresholds with
//!   hysteresis, minimum speech / silence, maximum length, padding);
//! * [`timeline`]: the speech-only audio handed to Whisper and the map from its
//!   timeline back to the original's.
//!
//! Only 16 kHz mono input (what the Whisper front end produces).

pub mod model;
pub mod segments;
pub mod timeline;

use std::ops::Range;

pub use model::SileroVad;
pub use timeline::SpeechTimeline;

use crate::{Error, Result};

/// Sample rate the detector works at.
pub const SAMPLE_RATE: u32 = 16_000;

/// How speech is told from silence; `Default` = faster-whisper's `vad_filter`
/// settings for Whisper, with Silero's 250 ms minimum speech.
#[derive(Debug, Clone, PartialEq)]
pub struct VadOptions {
    /// A chunk with a speech probability at or above this starts / continues speech.
    pub threshold: f32,
    /// Below this, speech ends (hysteresis); `None` = `max(threshold − 0.15, 0.01)`.
    pub neg_threshold: Option<f32>,
    /// Speech shorter than this (before padding) is dropped.
    pub min_speech_ms: f32,
    /// Silence must last this long to end a speech segment.
    pub min_silence_ms: f32,
    /// Padding added on both sides of every speech segment.
    pub speech_pad_ms: f32,
    /// Longer speech is split, at the last silence of ≥ 98 ms if there is one;
    /// `None` = no limit.
    pub max_speech_s: Option<f32>,
}

impl Default for VadOptions {
    fn default() -> Self {
        VadOptions {
            threshold: 0.5,
            neg_threshold: None,
            min_speech_ms: 250.0,
            min_silence_ms: 2000.0,
            speech_pad_ms: 400.0,
            max_speech_s: None,
        }
    }
}

impl VadOptions {
    /// The speech-end threshold actually used.
    pub fn neg_threshold(&self) -> f32 {
        self.neg_threshold
            .unwrap_or((self.threshold - 0.15).max(0.01))
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.threshold.is_finite() && self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(Error::invalid(format!(
                "vad threshold must be in (0, 1), got {}",
                self.threshold
            )));
        }
        if let Some(neg) = self.neg_threshold {
            if !(neg.is_finite() && neg >= 0.0 && neg <= self.threshold) {
                return Err(Error::invalid(format!(
                    "vad neg_threshold must be in [0, threshold = {}], got {neg}",
                    self.threshold
                )));
            }
        }
        for (name, value) in [
            ("min_speech_ms", self.min_speech_ms),
            ("min_silence_ms", self.min_silence_ms),
            ("speech_pad_ms", self.speech_pad_ms),
        ] {
            if !(0.0..=3_600_000.0).contains(&value) {
                return Err(Error::invalid(format!(
                    "vad {name} must be in [0, 3600000], got {value}"
                )));
            }
        }
        if let Some(max) = self.max_speech_s {
            // Upstream's limit is max − one chunk − both pads; it must stay positive.
            let least = (model::CHUNK as f32 / SAMPLE_RATE as f32) + 2.0 * self.speech_pad_ms / 1e3;
            if !(max.is_finite() && max > least) {
                return Err(Error::invalid(format!(
                    "vad max_speech_s must be finite and > 0.032 s + 2 × speech_pad_ms \
                     (= {least} s), got {max}"
                )));
            }
        }
        Ok(())
    }
}

/// Speech probability of each 512-sample (32 ms) chunk of 16 kHz `samples`.
pub fn speech_probabilities(samples: &[f32]) -> Result<Vec<f32>> {
    SileroVad::new()?.probabilities(samples, || Ok(()))
}

/// Sample ranges of 16 kHz mono `samples` that hold speech, in order and
/// disjoint (padding included).
pub fn speech_segments(samples: &[f32], options: &VadOptions) -> Result<Vec<Range<usize>>> {
    speech_segments_checked(samples, options, || Ok(()))
}

/// [`speech_segments`] calling `check` between device batches (cancellation).
pub fn speech_segments_checked(
    samples: &[f32],
    options: &VadOptions,
    check: impl FnMut() -> Result<()>,
) -> Result<Vec<Range<usize>>> {
    options.validate()?;
    let probs = SileroVad::new()?.probabilities(samples, check)?;
    Ok(segments::speech_ranges(&probs, samples.len(), options))
}
