//! Rotary position embedding on `fast::rope`, with the HF `rope_scaling`
//! variants we support ("default", "linear", "llama3").
//!
//! For Llama-3 scaling the per-dimension periods are computed once at load (on
//! the host, `dims / 2` numbers) and passed to the kernel as `freqs`, so
//! nothing is recomputed per step.

use mlx_rs::{fast, Array};

use crate::{Error, Result};

/// Where the new tokens start: one position for every row, or one per row
/// (int32 `[B]`, a batch whose rows sit at different positions).
#[derive(Clone)]
pub enum RopeOffset {
    Same(i32),
    PerRow(Array),
}

#[derive(Clone)]
pub struct Rope {
    dims: i32,
    traditional: bool,
    base: Option<f32>,
    scale: f32,
    /// Per-pair periods (`base^(2i/dims)`, rescaled) replacing `base` when set.
    freqs: Option<Array>,
}

impl Rope {
    /// `rope_scaling` is the config's object (or `None`/`null`).
    pub fn new(
        dims: i32,
        base: f32,
        traditional: bool,
        rope_scaling: Option<&serde_json::Value>,
    ) -> Result<Self> {
        let mut rope = Self {
            dims,
            traditional,
            base: Some(base),
            scale: 1.0,
            freqs: None,
        };
        let Some(scaling) = rope_scaling.filter(|v| !v.is_null()) else {
            return Ok(rope);
        };
        let kind = scaling
            .get("rope_type")
            .or_else(|| scaling.get("type"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let number = |key: &str, default: Option<f64>| -> Result<f32> {
            scaling
                .get(key)
                .and_then(|v| v.as_f64())
                .or(default)
                .map(|v| v as f32)
                .ok_or_else(|| Error::format(format!("config.json: rope_scaling lacks `{key}`")))
        };
        match kind {
            "default" => {}
            "linear" => rope.scale = 1.0 / number("factor", None)?,
            "llama3" => {
                rope.freqs = Some(llama3_periods(
                    dims,
                    base,
                    number("factor", None)?,
                    number("low_freq_factor", Some(1.0))?,
                    number("high_freq_factor", Some(4.0))?,
                    number("original_max_position_embeddings", Some(8192.0))?,
                ));
                rope.base = None;
            }
            other => {
                return Err(Error::UnsupportedModel(format!(
                    "rope_scaling type {other:?} is not supported (default, linear, llama3)"
                )))
            }
        }
        Ok(rope)
    }

    /// Rotates `x` `[B, heads, L, head_dim]` for positions starting at
    /// `offset` (per row with [`RopeOffset::PerRow`]).
    pub fn forward_at(&self, x: &Array, offset: &RopeOffset) -> Result<Array> {
        match offset {
            RopeOffset::Same(n) => self.forward(x, *n),
            RopeOffset::PerRow(positions) => Ok(fast::rope_dynamic(
                x,
                self.dims,
                self.traditional,
                self.base,
                self.scale,
                positions,
                self.freqs.as_ref(),
            )?),
        }
    }

    /// Rotates `x` `[B, heads, L, head_dim]` for positions `offset..offset+L`.
    pub fn forward(&self, x: &Array, offset: i32) -> Result<Array> {
        Ok(fast::rope(
            x,
            self.dims,
            self.traditional,
            self.base,
            self.scale,
            offset,
            self.freqs.as_ref(),
        )?)
    }
}

impl Rope {
    /// RoPE over the first `dims` features with explicit per-pair periods
    /// (`dims / 2` of them) instead of a base.
    pub fn with_periods(dims: i32, periods: &[f32]) -> Result<Self> {
        if periods.len() as i32 * 2 != dims {
            return Err(Error::format(format!(
                "config.json: {} RoPE factors for {dims} rotated features (want {})",
                periods.len(),
                dims / 2
            )));
        }
        Ok(Self {
            dims,
            traditional: false,
            base: None,
            scale: 1.0,
            freqs: Some(Array::from_slice(periods, &[dims / 2])),
        })
    }
}

/// LongRoPE (Phi-3 "su" / "longrope" scaling): per-pair factors stretch
/// the periods, `short_factor` while a sequence fits the original training
/// context and `long_factor` beyond it, and the rotated features are scaled
/// by `√(1 + ln(max / original) / ln(original))` (the attention factor).
///
/// The choice is made per forward pass from the length the sequence reaches
/// (Hugging Face's rule). Hugging Face re-computes the whole cache when a
/// generation crosses the boundary; we keep the keys already rotated with
/// the short factors (mlx-lm sidesteps it by always using the long ones,
/// which changes short prompts).
#[derive(Clone)]
pub struct LongRope {
    short: Rope,
    long: Rope,
    original_max: i32,
    /// Per-feature multiplier `[head_dim]`: the attention factor on the
    /// rotated features, 1 on the rest (partial rotary).
    mscale: Option<Array>,
}

impl LongRope {
    /// `dims` rotated features of `head_dim`; `max` / `original_max`
    /// positions (the ratio sets the attention factor unless the config
    /// gives `attention_factor`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dims: i32,
        head_dim: i32,
        base: f32,
        short_factor: &[f32],
        long_factor: &[f32],
        max: f32,
        original_max: i32,
        attention_factor: Option<f32>,
    ) -> Result<Self> {
        let periods = |factors: &[f32]| -> Vec<f32> {
            factors
                .iter()
                .enumerate()
                .map(|(i, f)| f * base.powf(2.0 * i as f32 / dims as f32))
                .collect()
        };
        let factor = max / original_max as f32;
        let mscale = attention_factor.unwrap_or(if factor <= 1.0 {
            1.0
        } else {
            (1.0 + factor.ln() / (original_max as f32).ln()).sqrt()
        });
        let mscale = (mscale != 1.0).then(|| {
            let per_feature: Vec<f32> = (0..head_dim)
                .map(|i| if i < dims { mscale } else { 1.0 })
                .collect();
            Array::from_slice(&per_feature, &[head_dim])
        });
        Ok(Self {
            short: Rope::with_periods(dims, &periods(short_factor))?,
            long: Rope::with_periods(dims, &periods(long_factor))?,
            original_max,
            mscale,
        })
    }

    /// Rotates `x` `[B, heads, L, head_dim]` from `offset`, for a sequence
    /// that reaches `length` positions with this pass.
    pub fn forward_at(&self, x: &Array, offset: &RopeOffset, length: i32) -> Result<Array> {
        let x = match &self.mscale {
            Some(m) => x.multiply(m.as_dtype(x.dtype())?)?,
            None => x.clone(),
        };
        let rope = if length > self.original_max {
            &self.long
        } else {
            &self.short
        };
        rope.forward_at(&x, offset)
    }
}

/// Llama-3.1 frequency rescaling: long wavelengths are slowed by `factor`,
/// short ones kept, the band between interpolated smoothly.
fn llama3_periods(
    dims: i32,
    base: f32,
    factor: f32,
    low: f32,
    high: f32,
    old_context: f32,
) -> Array {
    let low_wavelen = old_context / low;
    let high_wavelen = old_context / high;
    let periods: Vec<f32> = (0..dims / 2)
        .map(|i| {
            let period = base.powf(2.0 * i as f32 / dims as f32);
            let wavelen = 2.0 * std::f32::consts::PI * period;
            if wavelen > low_wavelen {
                period * factor
            } else if wavelen < high_wavelen {
                period
            } else {
                let smooth = (old_context / wavelen - low) / (high - low);
                period / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect();
    Array::from_slice(&periods, &[dims / 2])
}
