//! The gated feed-forward block of Llama-family models: `down(silu(gate(x)) * up(x))`.
//!
//! mlx-lm fuses `silu(g) * u` with `mx.compile`; we leave it as three
//! element-wise ops because MLX's CPU backend compiles fused kernels with a
//! system C++ compiler at run time, which end-user machines may lack. On a
//! GPU this costs two extra small kernels per layer and token — a candidate
//! for a backend-conditional compile once measured there.

use mlx_rs::{ops, Array};

use super::{Linear, WeightTree};
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
        let gate = self.gate.forward(x)?;
        let activated = gate.multiply(ops::sigmoid(&gate)?)?;
        self.down.forward(&activated.multiply(self.up.forward(x)?)?)
    }
}
