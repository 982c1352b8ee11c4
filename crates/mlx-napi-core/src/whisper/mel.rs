//! Whisper's log-mel front end, computed on the MLX device.
//!
//! The same recipe as openai-whisper / mlx-whisper: 16 kHz mono samples, periodic
//! Hann window of 400, hop 160, reflect padding of 200 samples at both ends,
//! |rfft|², the last frame dropped, a Slaney mel filter bank (built here, on the
//! host, once per bin count), `log10(max(x, 1e-10))`, a dynamic range of 8
//! (`max(x, max(x) − 8)`), and `(x + 4) / 4`.
//!
//! Layout: frames × mels (channels last), what the encoder's `conv1d` consumes.

use mlx_rs::{
    fft::rfft,
    ops::{self, indexing::TryIndexOp},
    Array,
};

use crate::{Error, Result};

pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 400;
pub const HOP_LENGTH: usize = 160;
/// Samples in one 30 s window.
pub const CHUNK_SAMPLES: usize = 30 * SAMPLE_RATE as usize;
/// Mel frames in one 30 s window.
pub const N_FRAMES: usize = CHUNK_SAMPLES / HOP_LENGTH;
/// Frequency bins of a real FFT of `N_FFT` samples.
pub const N_FREQS: usize = N_FFT / 2 + 1;
/// Frames transformed per chunk (60 s of audio).
const FRAMES_PER_CHUNK: usize = 6000;

/// Slaney-style mel filter bank (librosa `filters.mel(sr, n_fft, n_mels)` with
/// `htk=False, norm="slaney"`, fmin 0, fmax sr/2): `n_mels` rows of `n_fft/2 + 1`
/// triangular weights, each normalized to unit area, row-major.
pub fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_freqs = n_fft / 2 + 1;
    let nyquist = f64::from(sample_rate) / 2.0;
    let fft_freqs: Vec<f64> = (0..n_freqs)
        .map(|k| k as f64 * f64::from(sample_rate) / n_fft as f64)
        .collect();
    let (mel_lo, mel_hi) = (hz_to_mel(0.0), hz_to_mel(nyquist));
    // n_mels + 2 band edges evenly spaced on the mel scale.
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_lo + (mel_hi - mel_lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0.0f32; n_mels * n_freqs];
    for m in 0..n_mels {
        let (left, center, right) = (edges[m], edges[m + 1], edges[m + 2]);
        // Unit area: a triangle of base (right − left) with height 2 / base.
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let rising = (f - left) / (center - left);
            let falling = (right - f) / (right - center);
            let w = rising.min(falling).max(0.0);
            weights[m * n_freqs + k] = (w * norm) as f32;
        }
    }
    weights
}

// Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
const MEL_LINEAR_STEP_HZ: f64 = 200.0 / 3.0;
const MEL_LOG_START_HZ: f64 = 1000.0;
const MEL_LOG_START: f64 = MEL_LOG_START_HZ / MEL_LINEAR_STEP_HZ;

fn mel_log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MEL_LOG_START_HZ {
        MEL_LOG_START + (hz / MEL_LOG_START_HZ).ln() / mel_log_step()
    } else {
        hz / MEL_LINEAR_STEP_HZ
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MEL_LOG_START {
        MEL_LOG_START_HZ * ((mel - MEL_LOG_START) * mel_log_step()).exp()
    } else {
        mel * MEL_LINEAR_STEP_HZ
    }
}

