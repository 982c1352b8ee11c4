//! The Whisper encoder–decoder transformer (openai-whisper's architecture).
//!
//! Encoder: log-mel `[B, 3000, n_mels]` → two 1-D convolutions with GELU (the
//! second with stride 2) → + positional embedding → pre-norm attention/MLP
//! blocks → final LayerNorm → audio features `[B, 1500, d]`.
//!
//! Decoder: tokens → token + learned positional embedding → blocks of causal
//! self-attention (shared [`KvCache`]), cross-attention over the audio features
//! and MLP → LayerNorm → logits through the token embedding (tied weights).
//!
//! Cross-attention keys/values depend only on the audio, so
//! [`Whisper::start_decoding`] computes them once per batch of windows and
//! every decoding step reuses them. Tensor names are Hugging Face's; MLX
//! checkpoints are renamed at load (see `weights.rs`).

use std::sync::atomic::AtomicBool;

use mlx_rs::{
    ops::{self, indexing::TryIndexOp},
    Array, Dtype,
};

use super::config::WhisperConfig;
use crate::{
    cache::KvCache,
    nn::{attention, fused::gelu, AttentionMask, Embedding, LayerNorm, Linear, WeightTree},
    Error, Result,
};

/// PyTorch's LayerNorm default, which Whisper was trained with.
const LAYER_NORM_EPS: f32 = 1e-5;

fn layer_norm(tree: &mut WeightTree, name: &str, dim: i32) -> Result<LayerNorm> {
    LayerNorm::load(tree, name, dim, LAYER_NORM_EPS)
}

/// Multi-head attention; the key projection has no bias (as in openai-whisper).
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    heads: i32,
}

impl Attention {
    fn load(tree: &mut WeightTree, prefix: &str, dim: i32, heads: i32) -> Result<Self> {
        Ok(Attention {
            query: Linear::load(tree, &format!("{prefix}.q_proj"), dim, dim, true)?,
            key: Linear::load(tree, &format!("{prefix}.k_proj"), dim, dim, false)?,
            value: Linear::load(tree, &format!("{prefix}.v_proj"), dim, dim, true)?,
            out: Linear::load(tree, &format!("{prefix}.out_proj"), dim, dim, true)?,
            heads,
        })
    }

    /// `[B, L, d]` → `[B, heads, L, d / heads]`.
    fn split_heads(&self, x: &Array) -> Result<Array> {
        let (b, l) = (x.dim(0), x.dim(1));
        Ok(x.reshape(&[b, l, self.heads, -1])?
            .transpose_axes(&[0, 2, 1, 3])?)
    }

    /// Keys and values of `source` `[B, L, d]`, split into heads.
    fn keys_values(&self, source: &Array) -> Result<(Array, Array)> {
        Ok((
            self.split_heads(&self.key.forward(source)?)?,
            self.split_heads(&self.value.forward(source)?)?,
        ))
    }

    /// Attention of `x`'s queries over `keys`/`values` (already split into heads).
    fn attend(
        &self,
        x: &Array,
        keys: &Array,
        values: &Array,
        mask: &AttentionMask,
    ) -> Result<Array> {
        let queries = self.split_heads(&self.query.forward(x)?)?;
        let head_dim = queries.dim(-1);
        let scale = 1.0 / (head_dim as f32).sqrt();
        let mixed = attention(&queries, keys, values, scale, mask)?;
        let (b, l) = (x.dim(0), x.dim(1));
        let merged = mixed.transpose_axes(&[0, 2, 1, 3])?.reshape(&[b, l, -1])?;
        self.out.forward(&merged)
    }

    /// Self-attention, appending this chunk's keys/values to `cache` when given.
    fn self_attention(
        &self,
        x: &Array,
        cache: Option<&mut KvCache>,
        mask: &AttentionMask,
    ) -> Result<Array> {
        let (keys, values) = self.keys_values(x)?;
        let (keys, values) = match cache {
            Some(cache) => cache.update_and_fetch(&keys, &values)?,
            None => (keys, values),
        };
        self.attend(x, &keys, &values, mask)
    }
}

