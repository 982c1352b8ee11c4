//! The gated feed-forward block of Llama-family models: `down(silu(gate(x)) * up(x))`.
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
