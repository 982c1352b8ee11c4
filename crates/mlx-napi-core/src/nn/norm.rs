//! Normalization layers on MLX's fused kernels.

use mlx_rs::{fast, Array};

use super::WeightTree;
use crate::Result;

/// RMSNorm over the last axis (`fast::rms_norm`).
#[derive(Clone)]
pub struct RmsNorm {
    weight: Array,
    eps: f32,
}

impl RmsNorm {
    pub fn load(tree: &mut WeightTree, prefix: &str, dim: i32, eps: f32) -> Result<Self> {
        Ok(Self {
            weight: tree.take_float(&format!("{prefix}.weight"), &[dim])?,
            eps,
        })
    }

    /// Gemma's variant: checkpoints store `w` and the scale is `1 + w`
    /// (zero-initialized norms), added once here instead of at every call.
    pub fn load_one_plus(tree: &mut WeightTree, prefix: &str, dim: i32, eps: f32) -> Result<Self> {
        let stored = tree.take_float(&format!("{prefix}.weight"), &[dim])?;
        let one = Array::from_f32(1.0).as_dtype(stored.dtype())?;
        Ok(Self {
            weight: stored.add(&one)?,
            eps,
        })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        Ok(fast::rms_norm(x, Some(&self.weight), self.eps)?)
    }
}

/// LayerNorm over the last axis with weight and bias (`fast::layer_norm`).
#[derive(Clone)]
pub struct LayerNorm {
    weight: Array,
    bias: Array,
    eps: f32,
}

impl LayerNorm {
    pub fn load(tree: &mut WeightTree, prefix: &str, dim: i32, eps: f32) -> Result<Self> {
        Ok(Self {
            weight: tree.take_float(&format!("{prefix}.weight"), &[dim])?,
            bias: tree.take_float(&format!("{prefix}.bias"), &[dim])?,
            eps,
        })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        Ok(fast::layer_norm(
            x,
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
        )?)
    }
}