/// Feed-forward `fc2(gelu(fc1(x)))`.
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn load(tree: &mut WeightTree, prefix: &str, dim: i32, hidden: i32) -> Result<Self> {
        Ok(Mlp {
            fc1: Linear::load(tree, &format!("{prefix}.fc1"), dim, hidden, true)?,
            fc2: Linear::load(tree, &format!("{prefix}.fc2"), hidden, dim, true)?,
        })
    }

    fn forward(&self, x: &Array) -> Result<Array> {
        self.fc2.forward(&gelu(&self.fc1.forward(x)?)?)
    }
}

struct EncoderLayer {
    self_attn: Attention,
    self_attn_norm: LayerNorm,
    mlp: Mlp,
    mlp_norm: LayerNorm,
}

impl EncoderLayer {
    fn load(tree: &mut WeightTree, prefix: &str, c: &WhisperConfig) -> Result<Self> {
        let (dim, heads) = (c.n_audio_state as i32, c.n_audio_head as i32);
        Ok(EncoderLayer {
            self_attn: Attention::load(tree, &format!("{prefix}.self_attn"), dim, heads)?,
            self_attn_norm: layer_norm(tree, &format!("{prefix}.self_attn_layer_norm"), dim)?,
            mlp: Mlp::load(tree, prefix, dim, c.n_audio_ffn as i32)?,
            mlp_norm: layer_norm(tree, &format!("{prefix}.final_layer_norm"), dim)?,
        })
    }

    fn forward(&self, x: &Array) -> Result<Array> {
        let h = self.self_attn_norm.forward(x)?;
        let x = x.add(
            self.self_attn
                .self_attention(&h, None, &AttentionMask::None)?,
        )?;
        Ok(x.add(self.mlp.forward(&self.mlp_norm.forward(&x)?)?)?)
    }
}

struct DecoderLayer {
    self_attn: Attention,
    self_attn_norm: LayerNorm,
    cross_attn: Attention,
    cross_attn_norm: LayerNorm,
    mlp: Mlp,
    mlp_norm: LayerNorm,
}

impl DecoderLayer {
    fn load(tree: &mut WeightTree, prefix: &str, c: &WhisperConfig) -> Result<Self> {
        let (dim, heads) = (c.n_text_state as i32, c.n_text_head as i32);
        Ok(DecoderLayer {
            self_attn: Attention::load(tree, &format!("{prefix}.self_attn"), dim, heads)?,
            self_attn_norm: layer_norm(tree, &format!("{prefix}.self_attn_layer_norm"), dim)?,
            cross_attn: Attention::load(tree, &format!("{prefix}.encoder_attn"), dim, heads)?,
            cross_attn_norm: layer_norm(tree, &format!("{prefix}.encoder_attn_layer_norm"), dim)?,
            mlp: Mlp::load(tree, prefix, dim, c.n_text_ffn as i32)?,
            mlp_norm: layer_norm(tree, &format!("{prefix}.final_layer_norm"), dim)?,
        })
    }

    fn forward(
        &self,
        x: &Array,
        cache: &mut KvCache,
        cross: &(Array, Array),
        mask: &AttentionMask,
    ) -> Result<Array> {
        let h = self.self_attn_norm.forward(x)?;
        let x = x.add(self.self_attn.self_attention(&h, Some(cache), mask)?)?;
        let h = self.cross_attn_norm.forward(&x)?;
        let x = x.add(
            self.cross_attn
                .attend(&h, &cross.0, &cross.1, &AttentionMask::None)?,
        )?;
        Ok(x.add(self.mlp.forward(&self.mlp_norm.forward(&x)?)?)?)
    }
}

/// 1-D convolution over `[B, L, C_in]` with an MLX-layout weight `[C_out, K, C_in]`.
struct Conv1d {
    weight: Array,
    bias: Array,
    stride: i32,
}