/// Periodic Hann window (`scipy.signal.get_window("hann", n)` / torch `hann_window(n)`).
fn hann_window(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

/// The front end for one mel-bin count (80 for most Whisper models, 128 for large-v3).
pub struct LogMel {
    n_mels: usize,
    /// `[N_FREQS, n_mels]`: the filter bank transposed for `power @ filters`.
    filters_t: Array,
    window: Array,
}

impl LogMel {
    pub fn new(n_mels: usize) -> Result<Self> {
        if n_mels == 0 || n_mels > 512 {
            return Err(Error::invalid(format!(
                "mel bin count must be in 1..=512, got {n_mels}"
            )));
        }
        let bank = mel_filters(SAMPLE_RATE, N_FFT, n_mels);
        let filters_t = Array::from_slice(&bank, &[n_mels as i32, N_FREQS as i32]).t();
        let window = Array::from_slice(&hann_window(N_FFT), &[N_FFT as i32]);
        Ok(LogMel {
            n_mels,
            filters_t,
            window,
        })
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Log-mel spectrogram of `samples` (16 kHz mono) followed by `padding` zeros:
    /// `(samples.len() + padding) / HOP_LENGTH` frames × `n_mels`, float32.
    ///
    /// `padding = CHUNK_SAMPLES` gives what `transcribe()` slices its 30 s windows
    /// from; the dynamic-range floor is relative to the maximum over all frames.
    pub fn compute(&self, samples: &[f32], padding: usize) -> Result<Array> {
        let total = samples.len() + padding;
        if total <= N_FFT / 2 {
            return Err(Error::invalid(format!(
                "need more than {} samples for a spectrogram, got {total}",
                N_FFT / 2
            )));
        }
        let total_i32 = i32::try_from(total)
            .map_err(|_| Error::invalid(format!("audio too long: {total} samples")))?;
        let audio = Array::from_slice(samples, &[samples.len() as i32]);
        let audio = if padding > 0 {
            ops::concatenate(&[audio, ops::zeros::<f32>(&[padding as i32])?], 0)?
        } else {
            audio
        };
        let padded = reflect_pad(&audio, total_i32, (N_FFT / 2) as i32)?;
        // (total + N_FFT − N_FFT) / HOP + 1 frames fit; the last one only exists
        // because of the right-hand padding and is dropped (as the reference does).
        let n_frames = total / HOP_LENGTH;
        // Frames → power spectrum → mel in chunks, so long audio never holds its
        // whole complex spectrogram at once.
        let mut mel_chunks = Vec::new();
        for start in (0..n_frames).step_by(FRAMES_PER_CHUNK) {
            let len = (n_frames - start).min(FRAMES_PER_CHUNK);
            let frames = ops::as_strided(
                &padded,
                &[len as i32, N_FFT as i32][..],
                &[HOP_LENGTH as i64, 1][..],
                start * HOP_LENGTH,
            )?;
            let spectrum = rfft(frames.multiply(&self.window)?, None, -1)?;
            let power = spectrum.abs()?.square()?;
            mel_chunks.push(ops::matmul(&power, &self.filters_t)?);
        }
        let mel = ops::concatenate(&mel_chunks, 0)?;
        let log_mel = ops::maximum(&mel, Array::from_f32(1e-10))?.log10()?;
        let floor = log_mel.max(None)?.subtract(Array::from_f32(8.0))?;
        let log_mel = ops::maximum(&log_mel, &floor)?;
        Ok(log_mel
            .add(Array::from_f32(4.0))?
            .divide(Array::from_f32(4.0))?)
    }
}

/// `numpy.pad(x, width, mode="reflect")` for a 1-D array of length `len`: the
/// `width` samples after the first and before the last, mirrored.
fn reflect_pad(x: &Array, len: i32, width: i32) -> Result<Array> {
    if len <= width {
        return Err(Error::invalid(format!(
            "reflect padding of {width} needs more than {width} samples, got {len}"
        )));
    }
    let head: Vec<i32> = (1..=width).rev().collect();
    let tail: Vec<i32> = (len - 1 - width..len - 1).rev().collect();
    let head = x.take(Array::from_slice(&head, &[width]))?;
    let tail = x.take(Array::from_slice(&tail, &[width]))?;
    Ok(ops::concatenate(&[head, x.clone(), tail], 0)?)
}

/// One 30 s encoder window: `N_FRAMES` mel frames starting at `start`, taking at
/// most `content` frames from `mel` and zero-filling the rest, as
/// openai-whisper's `transcribe()` does (the zeros are not the log floor).
pub fn window_frames(mel: &Array, start: usize, content: usize) -> Result<Array> {
    let n_mels = mel.dim(-1);
    let available = (mel.dim(0) as usize).saturating_sub(start);
    let take = content.min(N_FRAMES).min(available);
    let body = mel.try_index(start as i32..(start + take) as i32)?;
    if take == N_FRAMES {
        return Ok(body);
    }
    let zeros = ops::zeros::<f32>(&[(N_FRAMES - take) as i32, n_mels])?;
    Ok(ops::concatenate(&[body, zeros], 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hann_is_periodic() {
        let w = hann_window(400);
        assert_eq!(w[0], 0.0);
        assert!((w[200] - 1.0).abs() < 1e-7);
        assert!((w[100] - 0.5).abs() < 1e-6);
        assert!((w[1] - w[399]).abs() < 1e-7);
    }

    #[test]
    fn mel_scale_round_trips() {
        for hz in [0.0, 300.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }

    #[test]
    fn frames_and_reflect_padding() {
        let x = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0], &[5]);
        let padded = reflect_pad(&x, 5, 2).unwrap();
        assert_eq!(
            padded.as_slice::<f32>(),
            &[3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0]
        );
        let mel = LogMel::new(80)
            .unwrap()
            .compute(&vec![0.1; 16_000], 0)
            .unwrap();
        assert_eq!(mel.shape(), &[100, 80]);
    }
}
