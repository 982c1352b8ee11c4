//! Audio front end shared by every speech model: decode any supported file or
//! buffer to mono `f32`, and resample it to the rate a model wants.

pub mod decode;
pub mod mp4_edits;
pub mod resample;
mod wav;

use std::path::PathBuf;

pub use decode::{decode_bytes, decode_file, DecodedAudio};
pub use resample::resample;

use crate::{Error, Result};

/// Where audio comes from.
#[derive(Debug, Clone)]
pub enum AudioInput {
    /// A file on disk in any supported container/codec.
    File(PathBuf),
    /// The bytes of an encoded file (e.g. a Node `Buffer` holding an MP3).
    Encoded(Vec<u8>),
    /// Raw mono PCM in [-1, 1] at `sample_rate` Hz.
    Pcm { samples: Vec<f32>, sample_rate: u32 },
}

/// Peak beyond which PCM is rejected rather than clipped: float audio may
/// overshoot [-1, 1] a little (mixing, resampling); values far beyond are
/// unscaled integer samples or garbage, which would only make the model
/// hallucinate for minutes.
pub const PCM_CLIP_LIMIT: f32 = 2.0;

/// Checks raw PCM: non-finite samples or samples beyond ±[`PCM_CLIP_LIMIT`]
/// are `ERR_INVALID_ARG`; samples in (1, 2] are clipped to ±1.
pub fn check_pcm(mut samples: Vec<f32>) -> Result<Vec<f32>> {
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Err(Error::invalid(format!("PCM sample {i} is not finite")));
    }
    if let Some(i) = samples.iter().position(|s| s.abs() > PCM_CLIP_LIMIT) {
        return Err(Error::invalid(format!(
            "PCM sample {i} is {}: samples must be in [-1, 1] (16-bit integer PCM must be \
             divided by 32768)",
            samples[i]
        )));
    }
    for s in samples.iter_mut() {
        *s = s.clamp(-1.0, 1.0);
    }
    Ok(samples)
}

/// Decodes (if needed), down-mixes and resamples `input` to mono at `rate` Hz.
pub fn load_mono(input: AudioInput, rate: u32) -> Result<Vec<f32>> {
    let (samples, source_rate) = match input {
        AudioInput::File(path) => {
            let audio = decode_file(&path)?;
            (audio.samples, audio.sample_rate)
        }
        AudioInput::Encoded(bytes) => {
            let audio = decode_bytes(bytes)?;
            (audio.samples, audio.sample_rate)
        }
        AudioInput::Pcm {
            samples,
            sample_rate,
        } => (check_pcm(samples)?, sample_rate),
    };
    resample(&samples, source_rate, rate)
}