impl Conv1d {
    fn load(
        tree: &mut WeightTree,
        prefix: &str,
        input: i32,
        output: i32,
        stride: i32,
    ) -> Result<Self> {
        Ok(Conv1d {
            weight: tree.take_shaped(&format!("{prefix}.weight"), &[output, 3, input])?,
            bias: tree.take_shaped(&format!("{prefix}.bias"), &[output])?,
            stride,
        })
    }

    fn forward(&self, x: &Array) -> Result<Array> {
        // Kernel 3 with padding 1: "same" length (halved by stride 2).
        Ok(ops::conv1d(x, &self.weight, self.stride, 1, 1, 1)?.add(&self.bias)?)
    }
}

struct Encoder {
    conv1: Conv1d,
    conv2: Conv1d,
    /// `[n_audio_ctx, d]`, sinusoidal.
    positions: Array,
    layers: Vec<EncoderLayer>,
    norm: LayerNorm,
}

impl Encoder {
    fn load(tree: &mut WeightTree, c: &WhisperConfig) -> Result<Self> {
        let dim = c.n_audio_state as i32;
        let p = "model.encoder";
        let positions = match tree.take_opt(&format!("{p}.embed_positions.weight")) {
            Some(stored) => {
                crate::nn::weight_tree::check_shape(
                    "model.encoder.embed_positions.weight",
                    &stored,
                    &[c.n_audio_ctx as i32, dim],
                )?;
                stored
            }
            // mlx-whisper does not store them: they are fixed sinusoids.
            None => sinusoids(c.n_audio_ctx, c.n_audio_state)?,
        };
        Ok(Encoder {
            conv1: Conv1d::load(tree, &format!("{p}.conv1"), c.n_mels as i32, dim, 1)?,
            conv2: Conv1d::load(tree, &format!("{p}.conv2"), dim, dim, 2)?,
            positions,
            layers: (0..c.n_audio_layer)
                .map(|i| EncoderLayer::load(tree, &format!("{p}.layers.{i}"), c))
                .collect::<Result<_>>()?,
            norm: layer_norm(tree, &format!("{p}.layer_norm"), dim)?,
        })
    }

    /// With `abort`, each layer is evaluated on its own and the flag checked
    /// in between, so a cancelled encoder pass stops within one layer.
    fn forward(&self, mel: &Array, abort: Option<&AtomicBool>) -> Result<Array> {
        let x = gelu(&self.conv1.forward(mel)?)?;
        let x = gelu(&self.conv2.forward(&x)?)?;
        let mut x = x.add(self.positions.as_dtype(x.dtype())?)?;
        for layer in &self.layers {
            if let Some(abort) = abort {
                x.eval()?;
                if abort.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(Error::Aborted);
                }
            }
            x = layer.forward(&x)?;
        }
        self.norm.forward(&x)
    }
}

/// openai-whisper's encoder positions: sin/cos of geometric timescales.
fn sinusoids(length: usize, channels: usize) -> Result<Array> {
    let half = channels / 2;
    let increment = (10_000f64).ln() / (half as f64 - 1.0).max(1.0);
    let mut table = vec![0f32; length * channels];
    for t in 0..length {
        for i in 0..half {
            let angle = t as f64 * (-increment * i as f64).exp();
            table[t * channels + i] = angle.sin() as f32;
            table[t * channels + half + i] = angle.cos() as f32;
        }
    }
    Ok(Array::from_slice(&table, &[length as i32, channels as i32]))
}

struct Decoder {
    embed_tokens: Embedding,
    /// `[n_text_ctx, d]`, learned.
    positions: Array,
    layers: Vec<DecoderLayer>,
    norm: LayerNorm,
    /// A separate output projection when the checkpoint has one; else tied.
    output: Option<Linear>,
}

