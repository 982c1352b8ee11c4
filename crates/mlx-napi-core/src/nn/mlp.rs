//! Gated feed-forward blocks: `down(act(gate(x)) * up(x))` with SiLU
//! (Llama family, [`SwiGluMlp`]) or tanh-approximated GELU (Gemma, [`GeGluMlp`]).
//!
//! `silu(g) * u` is one fused kernel ([`fused::swiglu`]) instead of three:
//! decoding small models is bound by kernel launches, not bandwidth.

use mlx_rs::Array;

use super::{fused, Linear, WeightTree};
use crate::Result;

#[derive(Clone)]
pub struct SwiGluMlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl SwiGluMlp {
    /// Loads `<prefix>.{gate,up,down}_proj`.
    pub fn load(
        tree: &mut WeightTree,
        prefix: &str,
        dim: i32,
        hidden: i32,
        bias: bool,
    ) -> Result<Self> {
        Ok(Self {
            gate: Linear::load(tree, &format!("{prefix}.gate_proj"), dim, hidden, bias)?,
            up: Linear::load(tree, &format!("{prefix}.up_proj"), dim, hidden, bias)?,
            down: Linear::load(tree, &format!("{prefix}.down_proj"), hidden, dim, bias)?,
        })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let gated = fused::swiglu(&self.gate.forward(x)?, &self.up.forward(x)?)?;
        self.down.forward(&gated)
    }
}

/// Gemma's feed-forward: `down(gelu_tanh(gate(x)) * up(x))`, no biases.
#[derive(Clone)]
pub struct GeGluMlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl GeGluMlp {
    /// Loads `<prefix>.{gate,up,down}_proj`.
    pub fn load(tree: &mut WeightTree, prefix: &str, dim: i32, hidden: i32) -> Result<Self> {
        Ok(Self {
            gate: Linear::load(tree, &format!("{prefix}.gate_proj"), dim, hidden, false)?,
            up: Linear::load(tree, &format!("{prefix}.up_proj"), dim, hidden, false)?,
            down: Linear::load(tree, &format!("{prefix}.down_proj"), hidden, dim, false)?,
        })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let gated = fused::geglu_tanh(&self.gate.forward(x)?, &self.up.forward(x)?)?;
        self.down.forward(&gated)
    }
}
