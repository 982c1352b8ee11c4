//! Sample-rate conversion (e.g. 44.1/48 kHz → Whisper's 16 kHz).
//!
//! rubato's synchronous FFT resampler: exact rational ratio, band-limited (no
//! aliasing from the 48 → 16 kHz decimation), no drift. Its group delay is
//! trimmed so output sample `i` lines up with input time `i / to_rate`, and the
//! output has `round(n · to / from)` samples.

use rubato::{FftFixedInOut, Resampler};

use crate::{Error, Result};

/// Highest rate we accept; real audio stays far below, garbage headers do not.
const MAX_RATE: u32 = 1_536_000;

/// Input frames per FFT block (rubato rounds up to a multiple of the ratio's numerator).
const CHUNK_FRAMES: usize = 1024;

/// Resamples mono `samples` from `from_rate` to `to_rate` Hz.
pub fn resample(samples: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>> {
    for (name, rate) in [("source", from_rate), ("target", to_rate)] {
        if rate == 0 || rate > MAX_RATE {
            return Err(Error::invalid(format!(
                "{name} sample rate must be in 1..={MAX_RATE} Hz, got {rate}"
            )));
        }
    }
    if from_rate == to_rate || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let wanted = output_len(samples.len(), from_rate, to_rate);
    let mut resampler =
        FftFixedInOut::<f32>::new(from_rate as usize, to_rate as usize, CHUNK_FRAMES, 1).map_err(
            |e| Error::invalid(format!("cannot resample {from_rate} → {to_rate} Hz: {e}")),
        )?;
    let delay = resampler.output_delay();
    let chunk_in = resampler.input_frames_next();
    let mut block_in = vec![vec![0.0f32; chunk_in]];
    let mut block_out = resampler.output_buffer_allocate(true);
    let mut out = Vec::with_capacity(delay + wanted + block_out[0].len());
    let mut pos = 0;
    // Past the end the input is zero-padded, which also flushes the filter's delay.
    while out.len() < delay + wanted {
        let take = samples.len().saturating_sub(pos).min(chunk_in);
        block_in[0][..take].copy_from_slice(&samples[pos..pos + take]);
        block_in[0][take..].fill(0.0);
        pos += take;
        let (_, written) = resampler
            .process_into_buffer(&block_in, &mut block_out, None)
            .map_err(|e| Error::invalid(format!("resampling failed: {e}")))?;
        out.extend_from_slice(&block_out[0][..written]);
    }
    out.drain(..delay);
    out.truncate(wanted);
    Ok(out)
}

/// `round(len · to / from)` without overflow.
fn output_len(len: usize, from_rate: u32, to_rate: u32) -> usize {
    let num = len as u128 * u128::from(to_rate) + u128::from(from_rate) / 2;
    (num / u128::from(from_rate)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn length_is_rounded_ratio() {
        assert_eq!(output_len(68545, 48_000, 16_000), 22848);
        assert_eq!(output_len(541184, 44_100, 16_000), 196348);
        let out = resample(&vec![0.0; 68545], 48_000, 16_000).unwrap();
        assert_eq!(out.len(), 22848);
    }

    #[test]
    fn keeps_in_band_tone_aligned() {
        let input = sine(440.0, 48_000, 48_000);
        let out = resample(&input, 48_000, 16_000).unwrap();
        let expected = sine(440.0, 16_000, 16_000);
        assert_eq!(out.len(), expected.len());
        // Skip the edges, where the filter sees the zero padding.
        let max_err = out[200..15_800]
            .iter()
            .zip(&expected[200..15_800])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 1e-2, "max error {max_err}");
    }

    #[test]
    fn removes_tones_above_new_nyquist() {
        // 10 kHz is above 16 kHz's Nyquist (8 kHz): must not alias into the output.
        let out = resample(&sine(10_000.0, 48_000, 48_000), 48_000, 16_000).unwrap();
        let rms = (out[200..15_800].iter().map(|x| x * x).sum::<f32>() / 15_600.0).sqrt();
        assert!(rms < 0.01, "rms {rms}");
    }

    #[test]
    fn rejects_zero_rate() {
        let err = resample(&[0.0; 10], 0, 16_000).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidArgument);
    }
}