impl Decoder {
    fn load(tree: &mut WeightTree, c: &WhisperConfig) -> Result<Self> {
        let dim = c.n_text_state as i32;
        let p = "model.decoder";
        let output = if tree.contains("proj_out.weight") || tree.contains("proj_out.scales") {
            Some(Linear::load(
                tree,
                "proj_out",
                dim,
                c.n_vocab as i32,
                false,
            )?)
        } else {
            None
        };
        Ok(Decoder {
            embed_tokens: Embedding::load(
                tree,
                &format!("{p}.embed_tokens"),
                c.n_vocab as i32,
                dim,
            )?,
            positions: tree.take_shaped(
                &format!("{p}.embed_positions.weight"),
                &[c.n_text_ctx as i32, dim],
            )?,
            layers: (0..c.n_text_layer)
                .map(|i| DecoderLayer::load(tree, &format!("{p}.layers.{i}"), c))
                .collect::<Result<_>>()?,
            norm: layer_norm(tree, &format!("{p}.layer_norm"), dim)?,
            output,
        })
    }

    fn forward(&self, tokens: &Array, state: &mut DecoderState) -> Result<Array> {
        let (len, offset) = (tokens.dim(1), state.offset());
        let ctx = self.positions.dim(0);
        if offset + len > ctx {
            return Err(Error::invalid(format!(
                "decoder context overflow: {} tokens exceed the model's {ctx} positions",
                offset + len
            )));
        }
        let (positions, mask) = match &state.padding {
            None => (
                self.positions.try_index(offset..offset + len)?,
                if len > 1 {
                    AttentionMask::Causal
                } else {
                    AttentionMask::None
                },
            ),
            Some(padding) => padded_positions_and_mask(&self.positions, padding, offset, len)?,
        };
        let mut x = self.embed_tokens.forward(tokens)?.add(&positions)?;
        for ((layer, cache), cross) in self.layers.iter().zip(&mut state.caches).zip(&state.cross) {
            x = layer.forward(&x, cache, cross, &mask)?;
        }
        let x = self.norm.forward(&x)?;
        match &self.output {
            Some(output) => output.forward(&x),
            None => self.embed_tokens.as_linear(&x),
        }
    }
}

/// Positions `[B, len, d]` and attention mask for rows whose prompts were
/// left-padded to a common length: row `r`'s slot `t` is its position
/// `t − padding[r]` (so every row sees exactly what it would alone), and no
/// query sees a padded slot. Padded slots see only themselves, which keeps
/// their (unused) states finite.
fn padded_positions_and_mask(
    table: &Array,
    padding: &Array,
    offset: i32,
    len: i32,
) -> Result<(Array, AttentionMask)> {
    let batch = padding.dim(0);
    let slots = ops::arange::<_, i32>(offset, offset + len, None)?;
    let pad = padding.reshape(&[batch, 1])?;
    let index = ops::maximum(
        slots.reshape(&[1, len])?.subtract(&pad)?,
        Array::from_int(0),
    )?;
    let positions =
        table
            .take_axis(index.reshape(&[-1])?, 0)?
            .reshape(&[batch, len, table.dim(1)])?;
    let queries = slots.reshape(&[1, 1, len, 1])?;
    let keys = ops::arange::<_, i32>(0, offset + len, None)?.reshape(&[1, 1, 1, offset + len])?;
    let not_padded = keys.ge(padding.reshape(&[batch, 1, 1, 1])?)?;
    let visible = keys
        .le(&queries)?
        .logical_and(&not_padded.logical_or(keys.eq(&queries)?)?)?;
    Ok((positions, AttentionMask::Array(visible)))
}

/// What one batch of decodes carries between steps: the self-attention caches
/// and the (fixed) cross-attention keys/values of each decoder layer.
pub struct DecoderState {
    caches: Vec<KvCache>,
    cross: Vec<(Array, Array)>,
    /// `[B]` int32 slots of left padding per row, when the rows' prompts
    /// differ in length ([`DecoderState::set_padding`]); `None`: no padding.
    padding: Option<Array>,
}

impl DecoderState {
    /// Tokens processed so far (the position of the next one).
    pub fn offset(&self) -> i32 {
        self.caches.first().map_or(0, KvCache::offset)
    }

    /// Batch rows.
    pub fn batch(&self) -> i32 {
        self.cross.first().map_or(0, |(k, _)| k.dim(0))
    }

