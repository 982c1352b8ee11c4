//! Silero VAD v6 (16 kHz), ported from its ONNX graph (see `assets/PROVENANCE.md`).
//!
//! Per 512-sample chunk, with the previous chunk's last 64 samples in front (576):
//! reflect-pad 64 on the right, 4 STFT frames (periodic Hann window 256, hop 128),
//! magnitude `[4, 129]`, four conv1d with ReLU (kernel 3, padding 1, strides
//! 1, 2, 2, 1) down to `[1, 128]`, an LSTM cell (hidden 128, state carried from
//! chunk to chunk), ReLU, a 1×1 conv and a sigmoid: the chunk's speech
//! probability. The ONNX graph's STFT multiplies by a stored basis; the
//! conversion script checks that it is exactly the windowed DFT, so a real FFT
//! gives the same magnitudes at a twentieth of the work.
//!
//! Split by measurement on the 2-core CPU: everything before the LSTM is
//! independent per chunk and runs batched as MLX ops (one graph for up to
//! [`BATCH_CHUNKS`] chunks, including the LSTM's input projection); the recurrence
//! itself (a 512×128 mat-vec per chunk) runs in plain Rust on the host: ~5 % of
//! the total there, where per-step MLX ops would cost several op launches per
//! 32 ms chunk. The convolutions are a gather + matmul (im2col), ~2× faster than
//! MLX's `conv1d` on its CPU backend at these 1–4-frame lengths.

use std::{collections::HashMap, ops::Range};

use mlx_rs::{fft::rfft, ops, Array};

use crate::{Error, Result};

/// Samples per chunk (Silero's 16 kHz window).
pub const CHUNK: usize = 512;
/// Samples of the previous chunk prepended to each chunk.
pub const CONTEXT: usize = 64;
const HIDDEN: usize = 128;
const FREQS: usize = 129;
const FRAME: usize = 256;
const HOP: usize = 128;
const FRAMES: usize = 4;
/// Chunks per device batch (≈ 65 s of audio, ~8 MiB of frames): bounds memory on
/// long files without costing throughput.
pub const BATCH_CHUNKS: usize = 2048;

/// The converted weights, embedded so an installed addon needs no extra file.
static WEIGHTS: &[u8] = include_bytes!("../../assets/silero_vad_v6.safetensors");

/// Name → (shape, values).
type HostTensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Float32 tensors of a safetensors file held in memory.
fn parse_safetensors(bytes: &[u8]) -> Result<HostTensors> {
    let bad = |why: &str| Error::format(format!("embedded Silero VAD weights: {why}"));
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| bad("truncated"))?;
    let header: serde_json::Value = bytes
        .get(8..8 + header_len)
        .ok_or_else(|| bad("truncated header"))
        .and_then(|h| serde_json::from_slice(h).map_err(|e| bad(&e.to_string())))?;
    let data = &bytes[8 + header_len..];
    let mut tensors = HashMap::new();
    for (name, info) in header.as_object().ok_or_else(|| bad("header"))? {
        if name == "__metadata__" {
            continue;
        }
        if info["dtype"] != "F32" {
            return Err(bad(&format!("{name} is not F32")));
        }
        let shape: Vec<usize> =
            serde_json::from_value(info["shape"].clone()).map_err(|e| bad(&e.to_string()))?;
        let [start, end]: [usize; 2] = serde_json::from_value(info["data_offsets"].clone())
            .map_err(|e| bad(&e.to_string()))?;
        let raw = data.get(start..end).ok_or_else(|| bad("offsets"))?;
        if raw.len() != 4 * shape.iter().product::<usize>() {
            return Err(bad(&format!("{name} has the wrong size")));
        }
        let values = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        tensors.insert(name.clone(), (shape, values));
    }
    Ok(tensors)
}

/// Kernel 3, padding 1, as one gather (im2col) and one matmul: on MLX's CPU
/// backend that is several times faster than `conv1d` for these tiny lengths.
struct ConvLayer {
    /// `[3 × in, out]`, row `k × in + c` (tap k, input channel c).
    weight: Array,
    bias: Array,
    /// Positions of the zero-padded input each output row gathers: `[out_len × 3]`.
    taps: Array,
    out_len: i32,
    input: i32,
}