    /// Row `i` continues from row `sources[i]`'s self-attention history (beam
    /// search). Rows must keep their audio: `sources[i]` shares row `i`'s
    /// cross-attention keys/values.
    pub fn reorder(&mut self, sources: &Array) -> Result<()> {
        for cache in &mut self.caches {
            cache.select(sources)?;
        }
        if let Some(padding) = &self.padding {
            self.padding = Some(padding.take_axis(sources, 0)?);
        }
        Ok(())
    }

    /// Declares that row `r`'s first `padding[r]` slots (before any token is
    /// decoded) hold padding: they are masked out and positions count from the
    /// row's first real token. All zeros clears it.
    pub fn set_padding(&mut self, padding: &[i32]) -> Result<()> {
        if padding.len() != self.batch() as usize || self.offset() != 0 {
            return Err(Error::invalid(
                "padding is set once per row, before the first decode",
            ));
        }
        self.padding = padding
            .iter()
            .any(|&p| p != 0)
            .then(|| Array::from_slice(padding, &[padding.len() as i32]));
        Ok(())
    }
}

/// A loaded Whisper network.
pub struct Whisper {
    config: WhisperConfig,
    encoder: Encoder,
    decoder: Decoder,
    dtype: Dtype,
}

impl Whisper {
    /// Builds the network from `tree` (HF tensor names, MLX conv layout, already
    /// cast to `dtype`); every tensor must be used.
    pub fn from_weights(config: WhisperConfig, mut tree: WeightTree, dtype: Dtype) -> Result<Self> {
        let encoder = Encoder::load(&mut tree, &config)?;
        let decoder = Decoder::load(&mut tree, &config)?;
        tree.finish()?;
        Ok(Whisper {
            config,
            encoder,
            decoder,
            dtype,
        })
    }

    pub fn config(&self) -> &WhisperConfig {
        &self.config
    }

    /// The dtype activations are computed in.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Audio features `[B, n_audio_ctx, d]` of log-mel windows `[B, 3000, n_mels]`.
    pub fn encode(&self, mel: &Array) -> Result<Array> {
        self.encode_abortable(mel, None)
    }

    /// [`encode`](Self::encode), stopping with `ABORT_ERR` between layers once
    /// `abort` is set.
    pub fn encode_abortable(&self, mel: &Array, abort: Option<&AtomicBool>) -> Result<Array> {
        let expected = [
            2 * self.config.n_audio_ctx as i32,
            self.config.n_mels as i32,
        ];
        if mel.ndim() != 3 || mel.shape()[1..] != expected {
            return Err(Error::invalid(format!(
                "encoder input must be [batch, {}, {}], got {:?}",
                expected[0],
                expected[1],
                mel.shape()
            )));
        }
        self.encoder.forward(&mel.as_dtype(self.dtype)?, abort)
    }

    /// Fresh decoder state for a batch: cross-attention keys/values of
    /// `audio_features` `[B, n_audio_ctx, d]`, computed once here.
    pub fn start_decoding(&self, audio_features: &Array) -> Result<DecoderState> {
        let cross = self
            .decoder
            .layers
            .iter()
            .map(|layer| layer.cross_attn.keys_values(audio_features))
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderState {
            caches: (0..self.config.n_text_layer)
                .map(|_| KvCache::new())
                .collect(),
            cross,
            padding: None,
        })
    }

    /// Logits `[B, T, n_vocab]` for `tokens` `[B, T]` (int32) following the
    /// tokens already in `state`.
    pub fn decode(&self, tokens: &Array, state: &mut DecoderState) -> Result<Array> {
        if tokens.ndim() != 2 || tokens.dim(0) != state.batch() {
            return Err(Error::invalid(format!(
                "decoder tokens must be [{}, T], got {:?}",
                state.batch(),
                tokens.shape()
            )));
        }
        self.decoder.forward(tokens, state)
    }
}

// ---- Word-level alignment (see `alignment.rs`) -------------------------------

/// What [`Whisper::align_pass`] returns for a batch of forced token sequences.
pub struct AlignmentPass {
    /// `[B, T, n_vocab]`, float32.
    pub logits: Array,
    /// Scaled cross-attention scores `q·k/√d` (before the softmax) of the
    /// requested heads, `[B, heads, T, n_audio_ctx]`, float32.
    pub head_scores: Array,
}

impl Whisper {
    /// One decoder pass over whole sequences `tokens` `[B, T]` (no cache, causal)
    /// against `audio_features` `[B, n_audio_ctx, d]`, also returning the
    /// cross-attention scores of `heads` (`(layer, head)` pairs). The layers'
    /// outputs use the fused attention; only the requested heads' scores are
    /// computed explicitly.
    pub fn align_pass(
        &self,
        tokens: &Array,
        audio_features: &Array,
        heads: &[(usize, usize)],
    ) -> Result<AlignmentPass> {
        let decoder = &self.decoder;
        let len = tokens.dim(1);
        if tokens.ndim() != 2 || tokens.dim(0) != audio_features.dim(0) {
            return Err(Error::invalid(format!(
                "alignment tokens must be [{}, T], got {:?}",
                audio_features.dim(0),
                tokens.shape()
            )));
        }
        if len > decoder.positions.dim(0) {
            return Err(Error::invalid(format!(
                "alignment sequence of {len} tokens exceeds the decoder's {} positions",
                decoder.positions.dim(0)
            )));
        }
        let mut x = decoder
            .embed_tokens
            .forward(tokens)?
            .add(decoder.positions.try_index(0..len)?)?;
        let mask = if len > 1 {
            AttentionMask::Causal
        } else {
            AttentionMask::None
        };
        let mut scores = Vec::new();
        for (index, layer) in decoder.layers.iter().enumerate() {
            let h = layer.self_attn_norm.forward(&x)?;
            x = x.add(layer.self_attn.self_attention(&h, None, &mask)?)?;
            let h = layer.cross_attn_norm.forward(&x)?;
            let (keys, values) = layer.cross_attn.keys_values(audio_features)?;
            let wanted: Vec<i32> = heads
                .iter()
                .filter(|&&(l, _)| l == index)
                .map(|&(_, head)| head as i32)
                .collect();
            if !wanted.is_empty() {
                let attn = &layer.cross_attn;
                let picked = Array::from_slice(&wanted, &[wanted.len() as i32]);
                let queries = attn
                    .split_heads(&attn.query.forward(&h)?)?
                    .take_axis(&picked, 1)?
                    .as_dtype(Dtype::Float32)?;
                let keys = keys.take_axis(&picked, 1)?.as_dtype(Dtype::Float32)?;
                let scale = 1.0 / (queries.dim(-1) as f32).sqrt();
                scores.push(
                    ops::matmul(&queries, keys.transpose_axes(&[0, 1, 3, 2])?)?
                        .multiply(Array::from_f32(scale))?,
                );
            }
            x = x.add(
                layer
                    .cross_attn
                    .attend(&h, &keys, &values, &AttentionMask::None)?,
            )?;
            x = x.add(layer.mlp.forward(&layer.mlp_norm.forward(&x)?)?)?;
        }
        if scores.is_empty() {
            return Err(Error::invalid("no alignment heads selected"));
        }
        let x = decoder.norm.forward(&x)?;
        let logits = match &decoder.output {
            Some(output) => output.forward(&x)?,
            None => decoder.embed_tokens.as_linear(&x)?,
        };
        Ok(AlignmentPass {
            logits: logits.as_dtype(Dtype::Float32)?,
            head_scores: ops::concatenate(&scores, 1)?,
        })
    }
}

// ---- end of word-level alignment ------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoids_match_openai_formula() {
        let table = sinusoids(4, 8).unwrap();
        let v = table.as_slice::<f32>();
        // Position 0: sin = 0, cos = 1.
        assert_eq!(&v[..8], &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        // Position 1, channel 0: timescale 1 → sin(1).
        assert!((v[8] - 1f32.sin()).abs() < 1e-7);
        // Channel 3 (last of the half) has timescale 10000: sin(1/10000).
        assert!((v[8 + 3] - (1e-4f32).sin()).abs() < 1e-9);
    }
}