impl ConvLayer {
    /// `x`: `[n, len, in]` → `[n, out_len, out]`, ReLU applied.
    fn forward(&self, x: &Array, n: i32) -> Result<Array> {
        let edge = Array::zeros::<f32>(&[n, 1, self.input])?;
        let padded = ops::concatenate(&[&edge, x, &edge], 1)?;
        let columns =
            padded
                .take_axis(&self.taps, 1)?
                .reshape(&[n, self.out_len, 3 * self.input])?;
        let y = columns.matmul(&self.weight)?.add(&self.bias)?;
        Ok(ops::maximum(&y, Array::from_f32(0.0))?)
    }
}

/// The network, ready to run; build it with [`SileroVad::new`] (about a
/// millisecond: it parses the embedded weights).
pub struct SileroVad {
    /// Periodic Hann window, `[256]`.
    window: Array,
    convs: Vec<ConvLayer>,
    /// `[128, 512]` and `[512]` (both LSTM biases summed).
    weight_ih_t: Array,
    bias: Array,
    /// `[512 × 128]` row-major, gates i, f, g, o.
    weight_hh: Vec<f32>,
    decoder_weight: Vec<f32>,
    decoder_bias: f32,
}

impl SileroVad {
    pub fn new() -> Result<Self> {
        let mut tensors = parse_safetensors(WEIGHTS)?;
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            match tensors.remove(name) {
                Some((s, v)) if s == shape => Ok(v),
                Some((s, _)) => Err(Error::format(format!(
                    "embedded Silero VAD weights: {name} has shape {s:?}, expected {shape:?}"
                ))),
                None => Err(Error::format(format!(
                    "embedded Silero VAD weights: {name} is missing"
                ))),
            }
        };
        let window: Vec<f32> = (0..FRAME)
            .map(|i| (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / FRAME as f64).cos()) as f32)
            .collect();
        let mut convs = Vec::new();
        let mut len = FRAMES;
        for (i, (input, output, stride)) in
            [(FREQS, 128, 1), (128, 64, 2), (64, 64, 2), (64, 128, 1)]
                .into_iter()
                .enumerate()
        {
            // PyTorch's [out, in, k] → [k × in + c, out].
            let w = take(&format!("encoder.{i}.weight"), &[output, input, 3])?;
            let mut columns = vec![0f32; w.len()];
            for o in 0..output {
                for c in 0..input {
                    for k in 0..3 {
                        columns[(k * input + c) * output + o] = w[(o * input + c) * 3 + k];
                    }
                }
            }
            let out_len = (len + 2 - 3) / stride + 1;
            let taps: Vec<i32> = (0..out_len)
                .flat_map(|t| (0..3).map(move |k| (t * stride + k) as i32))
                .collect();
            convs.push(ConvLayer {
                weight: Array::from_slice(&columns, &[3 * input as i32, output as i32]),
                bias: Array::from_slice(
                    &take(&format!("encoder.{i}.bias"), &[output])?,
                    &[output as i32],
                ),
                taps: Array::from_slice(&taps, &[taps.len() as i32]),
                out_len: out_len as i32,
                input: input as i32,
            });
            len = out_len;
        }
        let weight_ih = take("decoder.rnn.weight_ih", &[4 * HIDDEN, HIDDEN])?;
        let mut weight_ih_t = vec![0f32; weight_ih.len()];
        for (g, row) in weight_ih.chunks_exact(HIDDEN).enumerate() {
            for (k, v) in row.iter().enumerate() {
                weight_ih_t[k * 4 * HIDDEN + g] = *v;
            }
        }
        let bias: Vec<f32> = take("decoder.rnn.bias_ih", &[4 * HIDDEN])?
            .iter()
            .zip(take("decoder.rnn.bias_hh", &[4 * HIDDEN])?)
            .map(|(a, b)| a + b)
            .collect();
        Ok(SileroVad {
            window: Array::from_slice(&window, &[FRAME as i32]),
            convs,
            weight_ih_t: Array::from_slice(&weight_ih_t, &[HIDDEN as i32, 4 * HIDDEN as i32]),
            bias: Array::from_slice(&bias, &[4 * HIDDEN as i32]),
            weight_hh: take("decoder.rnn.weight_hh", &[4 * HIDDEN, HIDDEN])?,
            decoder_weight: take("decoder.weight", &[HIDDEN])?,
            decoder_bias: take("decoder.bias", &[1])?[0],
        })
    }

    /// Speech probability of every 512-sample chunk of 16 kHz `samples`, as
    /// faster-whisper computes them: the audio is zero-padded to a whole number
    /// of chunks plus one (always at least one padding sample), and the last
    /// chunk's final 64 samples are zeroed (a quirk of its context handling,
    /// kept so the probabilities match). `check` runs between device batches
    /// (cancellation).
    pub fn probabilities(
        &self,
        samples: &[f32],
        mut check: impl FnMut() -> Result<()>,
    ) -> Result<Vec<f32>> {
        let n_chunks = samples.len() / CHUNK + 1;
        let chunk_sample = |c: usize, i: usize| -> f32 {
            if c == n_chunks - 1 && i >= CHUNK - CONTEXT {
                0.0
            } else {
                samples.get(c * CHUNK + i).copied().unwrap_or(0.0)
            }
        };
        let mut state = LstmState::default();
        let mut probs = Vec::with_capacity(n_chunks);
        let mut input = vec![0f32; CONTEXT + CHUNK + CONTEXT];
        for batch in chunk_ranges(n_chunks) {
            check()?;
            let mut frames = Vec::with_capacity(batch.len() * FRAMES * FRAME);
            for c in batch.clone() {
                // [previous 64 | chunk 512 | reflection of the chunk's end 64]
                for (i, v) in input[..CONTEXT].iter_mut().enumerate() {
                    *v = if c == 0 {
                        0.0
                    } else {
                        chunk_sample(c - 1, CHUNK - CONTEXT + i)
                    };
                }
                for i in 0..CHUNK {
                    input[CONTEXT + i] = chunk_sample(c, i);
                }
                let n = CONTEXT + CHUNK;
                for i in 0..CONTEXT {
                    input[n + i] = input[n - 2 - i];
                }
                for f in 0..FRAMES {
                    frames.extend_from_slice(&input[f * HOP..f * HOP + FRAME]);
                }
            }
            let gates = self.input_gates(&frames, batch.len())?;
            for row in gates.chunks_exact(4 * HIDDEN) {
                probs.push(self.step(&mut state, row));
            }
        }
        Ok(probs)
    }

    /// Device part for `n` chunks' frames `[n, 4, 256]`: STFT magnitude, the
    /// encoder and the LSTM's input projection → host `[n, 512]`.
    fn input_gates(&self, frames: &[f32], n: usize) -> Result<Vec<f32>> {
        let x = Array::from_slice(frames, &[n as i32, FRAMES as i32, FRAME as i32]);
        let mut h = rfft(&x.multiply(&self.window)?, FRAME as i32, -1)?.abs()?;
        for conv in &self.convs {
            h = conv.forward(&h, n as i32)?;
        }
        let gates = h
            .reshape(&[n as i32, HIDDEN as i32])?
            .matmul(&self.weight_ih_t)?
            .add(&self.bias)?;
        gates.eval()?;
        gates
            .try_as_slice::<f32>()
            .map(<[f32]>::to_vec)
            .map_err(|e| Error::Mlx(e.to_string()))
    }

    /// One LSTM step (PyTorch's cell, gates i, f, g, o) and the decoder.
    fn step(&self, state: &mut LstmState, input_gates: &[f32]) -> f32 {
        let mut gates = [0f32; 4 * HIDDEN];
        for ((g, w), x) in gates
            .iter_mut()
            .zip(self.weight_hh.chunks_exact(HIDDEN))
            .zip(input_gates)
        {
            *g = x + dot(w, &state.h);
        }
        let mut out = self.decoder_bias;
        for j in 0..HIDDEN {
            let i = sigmoid(gates[j]);
            let f = sigmoid(gates[HIDDEN + j]);
            let g = gates[2 * HIDDEN + j].tanh();
            let o = sigmoid(gates[3 * HIDDEN + j]);
            state.c[j] = f * state.c[j] + i * g;
            state.h[j] = o * state.c[j].tanh();
            out += state.h[j].max(0.0) * self.decoder_weight[j];
        }
        sigmoid(out)
    }
}

#[derive(Clone)]
struct LstmState {
    h: [f32; HIDDEN],
    c: [f32; HIDDEN],
}

impl Default for LstmState {
    fn default() -> Self {
        LstmState {
            h: [0.0; HIDDEN],
            c: [0.0; HIDDEN],
        }
    }
}

fn chunk_ranges(n: usize) -> impl Iterator<Item = Range<usize>> {
    (0..n)
        .step_by(BATCH_CHUNKS)
        .map(move |s| s..(s + BATCH_CHUNKS).min(n))
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Eight running sums so the compiler vectorizes it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum()
}
